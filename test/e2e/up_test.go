package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// meshUp is a running `bowline up` process.
type meshUp struct {
	t       *testing.T
	dir     string
	cmd     *exec.Cmd
	ingress string
	stdout  *syncWriter
	stderr  *syncWriter
	done    chan error
}

// freePort finds a free port below the kernel's ephemeral range (from
// 20000), so that no outgoing connection of a concurrently running test
// takes it before the process under test binds it.
func freePort(t *testing.T) int {
	t.Helper()
	start := rand.IntN(10000)
	for i := range 10000 {
		p := 20000 + (start+i)%10000
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port between 20000 and 30000")
	return 0
}

// bookinfoDir copies the local Bookinfo platform files into a fresh
// directory with the apps in ./bin, as `make -C samples/bookinfo` would.
func bookinfoDir(t *testing.T, bins string) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	src := filepath.Join(root, "samples", "bookinfo", "platform", "local")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dir, e.Name()))
	}
	if err := os.Symlink(filepath.Join(bins, "bookinfo"), filepath.Join(dir, "bin")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// startUp runs `bowline up dir` and waits until it reports every replica serving.
func startUp(t *testing.T, bowline, dir string, extra ...string) *meshUp {
	t.Helper()
	port := freePort(t)
	// Run from the parent with a relative DIR, as the README's `make up` does.
	args := append([]string{"up", filepath.Base(dir), "--ingress-port", fmt.Sprint(port), "--access-log", "off", "--drain-duration", "1s"}, extra...)
	cmd := exec.Command(bowline, args...)
	cmd.Dir = filepath.Dir(dir)
	m := &meshUp{t: t, dir: dir, cmd: cmd, stdout: &syncWriter{}, stderr: &syncWriter{}, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(m.stdout, pw)
	cmd.Stderr = m.stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.done <- cmd.Wait(); pw.Close() }()
	// Ready prints its lines one by one (serving, ingress, dashboard, state);
	// the test may read any of them, so it waits for the last.
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		ingress := ""
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "ingress: "); ok {
				ingress = rest
			}
			if strings.HasPrefix(line, "state: ") && ingress != "" {
				select {
				case ready <- ingress:
				default:
				}
			}
		}
	}()
	select {
	case m.ingress = <-ready:
		t.Logf("bowline up serving after %s at %s", time.Since(start).Round(time.Millisecond), m.ingress)
	case err := <-m.done:
		t.Fatalf("bowline up exited early: %v\nstderr:\n%s", err, m.stderr.String())
	case <-time.After(60 * time.Second):
		m.stop()
		t.Fatalf("bowline up not ready after 60s\nstdout:\n%s\nstderr:\n%s", m.stdout.String(), m.stderr.String())
	}
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			t.Logf("bowline up stderr:\n%s", tail(m.stderr.String(), 60))
		}
	})
	return m
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop sends SIGTERM and waits for a clean exit.
func (m *meshUp) stop() {
	if m.cmd.ProcessState != nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.done:
		m.done <- err
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		m.t.Errorf("bowline up did not stop within 30s after SIGTERM")
	}
}

// page is what a user sees on /productpage.
type page struct {
	status   int
	reviews  string // "reviews-v1", ... or "" when reviews were unavailable
	stars    string // "black", "red" or "" (none)
	body     string
	duration time.Duration
}

var servedBy = regexp.MustCompile(`Reviews served by: (reviews-v\d)`)

func (m *meshUp) productPage(t *testing.T, user string) page {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ingress+"/productpage", nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.AddCookie(&http.Cookie{Name: "session", Value: user})
	}
	start := time.Now()
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		t.Fatalf("GET /productpage: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, body: string(body), duration: time.Since(start)}
	if sm := servedBy.FindStringSubmatch(p.body); sm != nil {
		p.reviews = sm[1]
	}
	switch {
	case strings.Contains(p.body, "stars-black"):
		p.stars = "black"
	case strings.Contains(p.body, "stars-red"):
		p.stars = "red"
	}
	return p
}

// apply copies a routing file of samples/bookinfo/networking into the
// running directory: the `kubectl apply -f` of Istio's tasks. An object it
// redefines replaces the earlier file's definition.
func (m *meshUp) apply(t *testing.T, file string) {
	t.Helper()
	copyFile(t, filepath.Join(repoRoot(t), "samples", "bookinfo", "networking", file), filepath.Join(m.dir, file))
}

