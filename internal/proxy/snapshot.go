package proxy

import (
	"crypto/tls"
	"net/netip"
	"sort"
	"strings"

	"github.com/bowline-mesh/bowline/internal/proxy/jwtauthn"
	"github.com/bowline-mesh/bowline/internal/proxy/ratelimit"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsclient"
	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// snapshot is one immutable, complete view of the config. Requests load it
// once and finish on it even if a newer one is installed meanwhile.
type snapshot struct {
	version   int64
	state     *xdsclient.State
	listeners map[string]*xdsconfig.Listener
	byAddr    map[netip.AddrPort]*xdsconfig.Listener
	routes    map[string]*routeTable
	clusters  map[string]*cluster
	// chains are the runtime HTTP filters of every HCM in the snapshot.
	chains map[*xdsconfig.HTTPConnectionManager][]httpFilter
	// jwt are the compiled jwt_authn filters, reused by the next snapshot.
	jwt map[*xdsconfig.JWTAuthnFilter]*jwtauthn.Filter
	// tracers are the span exporters of the HCMs that report spans (tracing.go).
	tracers map[*xdsconfig.HTTPConnectionManager]*tracer
	// secrets are the SDS secrets fetched over ADS (a gateway's
	// credentials), read at each handshake (tls.go).
	secrets map[string]*xdsconfig.Secret
	// localRL are the local rate limiters of the snapshot's local_ratelimit
	// configs (listener-level and per-route), read without a lock per request.
	localRL map[*xdsconfig.LocalRateLimit]*ratelimit.Local
	// serverTLS is one tls.Config per DownstreamTlsContext, carried into
	// the next snapshot while the context is unchanged, so its session
	// ticket keys survive and clients resume their sessions (tls.go).
	serverTLS map[*xdsconfig.TLSContext]*tls.Config
}

// withServerTLS fills s.serverTLS for every TLS filter chain of s, reusing
// prev's configs of the same contexts and building the others with build.
func (s *snapshot) withServerTLS(prev *snapshot, build func(*xdsconfig.TLSContext) *tls.Config) {
	s.serverTLS = map[*xdsconfig.TLSContext]*tls.Config{}
	add := func(fc *xdsconfig.FilterChain) {
		if fc == nil || fc.TLS == nil || s.serverTLS[fc.TLS] != nil {
			return
		}
		if prev != nil && prev.serverTLS[fc.TLS] != nil {
			s.serverTLS[fc.TLS] = prev.serverTLS[fc.TLS]
			return
		}
		s.serverTLS[fc.TLS] = build(fc.TLS)
	}
	for _, l := range s.listeners {
		for i := range l.FilterChains {
			add(&l.FilterChains[i])
		}
		add(l.DefaultChain)
	}
}

// listenerFor returns the listener that owns addr, falling back to the
// 0.0.0.0 listener of the same port (Istio's virtual outbound listeners).
func (s *snapshot) listenerFor(addr netip.AddrPort) *xdsconfig.Listener {
	if l := s.byAddr[addr]; l != nil {
		return l
	}
	return s.byAddr[netip.AddrPortFrom(netip.IPv4Unspecified(), addr.Port())]
}

// routesFor returns the route table of an HCM.
func (s *snapshot) routesFor(h *xdsconfig.HTTPConnectionManager) *routeTable {
	if h.RDSName != "" {
		return s.routes[h.RDSName]
	}
	return s.routes[inlineRoutesKey(h)]
}

// inlineRoutesKey is the routes key of an HCM's inline route_config; the
// NUL bytes keep it apart from RDS names.
func inlineRoutesKey(h *xdsconfig.HTTPConnectionManager) string {
	return "\x00inline\x00" + h.StatPrefix + "\x00" + h.Routes.Name
}

// buildSnapshot makes a snapshot from an accepted state, reusing the cluster
// runtimes of prev whose config did not change.
func buildSnapshot(st *xdsclient.State, prev *snapshot, version int64, env *filterEnv,
	clientTLS func(*xdsconfig.TLSContext) *tls.Config, bufs *h1Bufs, trustDomain string) *snapshot {
	s := &snapshot{
		version:   version,
		state:     st,
		listeners: st.Listeners(),
		secrets:   st.Secrets(),
		byAddr:    map[netip.AddrPort]*xdsconfig.Listener{},
		routes:    map[string]*routeTable{},
		clusters:  map[string]*cluster{},
		chains:    map[*xdsconfig.HTTPConnectionManager][]httpFilter{},
		jwt:       map[*xdsconfig.JWTAuthnFilter]*jwtauthn.Filter{},
	}
	if env != nil {
		env.curJWT = s.jwt
		if prev != nil {
			env.prevJWT = prev.jwt
		}
	}
	for _, l := range s.listeners {
		if l.Address.IsValid() {
			s.byAddr[l.Address] = l
		}
		hcms := make([]*xdsconfig.HTTPConnectionManager, 0, len(l.FilterChains)+1)
		for i := range l.FilterChains {
			hcms = append(hcms, l.FilterChains[i].HTTP)
		}
		if l.DefaultChain != nil {
			hcms = append(hcms, l.DefaultChain.HTTP)
		}
		for _, h := range hcms {
			if h == nil {
				continue
			}
			s.chains[h] = buildChain(h, env)
			if h.Routes != nil {
				s.routes[inlineRoutesKey(h)] = newRouteTable(h.Routes)
			}
		}
	}
	for name, rc := range st.Routes() {
		if prev != nil && prev.routes[name] != nil && prev.routes[name].cfg == rc {
			s.routes[name] = prev.routes[name]
			continue
		}
		s.routes[name] = newRouteTable(rc)
	}
	eps := st.Endpoints()
	for name, cc := range st.Clusters() {
		var c *cluster
		if prev != nil && prev.clusters[name] != nil && prev.clusters[name].cfg == cc {
			c = prev.clusters[name]
		} else {
			c = newCluster(cc, clientTLS, bufs, trustDomain)
		}
		cla := cc.Endpoints
		if cc.Type == xdsconfig.DiscoveryEDS {
			cla = eps[cc.EDSName]
		}
		if hs := c.hosts.Load(); hs == nil || c.claSeen != cla {
			c.setEndpoints(cla)
			c.claSeen = cla
		}
		s.clusters[name] = c
	}
	if env != nil && env.rl != nil {
		s.localRL = env.rl.limiters.Install(localRateLimitConfigs(s))
	}
	return s
}

// localRateLimitConfigs are the local_ratelimit configs of s: those of its
// HCM filters and the per-route ones of its route tables.
func localRateLimitConfigs(s *snapshot) []*xdsconfig.LocalRateLimit {
	var out []*xdsconfig.LocalRateLimit
	for h := range s.chains {
		for _, f := range h.Filters {
			if c, ok := f.Config.(*xdsconfig.LocalRateLimit); ok {
				out = append(out, c)
			}
		}
	}
	for _, rt := range s.routes {
		for i := range rt.cfg.VirtualHosts {
			vh := &rt.cfg.VirtualHosts[i]
			for j := range vh.Routes {
				for _, v := range vh.Routes[j].PerFilter {
					if c, ok := v.(*xdsconfig.LocalRateLimit); ok {
						out = append(out, c)
					}
				}
			}
		}
	}
	return out
}

// routeTable is a route configuration indexed for virtual-host lookup.
type routeTable struct {
	cfg      *xdsconfig.RouteConfig
	exact    map[string]*xdsconfig.VirtualHost
	suffixes []domainEntry // "*.foo" and "*-foo", longest first
	prefixes []domainEntry // "foo.*", longest first
	star     *xdsconfig.VirtualHost
}

type domainEntry struct {
	pattern string
	vh      *xdsconfig.VirtualHost
}

func newRouteTable(rc *xdsconfig.RouteConfig) *routeTable {
	t := &routeTable{cfg: rc, exact: map[string]*xdsconfig.VirtualHost{}}
	for i := range rc.VirtualHosts {
		vh := &rc.VirtualHosts[i]
		for _, d := range vh.Domains {
			switch {
			case d == "*":
				t.star = vh
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, domainEntry{d[1:], vh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, domainEntry{d[:len(d)-1], vh})
			default:
				t.exact[d] = vh
			}
		}
	}
	sort.SliceStable(t.suffixes, func(i, j int) bool { return len(t.suffixes[i].pattern) > len(t.suffixes[j].pattern) })
	sort.SliceStable(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].pattern) > len(t.prefixes[j].pattern) })
	return t
}

// virtualHost finds the virtual host for an authority, trying it as given
// and then without its port, in Envoy's order: exact, suffix wildcard,
// prefix wildcard, "*".
func (t *routeTable) virtualHost(authority string) *xdsconfig.VirtualHost {
	host := strings.ToLower(authority)
	if vh := t.matchDomain(host); vh != nil {
		return vh
	}
	if i := strings.LastIndexByte(host, ':'); i > 0 && !strings.HasSuffix(host, "]") {
		if vh := t.matchDomain(host[:i]); vh != nil {
			return vh
		}
	}
	return t.star
}

func (t *routeTable) matchDomain(host string) *xdsconfig.VirtualHost {
	if vh := t.exact[host]; vh != nil {
		return vh
	}
	for _, e := range t.suffixes {
		if len(host) > len(e.pattern) && strings.HasSuffix(host, e.pattern) {
			return e.vh
		}
	}
	for _, e := range t.prefixes {
		if len(host) > len(e.pattern) && strings.HasPrefix(host, e.pattern) {
			return e.vh
		}
	}
	return nil
}
