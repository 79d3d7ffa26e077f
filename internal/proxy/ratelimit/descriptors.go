package ratelimit

import "github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"

// Request is what descriptor actions read of a request.
type Request interface {
	// Header returns the values of a request header (lower-case name;
	// pseudo-headers :path, :authority, :method included) and whether it is there.
	Header(name string) (string, bool)
	// MatchHeaders reports whether the request matches all of hms (the
	// router's header matching).
	MatchHeaders(hms []xdsconfig.HeaderMatcher) bool
	// RemoteAddress is the trusted downstream address (Envoy's remote_address).
	RemoteAddress() string
	// SourceCluster is the local service cluster; DestinationCluster the
	// cluster the route sends to.
	SourceCluster() string
	DestinationCluster() string
}

// Descriptors computes the descriptors of the policies of stage for r: one
// per policy whose actions all produce an entry (Envoy drops a descriptor
// when an action cannot, e.g. a missing header).
func Descriptors(policies []xdsconfig.RateLimitPolicy, stage uint32, r Request) []Descriptor {
	var out []Descriptor
policies:
	for _, p := range policies {
		if p.Stage != stage {
			continue
		}
		var d Descriptor
		for _, a := range p.Actions {
			e := xdsconfig.DescriptorEntry{Key: a.Key}
			switch a.Kind {
			case xdsconfig.ActionSourceCluster:
				e.Value = r.SourceCluster()
			case xdsconfig.ActionDestinationCluster:
				e.Value = r.DestinationCluster()
			case xdsconfig.ActionRemoteAddress:
				e.Value = r.RemoteAddress()
				if e.Value == "" {
					continue policies
				}
			case xdsconfig.ActionRequestHeaders:
				v, ok := r.Header(a.Header)
				if !ok {
					if a.SkipIfAbsent {
						continue
					}
					continue policies
				}
				e.Value = v
			case xdsconfig.ActionGenericKey:
				e.Value = a.Value
			case xdsconfig.ActionHeaderValueMatch:
				if r.MatchHeaders(a.Headers) != a.ExpectMatch {
					continue policies
				}
				e.Value = a.Value
			}
			d = append(d, e)
		}
		if len(d) > 0 {
			out = append(out, d)
		}
	}
	return out
}