// remove deletes a file applied before: the `kubectl delete -f` of the
// tasks' cleanup. Definitions it replaced come back.
func (m *meshUp) remove(t *testing.T, file string) {
	t.Helper()
	if err := os.Remove(filepath.Join(m.dir, file)); err != nil {
		t.Fatal(err)
	}
}

// eventually polls the page until ok holds for n consecutive requests.
func (m *meshUp) eventually(t *testing.T, user string, n int, what string, ok func(page) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	streak := 0
	var last page
	for time.Now().Before(deadline) {
		last = m.productPage(t, user)
		if ok(last) {
			if streak++; streak >= n {
				return
			}
			continue
		}
		streak = 0
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not seen within 15s; last page: status %d, reviews %q, stars %q, %s", what, last.status, last.reviews, last.stars, excerpt(last.body))
}

func excerpt(body string) string {
	if i := strings.Index(body, "Sorry"); i >= 0 {
		return body[i:min(len(body), i+120)]
	}
	return fmt.Sprintf("%d bytes", len(body))
}

// split counts which reviews version served n requests.
func (m *meshUp) split(t *testing.T, user string, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		p := m.productPage(t, user)
		if p.status != http.StatusOK {
			t.Fatalf("status %d: %s", p.status, excerpt(p.body))
		}
		counts[p.reviews]++
	}
	return counts
}

func within(got, n int, want, tolerance float64) bool {
	f := float64(got) / float64(n)
	return f >= want-tolerance && f <= want+tolerance
}

