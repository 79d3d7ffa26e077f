package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// AppProbe is one of the app's own probes, which the sidecar runs when the
// kubelet asks its status port for /app-health/CONTAINER/KIND (Istio's
// rewriteAppHTTPProbers): exactly one of HTTPGet, TCPSocket and GRPC.
type AppProbe struct {
	// HTTPGet probes an HTTP(S) path; 2xx and 3xx pass.
	HTTPGet *HTTPGetProbe
	// TCPSocket passes when a connection to Port opens.
	TCPSocket *TCPSocketProbe
	// GRPC passes when the gRPC health service answers SERVING.
	GRPC *GRPCProbe
	// Timeout bounds the probe (the Kubernetes probe's timeoutSeconds, 1s
	// when unset).
	Timeout time.Duration
}

// HTTPGetProbe is a Kubernetes httpGet probe with its port resolved.
type HTTPGetProbe struct {
	Path   string
	Port   uint16
	Scheme string // "HTTP" or "HTTPS"
	// Host, when set, is the Host header (Kubernetes' httpGet.host is an
	// address; the sidecar always probes its own pod).
	Host    string
	Headers http.Header
}

// TCPSocketProbe is a Kubernetes tcpSocket probe.
type TCPSocketProbe struct{ Port uint16 }

// GRPCProbe is a Kubernetes grpc probe.
type GRPCProbe struct {
	Port    uint16
	Service string
}

// appProbePath is /app-health/CONTAINER/KIND with a DNS-label container name.
var appProbePath = regexp.MustCompile(`^/app-health/[a-z0-9]([-a-z0-9]*[a-z0-9])?/(readyz|livez|startupz)$`)

// ParseAppProbes reads ISTIO_KUBE_APP_PROBERS: a JSON object from
// /app-health/CONTAINER/KIND paths to Kubernetes probe actions (httpGet,
// tcpSocket, grpc) and timeoutSeconds, as the injector writes it.
func ParseAppProbes(s string) (map[string]AppProbe, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var raw map[string]struct {
		HTTPGet *struct {
			Path        string          `json:"path"`
			Port        json.RawMessage `json:"port"`
			Host        string          `json:"host"`
			Scheme      string          `json:"scheme"`
			HTTPHeaders []struct {
				Name  string `json:"name"`
				Value string `json:"value"`
			} `json:"httpHeaders"`
		} `json:"httpGet"`
		TCPSocket *struct {
			Port json.RawMessage `json:"port"`
		} `json:"tcpSocket"`
		GRPC *struct {
			Port    int     `json:"port"`
			Service *string `json:"service"`
		} `json:"grpc"`
		TimeoutSeconds int `json:"timeoutSeconds"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("app probes: %w", err)
	}
	parsePort := func(path, field string, b json.RawMessage) (uint16, error) {
		var n int
		if err := json.Unmarshal(b, &n); err != nil || n < 1 || n > 65535 {
			return 0, fmt.Errorf("app probe %s: field %s: %s is not a port number (named ports are resolved by the injector)", path, field, b)
		}
		return uint16(n), nil
	}
	out := make(map[string]AppProbe, len(raw))
	for path, r := range raw {
		if !appProbePath.MatchString(path) {
			return nil, fmt.Errorf("app probe %q: want /app-health/CONTAINER/readyz, livez or startupz", path)
		}
		p := AppProbe{Timeout: time.Second}
		if r.TimeoutSeconds > 0 {
			p.Timeout = time.Duration(r.TimeoutSeconds) * time.Second
		}
		n := 0
		if h := r.HTTPGet; h != nil {
			n++
			pt, err := parsePort(path, "httpGet.port", h.Port)
			if err != nil {
				return nil, err
			}
			hp := &HTTPGetProbe{Path: h.Path, Port: pt, Scheme: strings.ToUpper(h.Scheme), Headers: http.Header{}}
			if hp.Scheme == "" {
				hp.Scheme = "HTTP"
			}
			if hp.Scheme != "HTTP" && hp.Scheme != "HTTPS" {
				return nil, fmt.Errorf("app probe %s: field httpGet.scheme: %q, want HTTP or HTTPS", path, h.Scheme)
			}
			if !strings.HasPrefix(hp.Path, "/") {
				hp.Path = "/" + hp.Path
			}
			for _, kv := range h.HTTPHeaders {
				if strings.EqualFold(kv.Name, "Host") {
					hp.Host = kv.Value
					continue
				}
				hp.Headers.Add(kv.Name, kv.Value)
			}
			p.HTTPGet = hp
		}
		if t := r.TCPSocket; t != nil {
			n++
			pt, err := parsePort(path, "tcpSocket.port", t.Port)
			if err != nil {
				return nil, err
			}
			p.TCPSocket = &TCPSocketProbe{Port: pt}
		}
		if g := r.GRPC; g != nil {
			n++
			pt, err := parsePort(path, "grpc.port", json.RawMessage(strconv.Itoa(g.Port)))
			if err != nil {
				return nil, err
			}
			p.GRPC = &GRPCProbe{Port: pt}
			if g.Service != nil {
				p.GRPC.Service = *g.Service
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("app probe %s: want exactly one of httpGet, tcpSocket and grpc, got %d", path, n)
		}
		out[path] = p
	}
	return out, nil
}

// AppScrape is where the app's own Prometheus metrics are (Istio's
// ISTIO_PROMETHEUS_ANNOTATIONS, from the pod's prometheus.io annotations).
type AppScrape struct {
	Port uint16
	Path string
}

// ParseAppScrape reads ISTIO_PROMETHEUS_ANNOTATIONS ({"scrape","path",
// "port"}); nil when empty, when scrape is "false" or no port is given.
func ParseAppScrape(s string) (*AppScrape, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var raw struct {
		Scrape string `json:"scrape"`
		Path   string `json:"path"`
		Port   string `json:"port"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("app metrics: %w", err)
	}
	if b, err := strconv.ParseBool(raw.Scrape); (err == nil && !b) || raw.Port == "" {
		return nil, nil
	}
	n, err := strconv.ParseUint(raw.Port, 10, 16)
	if err != nil || n == 0 {
		return nil, fmt.Errorf("app metrics: field port: %q is not a port number", raw.Port)
	}
	a := &AppScrape{Port: uint16(n), Path: raw.Path}
	if a.Path == "" {
		a.Path = "/metrics"
	}
	if !strings.HasPrefix(a.Path, "/") {
		a.Path = "/" + a.Path
	}
	return a, nil
}
