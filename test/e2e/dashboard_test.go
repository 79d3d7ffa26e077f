package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns Debian's chromium. CI installs it (.ci/run); elsewhere
// the test skips without it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed: .ci/run installs it with apt-get install chromium")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// browser is a headless Chromium driven over the DevTools protocol.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.WindowSize(1440, 1000), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx)
		cancel()
		cancelAlloc()
	})
	return &browser{t: t, ctx: ctx}
}

// rows returns the visible text of every cell of a table's body, by CSS selector.
func (b *browser) rows(sel string) [][]string {
	b.t.Helper()
	js := fmt.Sprintf(`[...document.querySelectorAll(%q)].map(tr => [...tr.cells].map(td => td.innerText.trim()))`, sel+" tbody tr")
	out, err := chromedp.Run(b.ctx, chromedp.Evaluate[[][]string](js))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return out
}

func (b *browser) text(js string) string {
	b.t.Helper()
	out, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return out
}

// until polls the page until ok holds (the page refreshes itself every 2 s).
func (b *browser) until(what string, timeout time.Duration, ok func() (bool, string)) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var good bool
		if good, last = ok(); good {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	b.screenshot("failed")
	b.t.Fatalf("dashboard never showed %s within %s; last: %s", what, timeout, last)
}

// screenshot keeps a PNG of the whole page in the test's artifact directory
// (go test -artifacts keeps it; the path is logged).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	file := filepath.Join(b.t.ArtifactDir(), "dashboard-"+name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	b.t.Logf("screenshot: %s", file)
}

var (
	rateText    = regexp.MustCompile(`^\d+(\.\d+)? req/s$`)
	percentText = regexp.MustCompile(`^\d+(\.\d+)? %$`)
	msText      = regexp.MustCompile(`^\d+(\.\d+)? ms$`)
)

