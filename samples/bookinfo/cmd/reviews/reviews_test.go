package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/forward"
	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/upstream"
)

func noProxy(*http.Request) (*url.URL, error) { return nil, nil }

func TestConfigFromEnv(t *testing.T) {
	host := func() (string, error) { return "box", nil }
	tests := []struct {
		name string
		env  map[string]string
		want config
	}{
		{
			name: "v1",
			env:  map[string]string{"ENABLE_RATINGS": "false"},
			want: config{starColor: "black", ratingsURL: "http://ratings:9080/ratings", ratingsTimeout: 10 * time.Second, podName: "box"},
		},
		{
			name: "v2",
			env:  map[string]string{"ENABLE_RATINGS": "true", "STAR_COLOR": "black", "BOWLINE_WORKLOAD": "reviews-v2-0", "HOSTNAME": "h"},
			want: config{ratingsEnabled: true, starColor: "black", ratingsURL: "http://ratings:9080/ratings", ratingsTimeout: 10 * time.Second, podName: "reviews-v2-0"},
		},
		{
			name: "v3",
			env:  map[string]string{"ENABLE_RATINGS": "TRUE", "STAR_COLOR": "red", "HOSTNAME": "reviews-v3-abc", "CLUSTER_NAME": "c1"},
			want: config{ratingsEnabled: true, starColor: "red", ratingsURL: "http://ratings:9080/ratings", ratingsTimeout: 2500 * time.Millisecond, podName: "reviews-v3-abc", clusterName: "c1"},
		},
		{
			name: "ratings location",
			env:  map[string]string{"RATINGS_HOSTNAME": "stars", "SERVICES_DOMAIN": "bookinfo.svc", "RATINGS_SERVICE_PORT": "8080"},
			want: config{starColor: "black", ratingsURL: "http://stars.bookinfo.svc:8080/ratings", ratingsTimeout: 10 * time.Second, podName: "box"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := configFromEnv(func(k string) string { return tt.env[k] }, host)
			if got != tt.want {
				t.Errorf("configFromEnv() = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// fakeRatings is a ratings upstream that records calls.
type fakeRatings struct {
	calls  atomic.Int32
	header atomic.Value // http.Header of the last call
	status int
	hang   bool
}

func (f *fakeRatings) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	f.header.Store(r.Header.Clone())
	if f.hang {
		<-r.Context().Done()
		return
	}
	if f.status != 0 {
		http.Error(w, "fault filter abort", f.status)
		return
	}
	if r.URL.Path != "/ratings/0" {
		http.NotFound(w, r)
		return
	}
	_, _ = w.Write([]byte(`{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`))
}

func getReviews(t *testing.T, cfg config, h http.Header) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/reviews/0", nil)
	for k, v := range h {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	newHandler(cfg).ServeHTTP(rec, req)
	var body map[string]any
	if rec.Code == 200 {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("decode %s: %v", rec.Body, err)
		}
	}
	return rec.Code, body
}

func ratingsOf(t *testing.T, body map[string]any) []any {
	t.Helper()
	var out []any
	for _, r := range body["reviews"].([]any) {
		out = append(out, r.(map[string]any)["rating"])
	}
	return out
}

func TestReviewsVersions(t *testing.T) {
	tests := []struct {
		name        string
		enabled     bool
		color       string
		wantCalls   int32
		wantRatings string
	}{
		{name: "v1 has no stars and does not call ratings", enabled: false, color: "black", wantCalls: 0, wantRatings: `[null,null]`},
		{name: "v2 black stars", enabled: true, color: "black", wantCalls: 1, wantRatings: `[{"color":"black","stars":5},{"color":"black","stars":4}]`},
		{name: "v3 red stars", enabled: true, color: "red", wantCalls: 1, wantRatings: `[{"color":"red","stars":5},{"color":"red","stars":4}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRatings{}
			srv := httptest.NewServer(f)
			defer srv.Close()
			cfg := config{ratingsEnabled: tt.enabled, starColor: tt.color, ratingsURL: srv.URL + "/ratings",
				ratingsTimeout: 5 * time.Second, podName: "reviews-x-1", client: upstream.NewClient(noProxy)}
			code, body := getReviews(t, cfg, nil)
			if code != 200 {
				t.Fatalf("status %d", code)
			}
			got, _ := json.Marshal(ratingsOf(t, body))
			if string(got) != tt.wantRatings {
				t.Errorf("ratings = %s, want %s", got, tt.wantRatings)
			}
			if n := f.calls.Load(); n != tt.wantCalls {
				t.Errorf("ratings calls = %d, want %d", n, tt.wantCalls)
			}
			if body["id"] != "0" || body["podname"] != "reviews-x-1" || body["clustername"] != nil {
				t.Errorf("id/podname/clustername = %v/%v/%v", body["id"], body["podname"], body["clustername"])
			}
			first := body["reviews"].([]any)[0].(map[string]any)
			if first["reviewer"] != "Reviewer1" || !strings.Contains(first["text"].(string), "slapstick") {
				t.Errorf("first review = %v", first)
			}
		})
	}
}

func TestReviewsRatingsUnavailable(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	tests := []struct {
		name   string
		fake   *fakeRatings
		target string
	}{
		{name: "ratings aborts with 500", fake: &fakeRatings{status: 500}},
		{name: "ratings times out", fake: &fakeRatings{hang: true}},
		{name: "ratings unreachable", target: closedURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if tt.fake != nil {
				srv := httptest.NewServer(tt.fake)
				defer srv.Close()
				target = srv.URL
			}
			cfg := config{ratingsEnabled: true, starColor: "red", ratingsURL: target + "/ratings",
				ratingsTimeout: 50 * time.Millisecond, podName: "p", client: upstream.NewClient(noProxy)}
			code, body := getReviews(t, cfg, nil)
			if code != 200 {
				t.Fatalf("status %d, want 200 (reviews degrades, it does not fail)", code)
			}
			got, _ := json.Marshal(ratingsOf(t, body))
			want := `[{"error":"Ratings service is currently unavailable"},{"error":"Ratings service is currently unavailable"}]`
			if string(got) != want {
				t.Errorf("ratings = %s, want %s", got, want)
			}
		})
	}
}

func TestReviewsPropagatesHeaders(t *testing.T) {
	f := &fakeRatings{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := config{ratingsEnabled: true, starColor: "black", ratingsURL: srv.URL + "/ratings",
		ratingsTimeout: 5 * time.Second, clusterName: "east", client: upstream.NewClient(noProxy)}
	in := http.Header{}
	for _, n := range forward.Names() {
		in.Set(n, "v-"+n)
	}
	in.Set("x-not-propagated", "secret")
	_, body := getReviews(t, cfg, in)
	if body["clustername"] != "east" {
		t.Errorf("clustername = %v", body["clustername"])
	}
	got := f.header.Load().(http.Header)
	for _, n := range forward.Names() {
		if v := got.Get(n); v != "v-"+n {
			t.Errorf("ratings got %s = %q, want %q", n, v, "v-"+n)
		}
	}
	if got.Get("x-not-propagated") != "" {
		t.Error("an unlisted header reached ratings")
	}
}

func TestReviewsBadID(t *testing.T) {
	rec := httptest.NewRecorder()
	newHandler(config{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/reviews/zero", nil))
	if rec.Code != 400 {
		t.Errorf("status = %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	newHandler(config{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	if strings.TrimSpace(rec.Body.String()) != `{"status":"Reviews is healthy"}` {
		t.Errorf("health = %s", rec.Body)
	}
}
