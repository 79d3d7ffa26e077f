package analysis

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/bowline-mesh/bowline/internal/config"
)

// unreachableRulesAnalyzer reports VirtualService rules that can never be
// used: a rule after one without matches (which catches everything), a
// second rule without matches, a rule whose every match an earlier rule
// already has (IST0130); and single matches an earlier rule makes
// ineffective, by duplication or a covering URI prefix (IST0131).
type unreachableRulesAnalyzer struct{}

var _ Analyzer = unreachableRulesAnalyzer{}

func (unreachableRulesAnalyzer) Name() string { return "virtualservice.MatchesAnalyzer" }
func (unreachableRulesAnalyzer) Description() string {
	return "Checks virtual services for unreachable rules and ineffective matches"
}

// rule is one http, tcp or tls route reduced to what the check needs.
type rule struct {
	name    string // `"named"` or "#i", as Istio prints it
	path    string // "spec.http[2]"
	matches []proto.Message
	names   []string // per match: `"named"` or "#j"
}

func (unreachableRulesAnalyzer) Analyze(c *Context) {
	for _, o := range c.Objects(config.KindVirtualService) {
		vs, ok := o.Spec.(*networking.VirtualService)
		if !ok {
			continue
		}
		var http, tcp, tls []rule
		for i, r := range vs.GetHttp() {
			http = append(http, newRule("http", i, r.GetName(), r.GetMatch(), (*networking.HTTPMatchRequest).GetName))
		}
		for i, r := range vs.GetTcp() {
			tcp = append(tcp, newRule("tcp", i, "", r.GetMatch(), nil))
		}
		for i, r := range vs.GetTls() {
			tls = append(tls, newRule("tls", i, "", r.GetMatch(), nil))
		}
		checkRules(c, o, http)
		checkPrefixOverlap(c, o, vs.GetHttp())
		checkRules(c, o, tcp)
		checkRules(c, o, tls)
	}
}

// newRule reduces route i of spec.<field> to a rule; matchName gives a
// match's name (nil for kinds whose matches have none).
func newRule[M proto.Message](field string, i int, name string, matches []M, matchName func(M) string) rule {
	ru := rule{name: routeName(name, i), path: fmt.Sprintf("spec.%s[%d]", field, i)}
	for j, m := range matches {
		n := ""
		if matchName != nil {
			n = matchName(m)
		}
		ru.matches = append(ru.matches, m)
		ru.names = append(ru.names, routeName(n, j))
	}
	return ru
}

func routeName(name string, i int) string {
	if name != "" {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("#%d", i)
}

// matchKey serialises a match without its name, so equal matches compare equal.
func matchKey(m proto.Message) string {
	if hm, ok := m.(*networking.HTTPMatchRequest); ok && hm.GetName() != "" {
		cl := proto.Clone(hm).(*networking.HTTPMatchRequest)
		cl.Name = ""
		m = cl
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func checkRules(c *Context, o *config.Object, rules []rule) {
	seen := map[string]int{}
	catchAll := -1
	for i, r := range rules {
		if len(r.matches) == 0 {
			if catchAll >= 0 {
				c.Report(VirtualServiceUnreachableRule, o, r.path, r.name, "only the last rule can have no matches")
			}
			catchAll = i
			continue
		}
		dups := 0
		for j, m := range r.matches {
			if catchAll >= 0 {
				c.Report(VirtualServiceUnreachableRule, o, fmt.Sprintf("%s.match[%d]", r.path, j), r.name, "route without matches defined before")
				continue
			}
			k := matchKey(m)
			if prev, ok := seen[k]; ok {
				c.Report(VirtualServiceIneffectiveMatch, o, fmt.Sprintf("%s.match[%d]", r.path, j), r.name, r.names[j], rules[prev].name)
				dups++
				continue
			}
			seen[k] = i
		}
		if dups == len(r.matches) {
			c.Report(VirtualServiceUnreachableRule, o, r.path, r.name, "all matches used by prior rules")
		}
	}
}

// prefixMatch is an http match with a URI prefix, reduced to the fields
// Istio compares for overlap.
type prefixMatch struct {
	rule, match, path string
	prefix            string
	port              uint32
	method, authority string
	headers, query    map[string]string
	withoutHeaders    map[string]string
}

func exactOrPrefix(sm *networking.StringMatch) string {
	if e := sm.GetExact(); e != "" {
		return "exact:" + e
	}
	if p := sm.GetPrefix(); p != "" {
		return "prefix:" + p
	}
	return ""
}

func stringMatches(m map[string]*networking.StringMatch) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = exactOrPrefix(v)
	}
	return out
}

// checkPrefixOverlap reports a match whose URI prefix an earlier match's
// shorter prefix covers with otherwise the same conditions (Istio's
// overlapping-match check; it only considers prefix URI matches).
func checkPrefixOverlap(c *Context, o *config.Object, routes []*networking.HTTPRoute) {
	var pms []prefixMatch
	seen := map[string]bool{}
	catchAll := false
	for i, r := range routes {
		if len(r.GetMatch()) == 0 {
			catchAll = true
			continue
		}
		if catchAll {
			break
		}
		for j, m := range r.GetMatch() {
			k := matchKey(m)
			if seen[k] {
				continue
			}
			seen[k] = true
			p := m.GetUri().GetPrefix()
			if p == "" {
				continue
			}
			method := exactOrPrefix(m.GetMethod())
			if method == "" {
				method = "exact:GET"
			}
			pms = append(pms, prefixMatch{
				rule: routeName(r.GetName(), i), match: routeName(m.GetName(), j), path: fmt.Sprintf("spec.http[%d].match[%d]", i, j),
				prefix: p, port: m.GetPort(), method: method, authority: exactOrPrefix(m.GetAuthority()),
				headers: stringMatches(m.GetHeaders()), query: stringMatches(m.GetQueryParams()), withoutHeaders: stringMatches(m.GetWithoutHeaders()),
			})
		}
	}
	for a := range pms {
		for b := a + 1; b < len(pms); b++ {
			A, B := pms[a], pms[b]
			if A.prefix == B.prefix || !covers(A, B) {
				continue
			}
			c.Report(VirtualServiceIneffectiveMatch, o, B.path, B.rule,
				B.match+" of prefix "+B.prefix, A.match+" of prefix "+A.prefix+" on "+A.rule)
		}
	}
}

// covers reports whether a's conditions include every request b's do.
func covers(a, b prefixMatch) bool {
	if !strings.HasPrefix(b.prefix, a.prefix) || a.port != b.port {
		return false
	}
	if a.method != b.method && !strings.HasPrefix(a.method, b.method) {
		return false
	}
	if a.authority != b.authority && !strings.HasPrefix(a.authority, b.authority) {
		return false
	}
	return mapCovers(a.headers, b.headers) && mapCovers(a.query, b.query) && mapCovers(a.withoutHeaders, b.withoutHeaders)
}

func mapCovers(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv, ok := b[k]
		if !ok || (av != bv && !strings.HasPrefix(av, bv)) {
			return false
		}
	}
	return true
}
