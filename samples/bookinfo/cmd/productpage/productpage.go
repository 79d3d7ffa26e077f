package main

import (
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/forward"
	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/upstream"
)

// Call limits, as in Istio's productpage: every call may take 3 s, and the
// reviews call is tried twice. With a 7 s delay injected on ratings for
// jason, reviews v2 (which waits 10 s for ratings) makes both attempts time
// out after about 6 s and the page shows the reviews error: the deliberate
// bug of Istio's fault-injection task.
const (
	callTimeout     = 3 * time.Second
	reviewsAttempts = 2
)

// Texts shown when a call fails.
const (
	detailsUnavailable = "Sorry, product details are currently unavailable for this book."
	reviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
	ratingsUnavailable = "Sorry, product ratings are currently unavailable for this book."
)

// sessionCookie holds the signed-in user's name.
const sessionCookie = "session"

//go:embed static
var staticFiles embed.FS

// config is what the handler needs from the environment.
type config struct {
	// detailsURL, reviewsURL and ratingsURL are the services' base URLs.
	detailsURL, reviewsURL, ratingsURL string
	// timeout bounds each call.
	timeout time.Duration
	// reviewsAttempts is how many times the reviews call is tried.
	reviewsAttempts int
	// client makes the calls (through the sidecar).
	client *http.Client
}

func configFromEnv(getenv func(string) string) config {
	return config{
		detailsURL:      upstream.BaseURL(getenv, "details", ""),
		reviewsURL:      upstream.BaseURL(getenv, "reviews", ""),
		ratingsURL:      upstream.BaseURL(getenv, "ratings", ""),
		timeout:         callTimeout,
		reviewsAttempts: reviewsAttempts,
	}
}

// product is one book of the catalogue.
type product struct {
	ID              int           `json:"id"`
	Title           string        `json:"title"`
	DescriptionHTML template.HTML `json:"descriptionHtml"`
}

func products() []product {
	return []product{{
		ID:    0,
		Title: "The Comedy of Errors",
		DescriptionHTML: `<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: ` +
			`The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and one of his ` +
			`most farcical comedies, with a major part of the humour coming from slapstick and mistaken identity, in ` +
			`addition to puns and word play.`,
	}}
}

type handler struct {
	cfg   config
	pages *template.Template
}

func newHandler(cfg config) http.Handler {
	h := &handler{cfg: cfg, pages: parsePages()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.index)
	mux.HandleFunc("GET /index.html", h.index)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Product page is healthy")
	})
	mux.HandleFunc("POST /login", h.login)
	mux.HandleFunc("GET /logout", h.logout)
	mux.HandleFunc("GET /productpage", h.productPage)
	mux.HandleFunc("GET /api/v1/products", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, products())
	})
	mux.HandleFunc("GET /api/v1/products/{id}", h.apiCall(h.details))
	mux.HandleFunc("GET /api/v1/products/{id}/reviews", h.apiCall(h.reviews))
	mux.HandleFunc("GET /api/v1/products/{id}/ratings", h.apiCall(h.ratings))
	mux.Handle("GET /static/", http.FileServerFS(staticFiles))
	return mux
}

// user returns the signed-in user, or "".
func user(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	u, err := url.QueryUnescape(c.Value)
	if err != nil {
		return ""
	}
	return u
}

// outboundHeaders are the headers every call made for r carries: the
// propagated ones, and end-user when someone is signed in.
func outboundHeaders(r *http.Request) http.Header {
	h := forward.Headers(r.Header)
	if u := user(r); u != "" {
		h.Set("end-user", u)
	}
	return h
}

// back redirects to the page the form was on, like Istio's productpage.
func back(w http.ResponseWriter, r *http.Request) {
	to := r.Referer()
	if to == "" {
		to = "/productpage"
	}
	http.Redirect(w, r, to, http.StatusFound)
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if u := r.PostFormValue("username"); u != "" {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: url.QueryEscape(u), Path: "/",
			HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	back(w, r)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode})
	back(w, r)
}

// callResult is the outcome of one service call: the status to report and
// either the service's JSON answer or an error document.
type callResult struct {
	status int
	body   json.RawMessage
}

func (c callResult) ok() bool { return c.status == http.StatusOK }

func failed(res upstream.Result, text string) callResult {
	status := res.Status
	if status == 0 || status == http.StatusOK {
		status = http.StatusInternalServerError
	}
	b, _ := json.Marshal(map[string]string{"error": text})
	return callResult{status: status, body: b}
}

func (h *handler) call(ctx context.Context, u string, hdr http.Header, unavailable string) callResult {
	var body json.RawMessage
	res := upstream.GetJSON(ctx, h.cfg.client, u, hdr, h.cfg.timeout, &body)
	if res.OK() {
		return callResult{status: http.StatusOK, body: body}
	}
	return failed(res, unavailable)
}

func (h *handler) details(ctx context.Context, id string, hdr http.Header) callResult {
	return h.call(ctx, h.cfg.detailsURL+"/details/"+url.PathEscape(id), hdr, detailsUnavailable)
}

func (h *handler) reviews(ctx context.Context, id string, hdr http.Header) callResult {
	var last upstream.Result
	for range max(h.cfg.reviewsAttempts, 1) {
		var body json.RawMessage
		last = upstream.GetJSON(ctx, h.cfg.client, h.cfg.reviewsURL+"/reviews/"+url.PathEscape(id), hdr, h.cfg.timeout, &body)
		if last.OK() {
			return callResult{status: http.StatusOK, body: body}
		}
	}
	return failed(last, reviewsUnavailable)
}

func (h *handler) ratings(ctx context.Context, id string, hdr http.Header) callResult {
	return h.call(ctx, h.cfg.ratingsURL+"/ratings/"+url.PathEscape(id), hdr, ratingsUnavailable)
}

type callFunc func(ctx context.Context, id string, hdr http.Header) callResult

func (h *handler) apiCall(f callFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res := f(r.Context(), r.PathValue("id"), outboundHeaders(r))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(res.status)
		_, _ = w.Write(res.body)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
