package proxy

import (
	"context"
	"crypto/tls"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"sync"
	"sync/atomic"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// host is one upstream endpoint with its live counters. Hosts are kept across
// snapshots by address so counters and outlier state survive EDS updates.
type host struct {
	addr     string
	weight   uint32
	health   xdsconfig.HealthStatus
	workload xdsconfig.WorkloadMeta
	// principal is the workload's SPIFFE ID in the mesh's trust domain, or "".
	principal string
	tlsMatch  map[string]string
	// tls is the host's upstream TLS (transport_socket_matches), nil for plaintext.
	tls *xdsconfig.TLSContext

	active    atomic.Int64
	total     atomic.Int64
	failures  atomic.Int64
	consec5xx atomic.Uint32
	consecGW  atomic.Uint32
	// Requests and successes (not 5xx) in the current outlier detection
	// interval, for success-rate ejection (outlier.go).
	srTotal, srOK atomic.Int64
	// isEjected is read on the request path; outlier is the rest of the
	// outlier detection state, guarded by the cluster's odMu (outlier.go).
	isEjected atomic.Bool
	outlier   hostOutlier
}

func (h *host) ejected() bool { return h.isEjected.Load() }

// hostSet is an immutable list of hosts and, for hash policies, their ring
// or Maglev table (hashlb.go).
type hostSet struct {
	hosts  []*host
	ring   []ringEntry
	maglev []*host
}

// cluster is the runtime of one xDS cluster: its config, hosts, pools and
// circuit-breaker counters. A cluster whose config did not change is carried
// into the next snapshot unchanged.
type cluster struct {
	cfg  *xdsconfig.Cluster
	name string
	// trustDomain makes the hosts' principals (metric labels).
	trustDomain string
	hosts       atomic.Pointer[hostSet]
	rr          atomic.Uint64

	dialer *net.Dialer
	// pools are keyed by transport socket: nil for plaintext, else the TLS
	// context of transport_socket or of a transport_socket_matches entry.
	pools map[*xdsconfig.TLSContext]*pool

	active  atomic.Int64
	retries atomic.Int64
	// started counts recent requests for a retry budget with an interval
	// (retrybudget.go), else nil.
	started *requestWindow
	rqTotal atomic.Int64
	// overflows counts requests and connections refused by the circuit
	// breaker (Envoy's upstream_rq_pending_overflow).
	overflows atomic.Int64

	// bufs are the proxy's buffers for lean HTTP/1.1 connections (h1client.go).
	bufs *h1Bufs

	// claSeen is the load assignment last installed (owned by the apply path).
	claSeen *xdsconfig.ClusterLoadAssignment

	// Outlier detection (outlier.go): odMu guards the hosts' outlier state
	// and nEjected; now is the clock (tests inject one); stopSweep ends the
	// interval sweep.
	odMu     sync.Mutex
	nEjected int
	// healthy counts the hosts that are neither EDS-unhealthy nor ejected,
	// for the panic threshold; set with nEjected.
	healthy atomic.Int64
	// panics counts picks made in panic mode (Envoy's lb_healthy_panic);
	// srEjections counts success-rate ejections.
	panics, srEjections atomic.Int64
	now                 func() int64
	stopSweep           chan struct{}
}

func newCluster(cfg *xdsconfig.Cluster, clientTLS func(*xdsconfig.TLSContext) *tls.Config, bufs *h1Bufs, trustDomain string) *cluster {
	c := &cluster{cfg: cfg, name: cfg.Name, pools: map[*xdsconfig.TLSContext]*pool{}, bufs: bufs, trustDomain: trustDomain,
		now: func() int64 { return time.Now().UnixNano() }}
	c.started = newRetryWindow(cfg.Limits)
	c.dialer = &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	if cfg.SourceAddress.IsValid() {
		c.dialer.LocalAddr = &net.TCPAddr{IP: cfg.SourceAddress.AsSlice()}
	}
	c.pools[nil] = c.newPool(nil, nil)
	for _, t := range cfg.TLSContexts() {
		if c.pools[t] == nil {
			c.pools[t] = c.newPool(t, clientTLS(t))
		}
	}
	if cfg.Outlier != nil {
		c.stopSweep = make(chan struct{})
		go c.sweepEvery(cfg.Outlier.Interval, c.stopSweep)
	}
	return c
}

// pool is one set of upstream connection pools of a cluster: hosts with the
// same transport socket (plaintext, or one TLS context) share it, so TLS and
// plaintext connections never mix.
type pool struct {
	tls *tls.Config // nil: plaintext
	h1  *http.Transport
	h2  *http.Transport
	// lean carries HTTP/1.1 requests without a body on the handler's
	// goroutine (h1client.go); h1 carries the rest.
	lean *h1pool
}

func (c *cluster) newPool(t *xdsconfig.TLSContext, tc *tls.Config) *pool {
	pl := &pool{tls: tc}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return c.dialConn(ctx, pl, network, addr)
	}
	mk := func(h2 bool) *http.Transport {
		tr := &http.Transport{
			DialContext:         dial,
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: 256,
			MaxConnsPerHost:     int(c.cfg.Limits.MaxConnections),
			IdleConnTimeout:     c.cfg.Conn.IdleTimeout,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
			WriteBufferSize:     16 << 10,
			ReadBufferSize:      16 << 10,
		}
		if h2 {
			tr.Protocols = new(http.Protocols)
			tr.Protocols.SetUnencryptedHTTP2(true)
		}
		return tr
	}
	pl.h1 = mk(false)
	pl.lean = &h1pool{c: c, pl: pl, bufs: c.bufs, idle: map[string][]*h1conn{}, open: map[string]int{}}
	if c.cfg.Protocol != xdsconfig.ProtocolHTTP1 {
		pl.h2 = mk(true)
	}
	_ = t
	return pl
}

