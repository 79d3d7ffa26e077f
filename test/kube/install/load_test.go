package install

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// load sends a steady stream of GET /productpage through a port-forward and
// records every answer a user would call a failure: a transport error, a
// status other than 200, or a page that shows one of productpage's or
// reviews' error texts (they answer 200 when a call behind them failed).
type load struct {
	addr string
	rps  int

	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	ok       int
	failed   int
	samples  []string // the first failures, with their time
	behind   int      // ticks skipped because maxInFlight requests were open
	started  time.Time
	finished time.Time
}

const (
	// loadTimeout bounds one request: generous, as a loaded CI machine is
	// slow; a slow answer is not a failure, only a wrong one is.
	loadTimeout = 60 * time.Second
	// maxInFlight bounds concurrent requests; when reached, the generator
	// skips ticks (and counts them) rather than piling up on a machine
	// that cannot keep up (the rate it reached is logged).
	maxInFlight = 16
	maxSamples  = 20
)

// pageFailure says why a /productpage answer is one a user would see as
// broken, or "" when it shows the book's details and reviews.
func pageFailure(code int, body string, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case code != http.StatusOK:
		return fmt.Sprintf("status %d: %.300s", code, body)
	case !strings.Contains(body, `<dd id="details-isbn10">1234567890</dd>`):
		return fmt.Sprintf("no book details: %.300s", afterBody(body))
	}
	for _, bad := range []string{"Error fetching", "currently unavailable"} {
		if strings.Contains(body, bad) {
			_, rest, _ := strings.Cut(body, bad)
			return fmt.Sprintf("page shows %q: %.200s", bad, rest)
		}
	}
	return ""
}

func afterBody(body string) string {
	if i := strings.Index(body, "<body"); i > 0 {
		return body[i:]
	}
	return body
}

// startLoad sends rps requests per second to http://addr/productpage until
// Stop.
func startLoad(t *testing.T, addr string, rps int) *load {
	t.Helper()
	l := &load{addr: addr, rps: rps, stop: make(chan struct{}), done: make(chan struct{}), started: time.Now()}
	client := &http.Client{Timeout: loadTimeout, Transport: &http.Transport{
		MaxIdleConns: maxInFlight, MaxIdleConnsPerHost: maxInFlight, IdleConnTimeout: time.Minute,
	}}
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		sem := make(chan struct{}, maxInFlight)
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				wg.Wait()
				client.CloseIdleConnections()
				return
			case <-tick.C:
			}
			select {
			case sem <- struct{}{}:
			default:
				l.mu.Lock()
				l.behind++
				l.mu.Unlock()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				l.record(l.get(client))
			}()
		}
	}()
	t.Cleanup(l.Stop)
	return l
}

func (l *load) get(client *http.Client) string {
	resp, err := client.Get("http://" + l.addr + "/productpage")
	if err != nil {
		return pageFailure(0, "", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return pageFailure(resp.StatusCode, string(b), err)
}

func (l *load) record(failure string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if failure == "" {
		l.ok++
		return
	}
	l.failed++
	if len(l.samples) < maxSamples {
		l.samples = append(l.samples, fmt.Sprintf("%s: %s", time.Since(l.started).Round(time.Millisecond), failure))
	}
}

// Stop ends the load and waits for the requests in flight.
func (l *load) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	if l.finished.IsZero() {
		l.finished = time.Now()
	}
	l.mu.Unlock()
}

// String summarises the run: answers, failures and the achieved rate.
func (l *load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	end := l.finished
	if end.IsZero() {
		end = time.Now()
	}
	d := end.Sub(l.started)
	return fmt.Sprintf("%d good answers, %d failed in %s (%.0f req/s of %d asked; %d ticks skipped at %d in flight)",
		l.ok, l.failed, d.Round(time.Millisecond), float64(l.ok+l.failed)/d.Seconds(), l.rps, l.behind, maxInFlight)
}

// check stops the load and fails t when any request failed or too few were
// answered to mean anything.
func (l *load) check(t *testing.T, during string) {
	t.Helper()
	l.Stop()
	t.Logf("load during %s: %s", during, l)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed > 0 {
		t.Errorf("%d requests failed during %s; the first:\n%s", l.failed, during, strings.Join(l.samples, "\n"))
	}
	if l.ok < 100 {
		t.Errorf("only %d good answers during %s: too few to show anything", l.ok, during)
	}
}
