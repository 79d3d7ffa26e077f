package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/forward"
	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/upstream"
)

// Answers of the real services, as the fakes give them.
const (
	detailsJSON          = `{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`
	reviewsV1JSON        = `{"id":"0","podname":"reviews-v1-0","clustername":null,"reviews":[{"reviewer":"Reviewer1","text":"An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},{"reviewer":"Reviewer2","text":"Absolutely fun and entertaining."}]}`
	reviewsV2JSON        = `{"id":"0","podname":"reviews-v2-0","clustername":null,"reviews":[{"reviewer":"Reviewer1","text":"t1","rating":{"stars":5,"color":"black"}},{"reviewer":"Reviewer2","text":"t2","rating":{"stars":4,"color":"black"}}]}`
	reviewsV3JSON        = `{"id":"0","podname":"reviews-v3-0","clustername":"east","reviews":[{"reviewer":"Reviewer1","text":"t1","rating":{"stars":5,"color":"red"}},{"reviewer":"Reviewer2","text":"t2","rating":{"stars":4,"color":"red"}}]}`
	reviewsNoRatingsJSON = `{"id":"0","podname":"reviews-v3-0","clustername":null,"reviews":[{"reviewer":"Reviewer1","text":"t1","rating":{"error":"Ratings service is currently unavailable"}},{"reviewer":"Reviewer2","text":"t2","rating":{"error":"Ratings service is currently unavailable"}}]}`
	ratingsJSON          = `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`
)

// call is one request the fake sidecar received.
type call struct {
	host, path string
	header     http.Header
}

// fakeMesh plays the sidecar: productpage's client sends every outbound
// request to it (as HTTP_PROXY would), and it answers per service host.
type fakeMesh struct {
	mu       sync.Mutex
	calls    []call
	services map[string]http.HandlerFunc // by host:port
}

func (m *fakeMesh) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.calls = append(m.calls, call{host: r.Host, path: r.URL.Path, header: r.Header.Clone()})
	h := m.services[r.Host]
	m.mu.Unlock()
	if !r.URL.IsAbs() {
		http.Error(w, "not a proxy request", http.StatusBadRequest)
		return
	}
	if h == nil {
		http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
		return
	}
	h(w, r)
}

func (m *fakeMesh) callsTo(host string) []call {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []call
	for _, c := range m.calls {
		if c.host == host {
			out = append(out, c)
		}
	}
	return out
}

func answer(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

func fail(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "fault filter abort", status) }
}

func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// newTestHandler returns productpage configured as in production (service
// names, port 9080) with its outbound traffic going to the fake sidecar.
func newTestHandler(t *testing.T, m *fakeMesh, timeout time.Duration) http.Handler {
	t.Helper()
	proxy := httptest.NewServer(m)
	t.Cleanup(proxy.Close)
	pu, _ := url.Parse(proxy.URL)
	cfg := configFromEnv(func(string) string { return "" })
	cfg.client = upstream.NewClient(http.ProxyURL(pu))
	if timeout > 0 {
		cfg.timeout = timeout
	}
	return newHandler(cfg)
}

func get(h http.Handler, path string, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{"REVIEWS_HOSTNAME": "reviews-canary", "SERVICES_DOMAIN": "default.svc.cluster.local"}
	cfg := configFromEnv(func(k string) string { return env[k] })
	if cfg.detailsURL != "http://details.default.svc.cluster.local:9080" ||
		cfg.reviewsURL != "http://reviews-canary.default.svc.cluster.local:9080" ||
		cfg.ratingsURL != "http://ratings.default.svc.cluster.local:9080" {
		t.Errorf("urls = %s %s %s", cfg.detailsURL, cfg.reviewsURL, cfg.ratingsURL)
	}
	if cfg.timeout != 3*time.Second || cfg.reviewsAttempts != 2 {
		t.Errorf("timeout %v attempts %d, want 3s and 2 as Istio's productpage", cfg.timeout, cfg.reviewsAttempts)
	}
}