// dialConn connects to addr and, for a TLS pool, completes the handshake
// (TLS inside is invisible to net/http: see tlsUpstream). Failures are
// connectErrors (flag UF); TLS failures carry a transportFailure.
func (c *cluster) dialConn(ctx context.Context, pl *pool, network, addr string) (net.Conn, error) {
	conn, err := c.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &connectError{err: err}
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if pl.tls == nil {
		return conn, nil
	}
	tc := tls.Client(conn, pl.tls)
	hctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, &connectError{err: &transportFailure{err: err}}
	}
	return tlsUpstream{Conn: tc}, nil
}

// poolFor returns the pool of a host: its transport_socket_matches entry,
// else the cluster's transport_socket.
func (c *cluster) poolFor(h *host) *pool {
	if pl := c.pools[h.tls]; pl != nil {
		return pl
	}
	return c.pools[nil]
}

// connectError marks a failure to connect to an upstream (flag UF).
type connectError struct{ err error }

func (e *connectError) Error() string { return "upstream connect: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// transport returns the pool of h for a request that arrived over downstream proto.
func (c *cluster) transport(h *host, downstreamH2 bool) *http.Transport {
	pl := c.poolFor(h)
	if c.upstreamH2(downstreamH2) {
		return pl.h2
	}
	return pl.h1
}

// upstreamH2 reports whether a request that arrived over HTTP/2 or not goes
// upstream over HTTP/2.
func (c *cluster) upstreamH2(downstreamH2 bool) bool {
	switch c.cfg.Protocol {
	case xdsconfig.ProtocolHTTP2:
		return true
	case xdsconfig.ProtocolDownstream:
		return downstreamH2
	}
	return false
}

func (c *cluster) close() {
	if c.stopSweep != nil {
		close(c.stopSweep)
		c.stopSweep = nil
	}
	for _, pl := range c.pools {
		pl.lean.close()
		pl.h1.CloseIdleConnections()
		if pl.h2 != nil {
			pl.h2.CloseIdleConnections()
		}
	}
}

// setEndpoints installs a new endpoint list, keeping hosts already known.
func (c *cluster) setEndpoints(cla *xdsconfig.ClusterLoadAssignment) {
	c.odMu.Lock()
	defer c.odMu.Unlock()
	old := map[string]*host{}
	if hs := c.hosts.Load(); hs != nil {
		for _, h := range hs.hosts {
			old[h.addr] = h
		}
	}
	hs := &hostSet{}
	if cla != nil {
		for _, ep := range cla.Endpoints {
			h := old[ep.Address]
			if h == nil || h.weight != ep.Weight || h.health != ep.Health || h.workload != ep.Workload || !maps.Equal(h.tlsMatch, ep.TLSMatch) {
				nh := &host{addr: ep.Address, weight: ep.Weight, health: ep.Health, workload: ep.Workload,
					principal: spiffePrincipal(c.trustDomain, ep.Workload.Namespace, ep.Workload.ServiceAccount),
					tlsMatch:  ep.TLSMatch, tls: c.cfg.TLSFor(ep.TLSMatch)}
				if h != nil {
					nh.active.Store(h.active.Load())
					nh.total.Store(h.total.Load())
					nh.isEjected.Store(h.isEjected.Load())
					nh.outlier = h.outlier
				}
				h = nh
			}
			hs.hosts = append(hs.hosts, h)
		}
	}
	c.countLocked(hs)
	switch c.cfg.LB {
	case xdsconfig.LBRingHash:
		hs.ring = buildRing(hs.hosts, c.cfg.RingMin, c.cfg.RingMax)
	case xdsconfig.LBMaglev:
		hs.maglev = buildMaglev(hs.hosts, c.cfg.MaglevTableSize)
	}
	c.hosts.Store(hs)
}

// hash64 hashes ring points and request keys: FNV-1a, then murmur3's 64-bit
// finalizer, because FNV alone leaves keys that differ in their last bytes
// (user-1, user-2; 10.0.0.1:80, 10.0.0.2:80) next to each other on the ring.
func hash64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// pick chooses a host for a request; avoid is a host to skip when others are
// available (retry on other hosts); hashKey is used by ring hash and maglev.
func (c *cluster) pick(avoid *host, hashKey string, hasHash bool) *host {
	hs := c.hosts.Load()
	if hs == nil || len(hs.hosts) == 0 {
		return nil
	}
	n := len(hs.hosts)
	// Panic mode (healthy_panic_threshold): with too few healthy hosts,
	// Envoy balances over all of them rather than overload the few.
	panicking := c.cfg.PanicThreshold > 0 && float64(c.healthy.Load())*100 < c.cfg.PanicThreshold*float64(n)
	if panicking {
		c.panics.Add(1)
	}
	ok := func(h *host) bool {
		return panicking || (h.health.Routable() && !h.ejected())
	}
	if n == 1 {
		if h := hs.hosts[0]; ok(h) {
			return h
		}
		return nil
	}
	try := func(h *host) bool { return ok(h) && h != avoid }
	switch c.cfg.LB {
	case xdsconfig.LBMaglev:
		if hasHash && len(hs.maglev) > 0 {
			// The table entry of the key; past an unusable host, the next
			// entries, which belong to other hosts in Maglev's permutation.
			m := uint64(len(hs.maglev))
			k := hash64(hashKey)
			for j := uint64(0); j < m; j++ {
				if h := hs.maglev[(k+j)%m]; try(h) {
					return h
				}
			}
		}
		return c.pickRandom(hs, try, ok)
	case xdsconfig.LBRingHash:
		if hasHash && len(hs.ring) > 0 {
			k := hash64(hashKey)
			i := sort.Search(len(hs.ring), func(i int) bool { return hs.ring[i].hash >= k })
			for j := 0; j < len(hs.ring); j++ {
				e := hs.ring[(i+j)%len(hs.ring)]
				if try(e.h) {
					return e.h
				}
			}
		}
		return c.pickRandom(hs, try, ok)
	case xdsconfig.LBRandom:
		return c.pickRandom(hs, try, ok)
	case xdsconfig.LBLeastRequest:
		a, b := hs.hosts[rand.N(n)], hs.hosts[rand.N(n)]
		if try(a) && try(b) {
			if b.active.Load() < a.active.Load() {
				return b
			}
			return a
		}
		if try(a) {
			return a
		}
		if try(b) {
			return b
		}
		return c.pickRoundRobin(hs, try, ok)
	default:
		return c.pickRoundRobin(hs, try, ok)
	}
}

func (c *cluster) pickRoundRobin(hs *hostSet, try, ok func(*host) bool) *host {
	n := uint64(len(hs.hosts))
	start := c.rr.Add(1)
	for i := uint64(0); i < n; i++ {
		if h := hs.hosts[(start+i)%n]; try(h) {
			return h
		}
	}
	for i := uint64(0); i < n; i++ {
		if h := hs.hosts[(start+i)%n]; ok(h) {
			return h
		}
	}
	return nil
}

func (c *cluster) pickRandom(hs *hostSet, try, ok func(*host) bool) *host {
	n := len(hs.hosts)
	start := rand.N(n)
	for i := 0; i < n; i++ {
		if h := hs.hosts[(start+i)%n]; try(h) {
			return h
		}
	}
	for i := 0; i < n; i++ {
		if h := hs.hosts[(start+i)%n]; ok(h) {
			return h
		}
	}
	return nil
}

// overflow reports whether one more request would exceed the circuit breaker
// (max_requests, or max_connections + max_pending_requests for HTTP/1.1).
// Every caller refuses the request when it is true, so each true counts one
// overflow.
func (c *cluster) overflow() bool {
	a := c.active.Load()
	l := c.cfg.Limits
	if a >= int64(l.MaxRequests) || (c.cfg.Protocol == xdsconfig.ProtocolHTTP1 && a >= int64(l.MaxConnections)+int64(l.MaxPending)) {
		c.overflows.Add(1)
		return true
	}
	return false
}

// report feeds outlier detection with the result of one attempt.
func (c *cluster) report(h *host, code int, connectFailed bool) {
	od := c.cfg.Outlier
	is5xx := code >= 500 || connectFailed
	gw := connectFailed || code == 502 || code == 503 || code == 504
	if od != nil && od.SuccessRate != nil {
		h.srTotal.Add(1)
		if !is5xx {
			h.srOK.Add(1)
		}
	}
	if !is5xx {
		h.consec5xx.Store(0)
		h.consecGW.Store(0)
		return
	}
	h.failures.Add(1)
	if od == nil {
		return
	}
	n5 := h.consec5xx.Add(1)
	ng := uint32(0)
	if gw {
		ng = h.consecGW.Add(1)
	}
	if (od.Consecutive5xx > 0 && n5 >= od.Consecutive5xx) || (od.ConsecutiveGatewayFailure > 0 && ng >= od.ConsecutiveGatewayFailure) {
		c.eject(h)
	}
}

// clusterStatusLines renders /clusters in Envoy's text form.
func clusterStatusLines(b *strings.Builder, c *cluster) {
	hs := c.hosts.Load()
	if hs == nil {
		return
	}
	for _, h := range hs.hosts {
		health := "healthy"
		switch {
		case h.ejected():
			health = "/failed_outlier_check"
		case !h.health.Routable():
			health = "/failed_eds_health"
		}
		pre := c.name + "::" + h.addr + "::"
		b.WriteString(pre + "health_flags::" + health + "\n")
		b.WriteString(pre + "weight::" + strconv.Itoa(int(h.weight)) + "\n")
		b.WriteString(pre + "rq_active::" + strconv.FormatInt(h.active.Load(), 10) + "\n")
		b.WriteString(pre + "rq_total::" + strconv.FormatInt(h.total.Load(), 10) + "\n")
		b.WriteString(pre + "rq_error::" + strconv.FormatInt(h.failures.Load(), 10) + "\n")
	}
}
