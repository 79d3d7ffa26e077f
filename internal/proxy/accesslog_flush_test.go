package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/bowline-mesh/bowline/internal/proxy"
)

// TestAccessLogFlush: with a flush interval the access log lines of real
// requests arrive at the interval, and a proxy that stops writes the lines
// still waiting (an interval of an hour never comes).
func TestAccessLogFlush(t *testing.T) {
	bk := startBackend(t, "app", nil)
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{{"at the interval", 20 * time.Millisecond}, {"at shutdown", time.Hour}} {
		t.Run(tc.name, func(t *testing.T) {
			lp := freePort(t)
			cp := startControlPlane(t, "")
			cp.push(t, resources(
				[]types.Resource{listenerOf(t, "l", "127.0.0.1", lp, true, hcmFilter(t, "r"))},
				[]types.Resource{&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{
					{Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{routeTo("/", "app")}}}}},
				[]types.Resource{edsCluster("app")},
				[]types.Resource{cla("app", bk.addr)}))
			px := startProxyAs(t, cp.addr, false, nodeID, "json", func(c *proxy.Config) { c.AccessLogFlushInterval = tc.interval })
			for _, path := range []string{"/one", "/two", "/three"} {
				resp, err := http.Get("http://" + hostPort(lp) + path)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			logged := func() bool {
				s := px.log.String()
				return strings.Contains(s, `"path":"/one"`) && strings.Contains(s, `"path":"/two"`) && strings.Contains(s, `"path":"/three"`)
			}
			if tc.interval == time.Hour {
				if px.log.String() != "" {
					t.Fatalf("written before the interval: %q", px.log.String())
				}
				px.stop()
				if !logged() {
					t.Fatalf("lines lost at shutdown: %q", px.log.String())
				}
				return
			}
			waitFor(t, "the three lines", logged)
		})
	}
}