// TestBookinfoUp brings Bookinfo up with `bowline up`, applies each routing
// step of Istio's Bookinfo tasks as the tasks' `kubectl apply -f` does, by
// copying the file into the running directory (a later file's definition of
// an object replaces the earlier one; deleting it brings that one back),
// and checks what a user sees on /productpage.
func TestBookinfoUp(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds binaries and runs processes")
	}
	bins := binaries(t)
	dir := bookinfoDir(t, bins)
	m := startUp(t, filepath.Join(bins, "bowline"), dir)

	t.Run("no routing rules: all versions answer", func(t *testing.T) {
		counts := m.split(t, "", 45)
		for _, v := range []string{"reviews-v1", "reviews-v2", "reviews-v3"} {
			if counts[v] == 0 {
				t.Errorf("%s never answered in 45 requests: %v", v, counts)
			}
		}
		p := m.productPage(t, "")
		if !strings.Contains(p.body, "The Comedy of Errors") {
			t.Errorf("page lacks the book details: %s", excerpt(p.body))
		}
	})

	t.Run("all v1", func(t *testing.T) {
		m.apply(t, "virtual-service-all-v1.yaml")
		m.eventually(t, "", 10, "only v1", func(p page) bool { return p.reviews == "reviews-v1" })
		counts := m.split(t, "", 30)
		if counts["reviews-v1"] != 30 {
			t.Errorf("all-v1: %v", counts)
		}
		if p := m.productPage(t, ""); p.stars != "" {
			t.Errorf("v1 shows %s stars", p.stars)
		}
	})

	t.Run("80/20 v1/v2", func(t *testing.T) {
		m.apply(t, "virtual-service-reviews-80-20.yaml")
		m.eventually(t, "", 1, "a v2 answer", func(p page) bool { return p.reviews == "reviews-v2" })
		const n = 200
		counts := m.split(t, "", n)
		if !within(counts["reviews-v1"], n, 0.8, 0.1) || !within(counts["reviews-v2"], n, 0.2, 0.1) || counts["reviews-v3"] != 0 {
			t.Errorf("80/20 split over %d requests: %v", n, counts)
		}
	})

	t.Run("50/50 v1/v3", func(t *testing.T) {
		m.apply(t, "virtual-service-reviews-50-v3.yaml")
		m.eventually(t, "", 1, "a v3 answer", func(p page) bool { return p.reviews == "reviews-v3" })
		const n = 200
		counts := m.split(t, "", n)
		if !within(counts["reviews-v1"], n, 0.5, 0.12) || !within(counts["reviews-v3"], n, 0.5, 0.12) || counts["reviews-v2"] != 0 {
			t.Errorf("50/50 split over %d requests: %v", n, counts)
		}
		if p := m.productPage(t, ""); p.reviews == "reviews-v3" && p.stars != "red" {
			t.Errorf("v3 shows %q stars, want red", p.stars)
		}
	})

	t.Run("jason sees v2", func(t *testing.T) {
		m.apply(t, "virtual-service-reviews-test-v2.yaml")
		m.eventually(t, "jason", 5, "jason on v2", func(p page) bool { return p.reviews == "reviews-v2" && p.stars == "black" })
		if counts := m.split(t, "", 20); counts["reviews-v1"] != 20 {
			t.Errorf("anonymous users: %v, want all v1", counts)
		}
		if counts := m.split(t, "jason", 20); counts["reviews-v2"] != 20 {
			t.Errorf("jason: %v, want all v2", counts)
		}
	})

	t.Run("invalid edit keeps the last good config", func(t *testing.T) {
		bad := "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v3}\n      weight: heavy\n"
		if err := os.WriteFile(filepath.Join(m.dir, "virtual-service-reviews-test-v2.yaml"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(m.stderr.String(), "spec.http[0].route[0].weight: expected integer") {
			if time.Now().After(deadline) {
				t.Fatalf("the problem was not reported; stderr:\n%s", tail(m.stderr.String(), 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if counts := m.split(t, "jason", 10); counts["reviews-v2"] != 10 {
			t.Errorf("jason after an invalid edit: %v, want the last good rule (all v2)", counts)
		}
		if counts := m.split(t, "", 10); counts["reviews-v1"] != 10 {
			t.Errorf("anonymous after an invalid edit: %v, want the last good rule (all v1)", counts)
		}
	})

	t.Run("ratings abort for jason", func(t *testing.T) {
		m.apply(t, "virtual-service-reviews-test-v2.yaml") // the good version again
		m.apply(t, "virtual-service-ratings-test-abort.yaml")
		m.eventually(t, "jason", 3, "ratings unavailable", func(p page) bool {
			return p.status == http.StatusOK && strings.Contains(p.body, "Ratings service is currently unavailable")
		})
		if p := m.productPage(t, ""); strings.Contains(p.body, "Ratings service is currently unavailable") {
			t.Errorf("anonymous user also sees the ratings error")
		}
	})

	t.Run("ratings delay for jason", func(t *testing.T) {
		m.apply(t, "virtual-service-ratings-test-delay.yaml")
		m.eventually(t, "jason", 1, "reviews unavailable after the delay", func(p page) bool {
			return strings.Contains(p.body, "Sorry, product reviews are currently unavailable for this book.")
		})
		p := m.productPage(t, "jason")
		if !strings.Contains(p.body, "Sorry, product reviews are currently unavailable for this book.") {
			t.Errorf("jason's page: %s", excerpt(p.body))
		}
		// productpage gives reviews 3 s and one retry: about 6 s in all, as in Istio's task.
		if p.duration < 5*time.Second || p.duration > 9*time.Second {
			t.Errorf("jason's page took %s, want about 6s", p.duration)
		}
		if q := m.productPage(t, ""); q.duration > 2*time.Second || q.reviews != "reviews-v1" {
			t.Errorf("anonymous page took %s (reviews %q); the delay applies to jason only", q.duration, q.reviews)
		}
	})

	t.Run("deleting a file brings back what it replaced", func(t *testing.T) {
		m.remove(t, "virtual-service-ratings-test-delay.yaml") // the abort rule is in force again
		m.eventually(t, "jason", 3, "ratings unavailable again", func(p page) bool {
			return p.status == http.StatusOK && strings.Contains(p.body, "Ratings service is currently unavailable")
		})
		m.remove(t, "virtual-service-ratings-test-abort.yaml")
		m.remove(t, "virtual-service-reviews-test-v2.yaml") // reviews: 50-v3 again
		m.eventually(t, "", 1, "a v3 answer", func(p page) bool { return p.reviews == "reviews-v3" && p.stars == "red" })
		if counts := m.split(t, "jason", 20); counts["reviews-v2"] != 0 {
			t.Errorf("jason after test-v2 was deleted: %v, want v1 and v3 only", counts)
		}
		if !strings.Contains(m.stderr.String(), "replaces the definition at") {
			t.Errorf("no warning named the replaced definition")
		}
	})

	t.Run("istioctl debugging verbs find the run", func(t *testing.T) {
		// From the running directory, with no flags, as istioctl needs none in a cluster.
		out := m.bowline(t, m.dir, "proxy-status")
		if !regexp.MustCompile(`(?m)^productpage-v1-0\.default +SYNCED +SYNCED +SYNCED +SYNCED `).MatchString(out) ||
			!strings.Contains(out, "istio-ingressgateway.istio-system") {
			t.Errorf("proxy-status:\n%s", out)
		}
		out = m.bowline(t, t.TempDir(), "proxy-config", "cluster", "productpage-v1", "--fqdn", "reviews")
		if !regexp.MustCompile(`(?m)^reviews\.default\.svc\.cluster\.local +9080 +v3 +outbound +EDS`).MatchString(out) {
			t.Errorf("proxy-config cluster productpage-v1 (from another directory):\n%s", out)
		}
		if out := m.bowline(t, m.dir, "proxy-config", "route", "istio-ingressgateway"); !strings.Contains(out, "/productpage") {
			t.Errorf("proxy-config route istio-ingressgateway:\n%s", out)
		}
	})

	t.Run("circuit breaking shows in /stats", func(t *testing.T) {
		// Istio's circuit-breaking task: one connection, one pending request,
		// then concurrent load, then the sidecar's upstream_rq_pending_overflow.
		breaker := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`
		file := filepath.Join(m.dir, "destination-rule-reviews-breaker.yaml")
		if err := os.WriteFile(file, []byte(breaker), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(file)
		admin := m.admin(t, "productpage-v1-0")
		overflow := regexp.MustCompile(`(?m)^cluster\.outbound\|9080\|v[13]\|reviews\.default\.svc\.cluster\.local\.upstream_rq_pending_overflow: ([1-9]\d*)$`)
		deadline := time.Now().Add(20 * time.Second)
		for {
			var wg sync.WaitGroup
			for range 20 {
				wg.Add(1)
				go func() { // errors are fine here: the breaker is meant to refuse
					defer wg.Done()
					if resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 10 * time.Second}).Get(m.ingress + "/productpage"); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}()
			}
			wg.Wait()
			stats := httpText(t, "http://"+admin+"/stats?filter=reviews")
			if overflow.MatchString(stats) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no upstream_rq_pending_overflow after 20s of concurrent load:\n%s", stats)
			}
		}
	})

	t.Run("nothing restarted", func(t *testing.T) {
		logs := m.stderr.String()
		for _, bad := range []string{"process exited, restarting", "stopping replica", "replica not started"} {
			if strings.Contains(logs, bad) {
				t.Errorf("bowline up logged %q while scenarios changed", bad)
			}
		}
	})

	t.Run("clean shutdown", func(t *testing.T) {
		m.stop()
		if err := <-m.done; err != nil {
			t.Errorf("bowline up exit: %v\n%s", err, m.stderr.String())
		}
		m.done <- nil
		if left := processesUnder(dir); len(left) > 0 {
			t.Errorf("processes left behind: %v", left)
		}
	})
}

// bowline runs the bowline binary of the mesh in dir and returns its stdout.
func (m *meshUp) bowline(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(m.cmd.Path, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bowline %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// admin returns a replica's sidecar admin address from up.json.
func (m *meshUp) admin(t *testing.T, replica string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(m.dir, ".bowline", "up.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Workloads []struct{ Name, Admin string } `json:"workloads"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	for _, w := range st.Workloads {
		if w.Name == replica {
			return w.Admin
		}
	}
	t.Fatalf("no replica %s in up.json", replica)
	return ""
}

func httpText(t *testing.T, url string) string {
	t.Helper()
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// processesUnder lists running processes whose command line mentions dir.
func processesUnder(dir string) []string {
	var left []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		left = left[:0]
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue
			}
			cmdline := strings.ReplaceAll(string(data), "\x00", " ")
			if strings.Contains(cmdline, dir) {
				if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(stat), ") Z ") {
					continue // a zombie about to be reaped
				}
				left = append(left, e.Name()+": "+cmdline)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}
