package cli

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseDownwardLabels(t *testing.T) {
	got, err := parseDownwardLabels("app=\"reviews\"\npod-template-hash=\"7d88846999\"\nsecurity.istio.io/tlsMode=\"istio\"\nnote=\"a \\\"quoted\\\" word\"\n")
	want := map[string]string{"app": "reviews", "pod-template-hash": "7d88846999", "security.istio.io/tlsMode": "istio", "note": `a "quoted" word`}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseDownwardLabels = %v, %v", got, err)
	}
	if _, err := parseDownwardLabels("app=reviews\n"); err == nil || err.Error() != `line 1: "app=reviews" is not key="value"` {
		t.Errorf("unquoted value: %v", err)
	}
}

func TestEnvoyLogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "trace": slog.LevelDebug, "info": slog.LevelInfo,
		"warning": slog.LevelWarn, "error": slog.LevelError, "critical": slog.LevelError} {
		if got, err := envoyLogLevel(in); err != nil || got != want {
			t.Errorf("envoyLogLevel(%q) = %v %v", in, got, err)
		}
	}
	if _, err := envoyLogLevel("loud"); err == nil {
		t.Error("loud accepted")
	}
	_, errOut, code := run(t, "", "proxy", "--insecure-xds", "--log-level", "loud")
	if code != 1 || errOut != "error: --log-level: \"loud\": want trace, debug, info, warning, error, critical or off\n" {
		t.Errorf("exit %d %q", code, errOut)
	}
}

func TestWait(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) < 3 {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	// A poll slower than --period (a loaded machine) is retried, so the
	// server may see more than three.
	out, errOut, code := run(t, "", "wait", "--url", srv.URL+"/healthz/ready", "--period", "10ms", "--timeout", "1m")
	if code != 0 || out != "sidecar ready\n" || n.Load() < 3 {
		t.Errorf("exit %d out %q err %q after %d polls", code, out, errOut, n.Load())
	}
	never := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	defer never.Close()
	_, errOut, code = run(t, "", "wait", "--url", never.URL, "--period", "10ms", "--timeout", "100ms")
	if code != 1 || !strings.HasPrefix(errOut, "error: sidecar not ready after 100ms ("+never.URL+"): status 503 Service Unavailable") {
		t.Errorf("exit %d %q", code, errOut)
	}
}

// TestRequest: bowline request sends the method and path to the local port
// and prints the answer; a status outside 2xx exits 1.
func TestRequest(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Method + " " + r.URL.Path)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "OK\n")
	}))
	defer srv.Close()
	_, p, _ := strings.Cut(srv.URL, "127.0.0.1:")
	out, errOut, code := run(t, "", "request", "--debug-port="+p, "post", "drain")
	if code != 0 || out != "OK\n" || got.Load() != "POST /drain" {
		t.Errorf("bowline request POST drain: exit %d out %q err %q, server saw %v", code, out, errOut, got.Load())
	}
	_, errOut, code = run(t, "", "request", "--debug-port="+p, "GET", "/missing")
	if want := "error: GET http://localhost:" + p + "/missing: 404 Not Found"; code != 1 || !strings.HasPrefix(errOut, want) {
		t.Errorf("bowline request GET /missing: exit %d %q, want 1 %q", code, errOut, want)
	}
	if _, errOut, code = run(t, "", "request", "--debug-port=0", "GET", "x"); code != 2 {
		t.Errorf("--debug-port=0: exit %d %q, want 2", code, errOut)
	}
}
