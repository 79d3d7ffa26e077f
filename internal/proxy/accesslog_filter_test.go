package proxy

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
	"github.com/bowline-mesh/bowline/internal/telemetry"
)

// filterExchange is a finished request for access log filter tests: GET
// /productpage?u=1 from jason answered 503 UF by 10.0.0.7:9080.
func filterExchange(t testing.TB, exprs ...string) (*exchange, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	p := New(Config{AccessLogWriter: &out})
	hcm := &xdsconfig.HTTPConnectionManager{}
	for _, e := range exprs {
		prg, err := telemetry.CompileAccessLogFilter(e)
		if err != nil {
			t.Fatalf("compile %q: %v", e, err)
		}
		hcm.AccessLogs = append(hcm.AccessLogs, xdsconfig.AccessLog{Path: "/dev/stdout", Filter: prg, Expression: e})
	}
	r := httptest.NewRequest(http.MethodGet, "http://productpage:9080/productpage?u=1", nil)
	r.Header.Set("X-User", "jason")
	w := httptest.NewRecorder()
	w.Header().Set("X-Served-By", "proxy")
	rec := &record{start: time.Now(), method: "GET", path: "/productpage?u=1", protocol: "HTTP/1.1", authority: "productpage:9080",
		requestID: "rid-1", code: 503, flags: flagUF, upstreamHost: "10.0.0.7:9080"}
	return &exchange{p: p, w: w, r: r, rec: rec, hcm: hcm}, &out
}

// TestLogAccessFilter: each attribute a filter reads has the request's
// value; a filter that is false, fails to evaluate or is not a bool drops
// the line.
func TestLogAccessFilter(t *testing.T) {
	for _, c := range []struct {
		expr string
		logs bool
	}{
		{"response.code >= 400", true},
		{"response.code < 400", false},
		{"request.headers['x-user'] == 'jason'", true},
		{"request.headers['x-user'] == 'paul'", false},
		{"request.url_path == '/productpage' && request.method == 'GET'", true},
		{"response.headers['x-served-by'] == 'proxy'", true},
		{"upstream.address == '10.0.0.7:9080'", true},
		{"connection.mtls", false},
		{"request.headers['absent'] == 'x'", false}, // no such key: an error, not logged
		{"size(destination) == 0 && size(source) == 0", true},
	} {
		t.Run(c.expr, func(t *testing.T) {
			x, out := filterExchange(t, c.expr)
			x.p.logAccess(x)
			if got := strings.Contains(out.String(), "rid-1"); got != c.logs {
				t.Errorf("logged %v, want %v: %q", got, c.logs, out.String())
			}
		})
	}
}

// BenchmarkLogAccessFilter is the per-request cost of an HCM access log
// with a CEL filter that drops the request.
func BenchmarkLogAccessFilter(b *testing.B) {
	for _, expr := range []string{"response.code >= 600", "request.headers['x-user'] == 'paul'"} {
		b.Run(expr, func(b *testing.B) {
			x, _ := filterExchange(b, expr)
			b.ReportAllocs()
			for b.Loop() {
				x.p.logAccess(x)
			}
		})
	}
}

// TestFormatHostname: %HOSTNAME% is the machine's name.
func TestFormatHostname(t *testing.T) {
	parts, err := telemetry.ParseLogFormat("host=%HOSTNAME%")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.Hostname()
	x, _ := filterExchange(t)
	if got := string(renderParts(nil, parts, x)); got != "host="+want {
		t.Errorf("rendered %q, want %q", got, "host="+want)
	}
}
