package proxy

import (
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Identity is what the proxy knows about its own workload, for metric labels.
type Identity struct {
	// Workload is the workload name.
	Workload string
	// Namespace is the workload namespace.
	Namespace string
	// Principal is the workload's SPIFFE identity, when known.
	Principal string
	// App is the app (canonical service) label.
	App string
	// Version is the version (canonical revision) label.
	Version string
}

var requestLabels = []string{"reporter", "source_workload", "source_workload_namespace", "source_principal",
	"source_app", "source_version", "destination_workload", "destination_workload_namespace",
	"destination_principal", "destination_app", "destination_version", "destination_service",
	"destination_service_name", "destination_service_namespace", "request_protocol", "response_code",
	"grpc_response_status", "response_flags", "connection_security_policy"}

// tcpLabels are requestLabels without response_code and grpc_response_status.
var tcpLabels = []string{"reporter", "source_workload", "source_workload_namespace", "source_principal",
	"source_app", "source_version", "destination_workload", "destination_workload_namespace",
	"destination_principal", "destination_app", "destination_version", "destination_service",
	"destination_service_name", "destination_service_namespace", "request_protocol", "response_flags",
	"connection_security_policy"}

// labelKey is one label tuple; it is comparable so resolved series can be cached.
type labelKey [19]string

type requestSeries struct {
	total    prometheus.Counter
	duration prometheus.Observer
	reqSize  prometheus.Observer
	respSize prometheus.Observer
}

// tcpSeries are the TCP counters one connection adds to.
type tcpSeries struct {
	sent, received, opened, closed counter
}

// counter is what a connection does with a TCP metric: a Prometheus
// counter, or nothing for a dropped one.
type counter interface {
	Inc()
	Add(float64)
}

// noCounter is a dropped metric.
type noCounter struct{}

func (noCounter) Inc()        {}
func (noCounter) Add(float64) {}

// metrics holds the Istio standard metrics of one proxy in its own registry.
type metrics struct {
	reg *prometheus.Registry
	// self are this proxy's workload, namespace, principal, app and version
	// labels, "unknown" where empty.
	self     [5]string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	reqSize  *prometheus.HistogramVec
	respSize *prometheus.HistogramVec
	tcpSent  *prometheus.CounterVec
	tcpRecv  *prometheus.CounterVec
	tcpOpen  *prometheus.CounterVec
	tcpClose *prometheus.CounterVec

	cache    sync.Map // labelKey -> *requestSeries
	tcpCache sync.Map // labelKey -> *tcpSeries
	// custom holds the series of HCMs whose istio.stats overrides change tags.
	custom *customMetrics
}

// Help texts and buckets of the HTTP metrics, shared by the series of
// istio.stats overrides (metrics_override.go).
const (
	helpRequests = "Requests handled by the proxy."
	helpDuration = "Request duration in milliseconds."
	helpReqSize  = "Request body sizes in bytes."
	helpRespSize = "Response body sizes in bytes."
)

// helpTCP are the TCP metrics' help texts, in tcpStats order.
var helpTCP = [...]string{"Bytes sent to the downstream on TCP connections.", "Bytes received from the downstream on TCP connections.",
	"TCP connections opened.", "TCP connections closed."}

var (
	durationBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}
	bytesBuckets    = prometheus.ExponentialBuckets(1, 10, 9)
)

func newMetrics(self Identity) *metrics {
	m := &metrics{
		custom: newCustomMetrics(),
		reg:    prometheus.NewRegistry(),
		self: [5]string{orUnknown(self.Workload), orUnknown(self.Namespace), orUnknown(self.Principal),
			orUnknown(self.App), orUnknown(self.Version)},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_requests_total",
			Help: helpRequests}, requestLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_duration_milliseconds",
			Help: helpDuration, Buckets: durationBuckets}, requestLabels),
		reqSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_request_bytes",
			Help: helpReqSize, Buckets: bytesBuckets}, requestLabels),
		respSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "istio_response_bytes",
			Help: helpRespSize, Buckets: bytesBuckets}, requestLabels),
		tcpSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_" + statTCPSent,
			Help: helpTCP[0]}, tcpLabels),
		tcpRecv: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_" + statTCPReceived,
			Help: helpTCP[1]}, tcpLabels),
		tcpOpen: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_" + statTCPOpened,
			Help: helpTCP[2]}, tcpLabels),
		tcpClose: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "istio_" + statTCPClosed,
			Help: helpTCP[3]}, tcpLabels),
	}
	m.reg.MustRegister(m.requests, m.duration, m.reqSize, m.respSize, m.tcpSent, m.tcpRecv, m.tcpOpen, m.tcpClose, m.custom)
	return m
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// key builds the label tuple of a record. Outbound (reporter source): the
// source is this proxy and the destination comes from the endpoint's metadata
// and the cluster name. Inbound (reporter destination): the destination is
// this proxy; the source is the mTLS peer (unknown for plaintext).
func (m *metrics) key(r *record, protocol, code, grpcStatus string) labelKey {
	var k labelKey
	self := m.self
	var peer [5]string
	if r.host != nil {
		w := r.host.workload
		peer = [5]string{orUnknown(w.Name), orUnknown(w.Namespace), orUnknown(r.host.principal), orUnknown(w.App), orUnknown(w.Version)}
	} else {
		peer = [5]string{"unknown", "unknown", "unknown", "unknown", "unknown"}
	}
	svc, svcName, svcNS := serviceOf(r)
	if r.inbound {
		k[0] = "destination"
		// The source is the mTLS peer: namespace and principal from its
		// verified SPIFFE ID, workload/app/version from the metadata its
		// proxy sent (tls_peermeta.go).
		src := [5]string{"unknown", "unknown", "unknown", "unknown", "unknown"}
		k[18] = "none"
		if pi := r.peer; pi != nil && pi.principal != "" {
			md := r.peerMeta
			src = [5]string{orUnknown(md.Workload), orUnknown(pi.namespace), pi.principal, orUnknown(md.App), orUnknown(md.Version)}
			k[18] = "mutual_tls"
		}
		copy(k[1:6], src[:])
		copy(k[6:11], self[:])
	} else {
		k[0] = "source"
		copy(k[1:6], self[:])
		copy(k[6:11], peer[:])
		k[18] = "unknown"
	}
	k[11], k[12], k[13] = svc, svcName, svcNS
	k[14], k[15], k[16], k[17] = protocol, code, grpcStatus, r.flags.String()
	return k
}

