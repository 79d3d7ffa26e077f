package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// profileBowline restarts the two sidecars, puts HTTP load on them at the
// reference rate and saves CPU and heap profiles of both from their admin
// ports' /debug/pprof (loopback only), plus a `go tool pprof -top` summary
// of each.
func profileBowline(ctx context.Context, e *env, s *bowlineStack, o options) ([]string, error) {
	pprofAddrs := []string{addr(s.clientAdmin), addr(s.srvAdmin)}
	p, err := s.sidecars(ctx, e, "-pprof")
	if err != nil {
		return nil, fmt.Errorf("start sidecars with pprof: %w", err)
	}
	defer func() {
		for _, pr := range p.proxies {
			pr.stop(5 * time.Second)
		}
	}()
	dir := filepath.Join(o.results, "pprof")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// Load for the profile window plus a margin on both sides.
	secs := int(o.profile.Seconds())
	spec := loadSpec{proto: protoHTTP, conns: 16, qps: o.qps, duration: o.profile + 3*time.Second}
	loadDone := make(chan error, 1)
	go func() {
		_, err := runFortio(ctx, e, p.targets[protoHTTP], spec, filepath.Join(e.work, "profile-load.json"))
		loadDone <- err
	}()
	time.Sleep(time.Second)
	type result struct {
		file string
		err  error
	}
	results := make(chan result, 2)
	for i, role := range []string{"client", "server"} {
		go func() {
			f := filepath.Join(dir, "bowline-"+role+"-cpu.pb.gz")
			results <- result{f, fetch(ctx, "http://"+pprofAddrs[i]+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), f)}
		}()
	}
	var files []string
	var errs []error
	for range 2 {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		files = append(files, r.file)
	}
	// Heap while still under load (in-use and allocation samples).
	for i, role := range []string{"client", "server"} {
		f := filepath.Join(dir, "bowline-"+role+"-heap.pb.gz")
		if err := fetch(ctx, "http://"+pprofAddrs[i]+"/debug/pprof/heap", f); err != nil {
			errs = append(errs, err)
			continue
		}
		files = append(files, f)
	}
	if err := <-loadDone; err != nil {
		errs = append(errs, fmt.Errorf("profile load: %w", err))
	}
	// Text summaries, readable in review without tooling.
	var out []string
	for _, f := range files {
		out = append(out, f)
		args := []string{"tool", "pprof", "-top", "-nodecount=30"}
		if filepath.Base(f) == "bowline-client-heap.pb.gz" || filepath.Base(f) == "bowline-server-heap.pb.gz" {
			args = append(args, "-sample_index=alloc_space")
		}
		txt, err := exec.CommandContext(ctx, "go", append(args, e.bowline, f)...).CombinedOutput()
		if err != nil {
			continue
		}
		tf := f[:len(f)-len(".pb.gz")] + ".top.txt"
		if os.WriteFile(tf, txt, 0o644) == nil {
			out = append(out, tf)
		}
	}
	return out, errors.Join(errs...)
}

// fetch GETs url into file.
func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("get %s: %w", url, err)
	}
	return f.Close()
}
