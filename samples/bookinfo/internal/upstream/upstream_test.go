package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestBaseURL(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		service string
		port    string
		want    string
	}{
		{name: "plain service name", service: "details", want: "http://details:9080"},
		{name: "hostname override", env: map[string]string{"RATINGS_HOSTNAME": "ratings-canary"}, service: "ratings", want: "http://ratings-canary:9080"},
		{name: "services domain", env: map[string]string{"SERVICES_DOMAIN": "default.svc.cluster.local"}, service: "reviews", want: "http://reviews.default.svc.cluster.local:9080"},
		{name: "hostname and domain", env: map[string]string{"DETAILS_HOSTNAME": "d", "SERVICES_DOMAIN": "bookinfo"}, service: "details", want: "http://d.bookinfo:9080"},
		{name: "explicit port", service: "ratings", port: "8080", want: "http://ratings:8080"},
		{name: "other service's override ignored", env: map[string]string{"DETAILS_HOSTNAME": "x"}, service: "reviews", want: "http://reviews:9080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			if got := BaseURL(getenv, tt.service, tt.port); got != tt.want {
				t.Errorf("BaseURL() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestClientUsesProxy shows the mesh contract: a call to http://details:9080
// reaches the proxy (the sidecar) in absolute form with the service as Host.
func TestClientUsesProxy(t *testing.T) {
	type seen struct{ uri, host, rid string }
	got := make(chan seen, 1)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{uri: r.RequestURI, host: r.Host, rid: r.Header.Get("x-request-id")}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":0}`))
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	c := NewClient(http.ProxyURL(pu))
	var body struct{ ID int }
	res := GetJSON(context.Background(), c, "http://details:9080/details/0",
		http.Header{"X-Request-Id": {"r1"}}, 5*time.Second, &body)
	if !res.OK() {
		t.Fatalf("GetJSON result = %+v", res)
	}
	s := <-got
	if s.uri != "http://details:9080/details/0" || s.host != "details:9080" || s.rid != "r1" {
		t.Errorf("proxy saw %+v", s)
	}
}

func TestGetJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte(`{"id":7}`))
		case "/fail":
			http.Error(w, "fault filter abort", http.StatusInternalServerError)
		case "/garbage":
			_, _ = w.Write([]byte(`not json`))
		case "/hang":
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	c := NewClient(func(*http.Request) (*url.URL, error) { return nil, nil })
	tests := []struct {
		path       string
		wantStatus int
		wantErr    bool
		wantOK     bool
	}{
		{path: "/ok", wantStatus: 200, wantOK: true},
		{path: "/fail", wantStatus: 500},
		{path: "/garbage", wantStatus: 200, wantErr: true},
		{path: "/hang", wantStatus: 0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			var v struct{ ID int }
			res := GetJSON(context.Background(), c, srv.URL+tt.path, nil, 100*time.Millisecond, &v)
			if res.Status != tt.wantStatus || (res.Err != nil) != tt.wantErr || res.OK() != tt.wantOK {
				t.Errorf("GetJSON(%s) = %+v", tt.path, res)
			}
		})
	}
}
