package proxy_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/bowline-mesh/bowline/internal/proxy"
)

// TestRecentFailures: the admin's /debug/failures lists the failed requests
// (4xx, 5xx, response flags) newest first, with their access log fields;
// successful ones are not kept.
func TestRecentFailures(t *testing.T) {
	bk := startBackend(t, "app", nil)
	lp := freePort(t)
	e := newEnv(t, resources(
		[]types.Resource{listenerOf(t, "out", "127.0.0.1", lp, true, hcmFilter(t, "80"))},
		[]types.Resource{routeConfig("80", routeTo("/app", "app"))},
		[]types.Resource{edsCluster("app")}, []types.Resource{cla("app", bk.addr)}))
	client := &http.Client{}
	defer client.CloseIdleConnections()
	for _, c := range []struct {
		path string
		code int
	}{{"/app", 200}, {"/nowhere", 404}, {"/app/ok", 200}, {"/missing/x?y=1", 404}} {
		if resp, _ := get(t, client, hostPort(lp), "app.example", c.path, map[string]string{"x-request-id": "rid" + c.path}); resp.StatusCode != c.code {
			t.Fatalf("GET %s: %d, want %d", c.path, resp.StatusCode, c.code)
		}
	}
	var got []proxy.Failure
	if err := json.Unmarshal([]byte(e.admin(t, "/debug/failures")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d failures, want the 2 route misses: %+v", len(got), got)
	}
	for i, want := range []struct{ path, rid string }{{"/missing/x?y=1", "rid/missing/x?y=1"}, {"/nowhere", "rid/nowhere"}} {
		f := got[i]
		if f.Path != want.path || f.Code != 404 || f.Flags != "NR" || f.Method != "GET" || f.Authority != "app.example" || f.RequestID != want.rid || f.Inbound {
			t.Errorf("failure %d = %+v, want GET app.example%s 404 NR %s outbound", i, f, want.path, want.rid)
		}
	}
	if !got[0].Time.After(got[1].Time) && !got[0].Time.Equal(got[1].Time) {
		t.Errorf("not newest first: %v then %v", got[0].Time, got[1].Time)
	}
}