// serviceOf derives destination_service* from the upstream cluster's
// telemetry metadata (Istio's filter_metadata.istio.services, as istiod puts
// on inbound clusters: the mesh's view, never the Host header), else from
// an Istio cluster name outbound|<port>|<subset>|<fqdn>, else from the
// authority.
func serviceOf(r *record) (svc, name, ns string) {
	if s := pickService(r.services, r.authority); s != nil {
		return s.Host, orUnknown(s.Name), orUnknown(s.Namespace)
	}
	c := r.upstreamCluster
	if strings.HasPrefix(c, "outbound|") {
		if i := strings.LastIndexByte(c, '|'); i >= 0 {
			svc = c[i+1:]
		}
	} else {
		svc = r.authority
		if i := strings.LastIndexByte(svc, ':'); i > 0 && !strings.HasSuffix(svc, "]") {
			svc = svc[:i]
		}
	}
	if svc == "" {
		return "unknown", "unknown", "unknown"
	}
	name, rest, ok := strings.Cut(svc, ".")
	if !ok {
		return svc, name, "unknown"
	}
	ns, _, _ = strings.Cut(rest, ".")
	return svc, name, ns
}

// pickService is the service of ss the request addressed: the one whose
// host or short name the authority names, else the first (a workload behind
// several services on one port); nil when ss is empty.
func pickService(ss []xdsconfig.ServiceMeta, authority string) *xdsconfig.ServiceMeta {
	if len(ss) == 0 {
		return nil
	}
	host := authority
	if strings.IndexByte(authority, ':') >= 0 { // no SplitHostPort error (an allocation) for a bare host
		if h, _, err := net.SplitHostPort(authority); err == nil {
			host = h
		}
	}
	for i := range ss {
		s := &ss[i]
		if host == s.Host || host == s.Name || isDotted(host, s.Name, s.Namespace) || hasDotPrefix(s.Host, host) {
			return s
		}
	}
	return &ss[0]
}

// isDotted reports whether s is a+"."+b, without building the string.
func isDotted(s, a, b string) bool {
	return len(s) == len(a)+1+len(b) && hasDotPrefix(s, a) && s[len(a)+1:] == b
}

// hasDotPrefix reports whether s starts with a+".", without building the string.
func hasDotPrefix(s, a string) bool {
	return len(s) > len(a) && s[len(a)] == '.' && strings.HasPrefix(s, a)
}

// observeRequest records a finished request in the standard HTTP metrics,
// or as its HCM's istio.stats config says (st non-nil; x gives the CEL
// attributes of its tag expressions).
func (m *metrics) observeRequest(r *record, st *xdsconfig.IstioStats, x *exchange) {
	if st != nil {
		m.observeOverridden(r, st, func() map[string]any { return filterVars(x) })
		return
	}
	_, rs := m.series(r)
	rs.total.Inc()
	rs.duration.Observe(float64(r.duration.Microseconds()) / 1000)
	rs.reqSize.Observe(float64(r.bytesIn))
	rs.respSize.Observe(float64(r.bytesOut))
}

// labels returns the standard label tuple of a request.
func (m *metrics) labels(r *record) labelKey {
	proto := "http"
	if r.grpcStatus != "" {
		proto = "grpc"
	}
	return m.key(r, proto, strconv.Itoa(r.code), orDash(r.grpcStatus))
}

// series returns the standard label tuple of a request and its series.
func (m *metrics) series(r *record) (labelKey, *requestSeries) {
	k := m.labels(r)
	s, ok := m.cache.Load(k)
	if !ok {
		lv := k[:]
		s, _ = m.cache.LoadOrStore(k, &requestSeries{
			total:    m.requests.WithLabelValues(lv...),
			duration: m.duration.WithLabelValues(lv...),
			reqSize:  m.reqSize.WithLabelValues(lv...),
			respSize: m.respSize.WithLabelValues(lv...),
		})
	}
	return k, s.(*requestSeries)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// tcpKey is the TCP label tuple of a connection (tcpLabels order, in the
// first 17 places).
func (m *metrics) tcpKey(r *record) labelKey {
	k := m.key(r, "tcp", "", "")
	// Drop response_code and grpc_response_status positions for TCP.
	var tk labelKey
	copy(tk[:15], k[:15])
	tk[15], tk[16] = k[17], k[18]
	return tk
}

func (m *metrics) tcp(r *record) *tcpSeries {
	tk := m.tcpKey(r)
	s, ok := m.tcpCache.Load(tk)
	if !ok {
		lv := tk[:17]
		s, _ = m.tcpCache.LoadOrStore(tk, &tcpSeries{
			sent:     m.tcpSent.WithLabelValues(lv...),
			received: m.tcpRecv.WithLabelValues(lv...),
			opened:   m.tcpOpen.WithLabelValues(lv...),
			closed:   m.tcpClose.WithLabelValues(lv...),
		})
	}
	return s.(*tcpSeries)
}