func TestProductPageReviewsVersions(t *testing.T) {
	tests := []struct {
		name       string
		reviews    string
		wantBlack  int
		wantRed    int
		wantEmpty  int
		wantServed string
		wantText   string
	}{
		{name: "v1 no stars", reviews: reviewsV1JSON, wantServed: "Reviews served by: reviews-v1-0</p>", wantText: "The slapstick humour is refreshing!"},
		{name: "v2 black stars", reviews: reviewsV2JSON, wantBlack: 9, wantEmpty: 1, wantServed: "Reviews served by: reviews-v2-0</p>"},
		{name: "v3 red stars", reviews: reviewsV3JSON, wantRed: 9, wantEmpty: 1, wantServed: "Reviews served by: reviews-v3-0 on cluster east</p>"},
		{name: "ratings unavailable", reviews: reviewsNoRatingsJSON, wantServed: "Reviews served by: reviews-v3-0</p>",
			wantText: `<p class="rating-error">Ratings service is currently unavailable</p>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeMesh{services: map[string]http.HandlerFunc{
				"details:9080": answer(detailsJSON),
				"reviews:9080": answer(tt.reviews),
			}}
			rec := get(newTestHandler(t, m, 0), "/productpage", nil)
			body := rec.Body.String()
			if rec.Code != 200 {
				t.Fatalf("status %d", rec.Code)
			}
			for class, want := range map[string]int{
				`class="stars-black"`: tt.wantBlack,
				`class="stars-red"`:   tt.wantRed,
				`class="stars-empty"`: tt.wantEmpty,
			} {
				if got := strings.Count(body, class); got != want {
					t.Errorf("%s appears %d times, want %d", class, got, want)
				}
			}
			for _, want := range []string{tt.wantServed, tt.wantText, "The Comedy of Errors", "<b>William Shakespeare&#39;s</b>",
				`<dd id="details-publisher">PublisherA</dd>`, `<dd id="details-isbn10">1234567890</dd>`, "Book Reviews"} {
				if want == "" {
					continue
				}
				if !strings.Contains(body, want) && !strings.Contains(body, strings.ReplaceAll(want, "&#39;", "'")) {
					t.Errorf("page lacks %q", want)
				}
			}
			if n := len(m.callsTo("reviews:9080")); n != 1 {
				t.Errorf("reviews called %d times, want 1", n)
			}
			if c := m.callsTo("reviews:9080"); len(c) == 1 && c[0].path != "/reviews/0" {
				t.Errorf("reviews path %q", c[0].path)
			}
		})
	}
}

func TestProductPageFailures(t *testing.T) {
	tests := []struct {
		name             string
		details, reviews http.HandlerFunc
		timeout          time.Duration
		wantText         []string
		wantAbsent       []string
		wantReviewsCalls int
	}{
		{
			name: "reviews aborted", details: answer(detailsJSON), reviews: fail(http.StatusInternalServerError),
			wantText:         []string{"Error fetching product reviews", reviewsUnavailable, "PublisherA"},
			wantAbsent:       []string{"Error fetching product details"},
			wantReviewsCalls: 2,
		},
		{
			name: "reviews times out twice", details: answer(detailsJSON), reviews: hang, timeout: 50 * time.Millisecond,
			wantText:         []string{"Error fetching product reviews", reviewsUnavailable},
			wantReviewsCalls: 2,
		},
		{
			name: "reviews answers on the retry", details: answer(detailsJSON), reviews: flaky(fail(503), answer(reviewsV3JSON)),
			wantText:         []string{`class="stars-red"`},
			wantAbsent:       []string{reviewsUnavailable},
			wantReviewsCalls: 2,
		},
		{
			name: "details aborted", details: fail(http.StatusServiceUnavailable), reviews: answer(reviewsV2JSON),
			wantText:         []string{"Error fetching product details", detailsUnavailable, `class="stars-black"`},
			wantAbsent:       []string{"PublisherA", reviewsUnavailable},
			wantReviewsCalls: 1,
		},
		{
			name: "details times out", details: hang, reviews: answer(reviewsV1JSON), timeout: 50 * time.Millisecond,
			wantText:         []string{detailsUnavailable, "Reviews served by: reviews-v1-0"},
			wantReviewsCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fakeMesh{services: map[string]http.HandlerFunc{"details:9080": tt.details, "reviews:9080": tt.reviews}}
			rec := get(newTestHandler(t, m, tt.timeout), "/productpage", nil)
			if rec.Code != 200 {
				t.Fatalf("status %d, want 200 (the page degrades)", rec.Code)
			}
			body := rec.Body.String()
			for _, s := range tt.wantText {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tt.wantAbsent {
				if strings.Contains(body, s) {
					t.Errorf("page has %q", s)
				}
			}
			if n := len(m.callsTo("reviews:9080")); n != tt.wantReviewsCalls {
				t.Errorf("reviews called %d times, want %d", n, tt.wantReviewsCalls)
			}
			if n := len(m.callsTo("details:9080")); n != 1 {
				t.Errorf("details called %d times, want 1 (no retry)", n)
			}
		})
	}
}

// flaky answers with first on the first call and with then afterwards.
func flaky(first, then http.HandlerFunc) http.HandlerFunc {
	var mu sync.Mutex
	n := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		if k == 1 {
			first(w, r)
			return
		}
		then(w, r)
	}
}

func TestLoginSetsEndUser(t *testing.T) {
	m := &fakeMesh{services: map[string]http.HandlerFunc{
		"details:9080": answer(detailsJSON),
		"reviews:9080": answer(reviewsV2JSON),
	}}
	h := newTestHandler(t, m, 0)

	// Signed out: no end-user header.
	get(h, "/productpage", nil)
	for _, c := range m.calls {
		if v := c.header.Get("end-user"); v != "" {
			t.Fatalf("signed-out call to %s has end-user %q", c.host, v)
		}
	}

	// Sign in as jason.
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader("username=jason&passwd=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", "http://bookinfo.local/productpage")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "http://bookinfo.local/productpage" {
		t.Fatalf("login answered %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || cookies[0].Name != "session" || cookies[0].Value != "jason" {
		t.Fatalf("login cookies = %v", cookies)
	}

	m.calls = nil
	page := get(h, "/productpage", http.Header{"Cookie": {"session=jason"}, "X-Request-Id": {"rid-7"}})
	if !strings.Contains(page.Body.String(), `data-user="jason"`) {
		t.Error("page does not show the signed-in user")
	}
	for _, host := range []string{"details:9080", "reviews:9080"} {
		cs := m.callsTo(host)
		if len(cs) != 1 {
			t.Fatalf("%s called %d times", host, len(cs))
		}
		if got := cs[0].header.Get("end-user"); got != "jason" {
			t.Errorf("%s got end-user %q, want jason", host, got)
		}
		if got := cs[0].header.Get("cookie"); got != "session=jason" {
			t.Errorf("%s got cookie %q", host, got)
		}
		if got := cs[0].header.Get("x-request-id"); got != "rid-7" {
			t.Errorf("%s got x-request-id %q", host, got)
		}
	}

	// The API calls carry it too.
	m.calls = nil
	get(h, "/api/v1/products/0/reviews", http.Header{"Cookie": {"session=jason"}})
	if cs := m.callsTo("reviews:9080"); len(cs) != 1 || cs[0].header.Get("end-user") != "jason" {
		t.Errorf("api reviews call = %+v", cs)
	}

	// Sign out.
	req = httptest.NewRequest(http.MethodGet, "/logout", nil)
	req.Header.Set("Cookie", "session=jason")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	cookies = rec.Result().Cookies()
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "/productpage" ||
		len(cookies) != 1 || cookies[0].Name != "session" || cookies[0].MaxAge >= 0 {
		t.Errorf("logout answered %d to %q with cookies %v", rec.Code, rec.Header().Get("Location"), cookies)
	}
}

func TestLoginRejectsGet(t *testing.T) {
	h := newTestHandler(t, &fakeMesh{}, 0)
	if rec := get(h, "/login", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /login = %d", rec.Code)
	}
}

func TestPropagatesHeaders(t *testing.T) {
	m := &fakeMesh{services: map[string]http.HandlerFunc{
		"details:9080": answer(detailsJSON),
		"reviews:9080": answer(reviewsV1JSON),
		"ratings:9080": answer(ratingsJSON),
	}}
	h := newTestHandler(t, m, 0)
	in := http.Header{}
	for _, n := range forward.Names() {
		in.Set(n, "v-"+n)
	}
	in.Set("x-private", "no")
	get(h, "/productpage", in)
	get(h, "/api/v1/products/0/ratings", in)
	for _, host := range []string{"details:9080", "reviews:9080", "ratings:9080"} {
		cs := m.callsTo(host)
		if len(cs) != 1 {
			t.Fatalf("%s called %d times", host, len(cs))
		}
		for _, n := range forward.Names() {
			if got := cs[0].header.Get(n); got != "v-"+n {
				t.Errorf("%s: %s = %q, want %q", host, n, got, "v-"+n)
			}
		}
		if cs[0].header.Get("x-private") != "" {
			t.Errorf("%s: unlisted header forwarded", host)
		}
	}
}

func TestAPI(t *testing.T) {
	m := &fakeMesh{services: map[string]http.HandlerFunc{
		"details:9080": answer(detailsJSON),
		"reviews:9080": answer(reviewsV2JSON),
		"ratings:9080": fail(http.StatusInternalServerError),
	}}
	h := newTestHandler(t, m, 0)
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{path: "/api/v1/products", wantStatus: 200, wantBody: `"title":"The Comedy of Errors"`},
		{path: "/api/v1/products/0", wantStatus: 200, wantBody: detailsJSON},
		{path: "/api/v1/products/0/reviews", wantStatus: 200, wantBody: reviewsV2JSON},
		{path: "/api/v1/products/0/ratings", wantStatus: 500, wantBody: `{"error":"` + ratingsUnavailable + `"}`},
		{path: "/health", wantStatus: 200, wantBody: "Product page is healthy"},
		{path: "/", wantStatus: 200, wantBody: "http://reviews:9080/reviews"},
		{path: "/index.html", wantStatus: 200, wantBody: `href="productpage?u=test"`},
		{path: "/static/bookinfo.css", wantStatus: 200, wantBody: ".stars-red"},
		{path: "/nope", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			rec := get(h, tt.path, nil)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body %s lacks %s", rec.Body, tt.wantBody)
			}
		})
	}
	if cs := m.callsTo("details:9080"); len(cs) != 1 || cs[0].path != "/details/0" {
		t.Errorf("details calls = %+v", cs)
	}
}

func TestAPIStatusPassThrough(t *testing.T) {
	m := &fakeMesh{services: map[string]http.HandlerFunc{"details:9080": fail(http.StatusServiceUnavailable)}}
	h := newTestHandler(t, m, 0)
	rec := get(h, "/api/v1/products/0", nil)
	if rec.Code != 503 || strings.TrimSpace(rec.Body.String()) != `{"error":"`+detailsUnavailable+`"}` {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
	// reviews is not configured in the fake: the sidecar answers 503.
	rec = get(h, "/api/v1/products/0/reviews", nil)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), reviewsUnavailable) {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
}

func TestStarColorClass(t *testing.T) {
	for in, want := range map[string]string{"black": "black", "Red": "red", "": "unknown", `red" onload="x`: "unknown"} {
		if got := (pageView{}).StarColor(in); got != want {
			t.Errorf("StarColor(%q) = %q, want %q", in, got, want)
		}
	}
}