// TestDashboardBookinfo loads the built-in dashboard of a `bowline up`
// Bookinfo in headless Chromium while requests flow, and checks what a
// person sees: the graph's edges with their rates, errors, latencies and
// mTLS; the fault injected into jason's ratings calls as a failing edge and
// as FI failures explained; every proxy SYNCED; the objects in force; and an
// invalid file's problem with its file and line.
func TestDashboardBookinfo(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries, runs processes and a browser")
	}
	bins := binaries(t)
	b := startBrowser(t)
	dir := bookinfoDir(t, bins)
	m := startUp(t, filepath.Join(bins, "bowline"), dir, "--scrape-interval", "1s")
	url := ""
	for line := range strings.SplitSeq(m.stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "dashboard: "); ok {
			url = rest
		}
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("bowline up printed no dashboard line:\n%s", m.stdout.String())
	}
	// Jason's ratings calls fail with an injected 500 (reviews v2 calls ratings for him).
	m.apply(t, "virtual-service-reviews-test-v2.yaml")
	m.apply(t, "virtual-service-ratings-test-abort.yaml")
	m.eventually(t, "jason", 2, "jason's ratings aborted", func(p page) bool {
		return p.reviews == "reviews-v2" && strings.Contains(p.body, "Ratings service is currently unavailable")
	})
	writeFile(t, filepath.Join(dir, "bad.yaml"), `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bad
spec:
  hosts: [details]
  http:
  - route:
    - destination: {host: details}
      weigth: 100
`)

	// Traffic for the whole test, anonymous and as jason.
	ctx, stop := context.WithCancel(context.Background())
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		for i := 0; ctx.Err() == nil && i < 2000; i++ {
			user := ""
			if i%2 == 1 {
				user = "jason"
			}
			_ = m.productPageQuiet(ctx, user)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() { stop(); <-trafficDone }()

	if err := chromedp.Do(b.ctx, chromedp.Navigate(url), chromedp.WaitVisible("#graph-body")); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	edge := func(rows [][]string, from, to string) []string {
		for _, r := range rows {
			if len(r) == 8 && r[0] == from && r[1] == to {
				return r
			}
		}
		return nil
	}
	want := [][2]string{
		{"istio-ingressgateway", "productpage.default"},
		{"productpage.default", "productpage-v1"},
		{"productpage-v1", "details.default"},
		{"details.default", "details-v1"},
		{"productpage-v1", "reviews.default"},
		{"reviews.default", "reviews-v1"},
		{"reviews.default", "reviews-v2"},
		{"reviews-v2", "ratings.default"}, // jason's calls, every one aborted by the fault (none reaches ratings-v1)
	}
	b.until("Bookinfo's edges with traffic", 90*time.Second, func() (bool, string) {
		rows := b.rows("#edges")
		for _, w := range want {
			r := edge(rows, w[0], w[1])
			if r == nil || r[2] == "0 req/s" {
				return false, fmt.Sprintf("edge %s → %s: %q (edges %q)", w[0], w[1], r, rows)
			}
		}
		return true, ""
	})
	b.screenshot("bookinfo")
	rows := b.rows("#edges")
	for _, w := range want {
		r := edge(rows, w[0], w[1])
		// From, To, Rate, Errors, p50, p99, Security, Health
		if !rateText.MatchString(r[2]) || !percentText.MatchString(r[3]) || !msText.MatchString(r[4]) || !msText.MatchString(r[5]) {
			t.Errorf("edge %s → %s: units wrong in %q", w[0], w[1], r)
		}
		// Aborted calls never leave the caller's proxy: only the others show mTLS.
		if w[0] != "reviews-v2" && r[6] != "mTLS" {
			t.Errorf("edge %s → %s: security %q, want mTLS (auto mTLS between sidecars)", w[0], w[1], r[6])
		}
	}
	// Half of reviews-v2's ratings calls are jason's, aborted with 500.
	b.until("the aborted ratings calls as a failing edge", 30*time.Second, func() (bool, string) {
		r := edge(b.rows("#edges"), "reviews-v2", "ratings.default")
		return r != nil && r[3] != "0 %" && r[7] == "failing", fmt.Sprintf("%q", r)
	})
	if r := edge(b.rows("#edges"), "productpage-v1", "details.default"); r[3] != "0 %" || r[7] != "healthy" {
		t.Errorf("productpage-v1 → details.default: %q, want 0 %% errors, healthy", r)
	}
	// The graph draws the same edges and names its nodes.
	for _, name := range []string{"istio-ingressgateway", "productpage-v1", "reviews.default", "ratings.default"} {
		if n := b.text(fmt.Sprintf(`String(document.querySelectorAll('#graph svg g.node[data-name=%q]').length)`, name)); n != "1" {
			t.Errorf("graph has %s nodes named %s, want 1", n, name)
		}
	}
	if title := b.text(`document.querySelector('#graph svg g.edge[data-from="productpage-v1"][data-to="reviews.default"] title').textContent`); !strings.Contains(title, "req/s") || !strings.Contains(title, "mTLS") {
		t.Errorf("graph edge productpage-v1 → reviews.default says %q", title)
	}

	// Failures explained: the injected aborts by flag, with the flag's meaning.
	b.until("the FI failures", 30*time.Second, func() (bool, string) {
		for _, r := range b.rows("#failures-table") {
			// Flags, Meaning, Code, Source, Service, Destination, Requests, Rate, Reported by
			if len(r) == 9 && r[0] == "FI" && strings.Contains(r[1], "fault injected") && r[2] == "500" &&
				r[3] == "reviews-v2.default" && r[4] == "ratings.default.svc.cluster.local" && rateText.MatchString(r[7]) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%q", b.rows("#failures-table"))
	})
	// And one by one, as reviews-v2's proxy recorded them.
	b.until("jason's aborted ratings call in the recent failures", 60*time.Second, func() (bool, string) {
		for _, r := range b.rows("#recent-table") {
			// Time, Proxy, Direction, Request, Code, Flags, Upstream cluster, Duration, Request id
			if len(r) == 9 && strings.HasPrefix(r[1], "reviews-v2") && r[2] == "outbound" && strings.HasPrefix(r[3], "GET ratings") &&
				strings.Contains(r[3], "/ratings/") && r[4] == "500" && strings.HasPrefix(r[5], "FI") && strings.Contains(r[5], "fault injected") &&
				msText.MatchString(r[7]) && r[8] != "" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%q", b.rows("#recent-table"))
	})

	// Every proxy has what it was sent.
	proxies := b.rows("#proxies-table")
	if len(proxies) != 7 {
		t.Errorf("proxies table has %d rows, want 7 (6 sidecars, the ingress gateway): %q", len(proxies), proxies)
	}
	for _, r := range proxies {
		// Proxy, Type, CDS, LDS, EDS, RDS, Metrics
		if len(r) != 7 || r[2] != "SYNCED" || r[3] != "SYNCED" || r[4] != "SYNCED" || r[5] != "SYNCED" || r[6] != "ok" {
			t.Errorf("proxy row %q: want SYNCED for every type and metrics ok", r)
		}
	}
	// The configuration in force, and the invalid file's problem.
	b.until("the invalid VirtualService's problem", 30*time.Second, func() (bool, string) {
		text := b.text(`document.querySelector('#config-body').innerText`)
		return strings.Contains(text, "bad.yaml:10: VirtualService default/bad: spec.http[0].route[0].weigth: unknown field"), text
	})
	found := false
	for _, r := range b.rows("#objects-table") {
		// Kind, Name, Source, Status
		if len(r) == 4 && r[0] == "VirtualService" && r[1] == "default/ratings" && strings.HasSuffix(r[2], "virtual-service-ratings-test-abort.yaml:4") && r[3] == "valid" {
			found = true
		}
	}
	if !found {
		t.Errorf("objects table lacks VirtualService default/ratings, valid: %q", b.rows("#objects-table"))
	}
	// Golden signals: a card per service with its charts.
	if text := b.text(`document.querySelector('#signals-body').innerText`); !strings.Contains(text, "ratings.default") || !strings.Contains(text, "p99 latency") {
		t.Errorf("golden signals section: %q", text)
	}
	b.screenshot("final")
}

// productPageQuiet gets /productpage as user, reporting errors instead of failing the test.
func (m *meshUp) productPageQuiet(ctx context.Context, user string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := newProductPageRequest(ctx, m.ingress, user)
	if err != nil {
		return err
	}
	resp, err := noProxyClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

var noProxyClient = &http.Client{Transport: &http.Transport{Proxy: nil}}

func newProductPageRequest(ctx context.Context, ingress, user string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ingress+"/productpage", nil)
	if err != nil {
		return nil, err
	}
	if user != "" {
		req.AddCookie(&http.Cookie{Name: "session", Value: user})
	}
	return req, nil
}
