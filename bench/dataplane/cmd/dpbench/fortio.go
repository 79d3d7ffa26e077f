package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// percentiles are the latency percentiles reported, as fortio's -p wants
// them and as JSON keys.
var percentiles = []struct {
	arg string
	key string
}{{"50", "p50"}, {"90", "p90"}, {"99", "p99"}, {"99.9", "p99.9"}}

// payloadSize is the response (HTTP) or echoed ping (gRPC) size in bytes.
const payloadSize = 1024

// loadSpec is one fortio load run.
type loadSpec struct {
	proto    string
	conns    int
	qps      float64 // <= 0: closed loop, as fast as possible
	duration time.Duration
}

// fortioJSON is the part of fortio's -json output the harness reads.
type fortioJSON struct {
	ActualQPS         float64
	ActualDuration    int64
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count       int64
		Avg         float64
		Max         float64
		Percentiles []struct {
			Percentile float64
			Value      float64
		}
	}
}

// loadResult is fortio's answer in the units the report uses.
type loadResult struct {
	ActualQPS float64            `json:"actualQps"`
	Requests  int64              `json:"requests"`
	Errors    int64              `json:"errors"`
	AvgMs     float64            `json:"avgMs"`
	MaxMs     float64            `json:"maxMs"`
	Latency   map[string]float64 `json:"latencyMs"`
}

// runFortio runs `fortio load` pinned to the load-generator CPUs and returns
// its histogram.
func runFortio(ctx context.Context, env *env, t target, s loadSpec, jsonPath string) (loadResult, error) {
	ps := make([]string, len(percentiles))
	for i, p := range percentiles {
		ps[i] = p.arg
	}
	args := []string{"load", "-quiet", "-json", jsonPath, "-c", strconv.Itoa(s.conns),
		"-t", s.duration.String(), "-r", "0.00001", "-p", strings.Join(ps, ","), "-timeout", "5s"}
	if s.qps > 0 {
		args = append(args, "-qps", strconv.FormatFloat(s.qps, 'f', -1, 64), "-uniform", "-nocatchup")
	} else {
		args = append(args, "-qps", "-1")
	}
	if t.host != "" {
		args = append(args, "-H", "Host: "+t.host)
	}
	if s.proto == protoGRPC {
		args = append(args, "-grpc", "-ping", "-s", "1", "-payload-size", strconv.Itoa(payloadSize), t.addr)
	} else {
		args = append(args, "http://"+t.addr+"/echo?size="+strconv.Itoa(payloadSize))
	}
	argv := []string{env.fortio}
	if env.procs.taskset != "" && env.loadCPUs != "" {
		argv = []string{env.procs.taskset, "-c", env.loadCPUs, env.fortio}
	}
	argv = append(argv, args...)
	ctx, cancel := context.WithTimeout(ctx, s.duration+60*time.Second)
	defer cancel()
	_ = os.Remove(jsonPath)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, runErr := cmd.CombinedOutput()
	_ = os.WriteFile(strings.TrimSuffix(jsonPath, ".json")+".log",
		append([]byte(strings.Join(argv, " ")+"\n"), out...), 0o644)
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		msg := strings.TrimPrefix(lastLines(string(out), 1), "Aborting because of ")
		if runErr != nil {
			return loadResult{}, fmt.Errorf("fortio: %v: %s", runErr, msg)
		}
		return loadResult{}, fmt.Errorf("fortio wrote no result: %s", msg)
	}
	return parseFortio(b)
}

// parseFortio reads fortio's -json output.
func parseFortio(b []byte) (loadResult, error) {
	var fj fortioJSON
	if err := json.Unmarshal(b, &fj); err != nil {
		return loadResult{}, fmt.Errorf("read fortio result: %w", err)
	}
	r := loadResult{ActualQPS: fj.ActualQPS, Requests: fj.DurationHistogram.Count,
		AvgMs: fj.DurationHistogram.Avg * 1e3, MaxMs: fj.DurationHistogram.Max * 1e3, Latency: map[string]float64{}}
	var ok int64
	for code, n := range fj.RetCodes {
		if code == "200" || code == "SERVING" {
			ok += n
		}
	}
	r.Errors = r.Requests - ok
	for _, p := range fj.DurationHistogram.Percentiles {
		for _, want := range percentiles {
			if v, _ := strconv.ParseFloat(want.arg, 64); v == p.Percentile {
				r.Latency[want.key] = p.Value * 1e3
			}
		}
	}
	if r.Requests > 0 && r.Errors == r.Requests {
		return r, fmt.Errorf("all %d requests failed (codes %v)", r.Requests, fj.RetCodes)
	}
	return r, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func execOutput(argv ...string) (string, error) {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}
