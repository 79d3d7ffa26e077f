package gatewayapi

import (
	"slices"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

func cloneRoute(r *networking.HTTPRoute) *networking.HTTPRoute {
	return proto.Clone(r).(*networking.HTTPRoute)
}

// sortRoutes orders the routes merged from several route objects by the
// spec's match precedence: an Exact path before a PathPrefix before a
// RegularExpression, a longer path first, then a method match, then more
// header matches, then more query parameter matches. The sort is stable,
// so ties keep the order of the objects (oldest, then namespace/name) and
// of their rules.
func sortRoutes(rs []*rankedRoute) {
	slices.SortStableFunc(rs, func(a, b *rankedRoute) int {
		ma, mb := firstMatch(a.route), firstMatch(b.route)
		if c := uriRank(mb) - uriRank(ma); c != 0 {
			return c
		}
		if c := uriLength(mb) - uriLength(ma); c != 0 {
			return c
		}
		if c := boolInt(mb.GetMethod() != nil) - boolInt(ma.GetMethod() != nil); c != 0 {
			return c
		}
		if c := len(mb.GetHeaders()) - len(ma.GetHeaders()); c != 0 {
			return c
		}
		return len(mb.GetQueryParams()) - len(ma.GetQueryParams())
	})
}

func firstMatch(r *networking.HTTPRoute) *networking.HTTPMatchRequest {
	if len(r.GetMatch()) == 0 {
		return nil
	}
	return r.GetMatch()[0]
}

func uriRank(m *networking.HTTPMatchRequest) int {
	switch m.GetUri().GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return 3
	case *networking.StringMatch_Prefix:
		return 2
	case *networking.StringMatch_Regex:
		return 1
	}
	return 0
}

func uriLength(m *networking.HTTPMatchRequest) int {
	u := m.GetUri()
	return len(u.GetExact()) + len(u.GetPrefix()) + len(u.GetRegex())
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
