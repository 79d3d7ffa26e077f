package serve

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAddr(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "defaults", want: "127.0.0.1:9080"},
		{name: "port", env: map[string]string{"PORT": "19080"}, want: "127.0.0.1:19080"},
		{name: "bind addr", env: map[string]string{"BIND_ADDR": "127.0.1.7"}, want: "127.0.1.7:9080"},
		{name: "ipv6", env: map[string]string{"BIND_ADDR": "::1", "PORT": "1"}, want: "[::1]:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Addr(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("Addr() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestServeAndStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "hi")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New("", h, log).Serve(ctx, ln) }()

	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/x?y=1", nil)
	req.Header.Set("x-request-id", "rid-9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(body) != "hi" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	for _, want := range []string{"request served", "path=\"/x?y=1\"", "status=418", "request_id=rid-9"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("access log %q lacks %q", logs.String(), want)
		}
	}
}

// TestShutdownDelay: with SHUTDOWN_DELAY the server answers on (new
// connections too, each with Connection: close) after its context ended,
// and stops when the delay is over.
func TestShutdownDelay(t *testing.T) {
	if _, err := FromEnv(func(string) string { return "soon" }, nil, nil); err == nil || err.Error() != `SHUTDOWN_DELAY="soon": want a duration like 5s` {
		t.Errorf("SHUTDOWN_DELAY=soon: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hi") })
	s, err := FromEnv(func(k string) string { return map[string]string{"SHUTDOWN_DELAY": "5s"}[k] }, h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan time.Duration, 1)
	over := make(chan time.Time)
	s.after = func(d time.Duration) <-chan time.Time { asked <- d; return over }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	cancel()
	if d := <-asked; d != 5*time.Second {
		t.Fatalf("delay %s, want 5s", d)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("GET during the delay: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "hi" || !resp.Close {
		t.Errorf("GET during the delay: %d %q close=%v, want 200 hi with Connection: close", resp.StatusCode, body, resp.Close)
	}
	close(over)
	if err := <-done; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		t.Error("GET after the delay: answered, want the listener closed")
	}
}
