package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/xds/server"
)

func syncServer(t *testing.T, sz server.Syncz) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/syncz" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(sz)
	}))
	t.Cleanup(hs.Close)
	return strings.TrimPrefix(hs.URL, "http://")
}

func TestProxyStatus(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sz := server.Syncz{
		ControlPlane: server.ControlPlane{ID: "discovery-host1", Version: "v0.1.0"},
		Proxies: []server.ProxyStatus{
			{ID: "sidecar~10.0.0.1~productpage-v1.default~default.svc.cluster.local", Type: "sidecar", Namespace: "default", ConnectedSince: since,
				Types: map[string]server.TypeStatus{
					"CDS": {Sent: "c1", Acked: "c1", Nonce: "4"}, "LDS": {Sent: "l1", Acked: "l1", Nonce: "5"},
					"EDS": {Sent: "e2", Acked: "e1", Nonce: "6"}, "RDS": {Sent: "r1", Acked: "r1", Nonce: "7"}}},
			{ID: "sidecar~10.0.0.2~reviews-v2.default~default.svc.cluster.local", Type: "sidecar", Namespace: "default", ConnectedSince: since, Delta: true,
				Types: map[string]server.TypeStatus{
					"CDS": {Sent: "c2", Acked: "c1", Nonce: "2", NACK: "cluster outbound|9080|v3|reviews: unknown subset", NACKedVersion: "c2"},
					"LDS": {Sent: "l1", Acked: "l1", Nonce: "3"}}},
			{ID: "grpc-client", Type: "sidecar", Namespace: "default", Generator: "grpc", ConnectedSince: since, Types: map[string]server.TypeStatus{}},
		},
	}
	addr := syncServer(t, sz)
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"table", []string{"proxy-status", "--debug-address", addr}, 0},
		{"detail", []string{"proxy-status", "--debug-address", addr, "reviews-v2"}, 0},
		{"ambiguous", []string{"proxy-status", "--debug-address", addr, "sidecar~"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, "", tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.wantCode, errOut)
			}
			golden(t, "proxystatus_"+tt.name, out+errOut)
		})
	}
}

func TestProxyStatusUnreachable(t *testing.T) {
	_, errOut, code := run(t, "", "proxy-status", "--debug-address", "127.0.0.1:1", "--timeout", "2s")
	if code != 1 || !strings.Contains(errOut, "is bowline discovery running?") {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
}

func TestQualifyProxy(t *testing.T) {
	sz := &server.Syncz{Proxies: []server.ProxyStatus{{ID: "productpage-v1-abc.bookinfo"}, {ID: "productpage-v1-abc.other"}, {ID: "details-v1-x.bookinfo"},
		{ID: "router~10.244.0.68~istio-ingressgateway-bf4f6.istio-system~istio-system.svc.cluster.local"}}}
	for _, tc := range []struct{ name, query, ns, want string }{
		{"pod in the context's namespace", "productpage-v1-abc", "bookinfo", "productpage-v1-abc.bookinfo"},
		{"pod in another namespace", "productpage-v1-abc", "other", "productpage-v1-abc.other"},
		{"no such pod there: matched as a part", "details", "bookinfo", "details"},
		{"no namespace (not a cluster)", "productpage-v1-abc", "", "productpage-v1-abc"},
		{"a node id TYPE~IP~POD.NS~DOMAIN", "istio-ingressgateway-bf4f6", "istio-system", "router~10.244.0.68~istio-ingressgateway-bf4f6.istio-system~istio-system.svc.cluster.local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := qualifyProxy(sz, tc.query, tc.ns); got != tc.want {
				t.Errorf("qualifyProxy(%q, %q) = %q, want %q", tc.query, tc.ns, got, tc.want)
			}
		})
	}
}
