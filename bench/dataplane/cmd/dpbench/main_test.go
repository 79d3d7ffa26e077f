package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStatFields(t *testing.T) {
	tests := []struct {
		name, stat         string
		pid, ppid, utime14 string
	}{
		{"plain", "42 (nginx) S 7 42 42 0 -1 4194560 100 0 0 0 15 3 0 0 20 0 1 0", "42", "7", "15"},
		{"comm with spaces and parens", "43 (a b) c) R 1 43 43 0 -1 0 0 0 0 0 9 1 0 0 20 0 1 0", "43", "1", "9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := statFields(tc.stat)
			if len(f) < 15 {
				t.Fatalf("got %d fields: %q", len(f), f)
			}
			if f[0] != tc.pid || f[3] != tc.ppid || f[13] != tc.utime14 {
				t.Errorf("pid %s ppid %s utime %s, want %s %s %s", f[0], f[3], f[13], tc.pid, tc.ppid, tc.utime14)
			}
		})
	}
}

func TestParseFortio(t *testing.T) {
	tests := []struct {
		name       string
		json       string
		wantErr    string
		wantErrors int64
		wantP99    float64
	}{
		{name: "http", json: `{"ActualQPS": 999.5, "RetCodes": {"200": 990, "503": 10},
			"DurationHistogram": {"Count": 1000, "Avg": 0.0004, "Max": 0.01,
			"Percentiles": [{"Percentile": 50, "Value": 0.0003}, {"Percentile": 99, "Value": 0.0021}, {"Percentile": 99.9, "Value": 0.005}]}}`,
			wantErrors: 10, wantP99: 2.1},
		{name: "grpc ping", json: `{"ActualQPS": 10, "RetCodes": {"SERVING": 100},
			"DurationHistogram": {"Count": 100, "Percentiles": [{"Percentile": 99, "Value": 0.001}]}}`, wantP99: 1},
		{name: "all failed", json: `{"RetCodes": {"-1": 5}, "DurationHistogram": {"Count": 5}}`,
			wantErr: "all 5 requests failed", wantErrors: 5},
		{name: "not json", json: `{`, wantErr: "read fortio result"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseFortio([]byte(tc.json))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if r.Errors != tc.wantErrors {
				t.Errorf("errors %d, want %d", r.Errors, tc.wantErrors)
			}
			if got := round(r.Latency["p99"], 6); got != tc.wantP99 {
				t.Errorf("p99 %v ms, want %v", got, tc.wantP99)
			}
		})
	}
}

func TestReplaceSection(t *testing.T) {
	tests := []struct {
		name, before string
	}{
		{"no file", ""},
		{"no markers", "# Title\n\ntext\n"},
		{"old section", "# Title\n" + beginMarker + "\nold table\n" + endMarker + "\ntail\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "README.md")
			if tc.before != "" {
				if err := os.WriteFile(f, []byte(tc.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for range 2 { // a rerun replaces, never appends
				if err := replaceSection(f, "new table\n"); err != nil {
					t.Fatal(err)
				}
			}
			b, _ := os.ReadFile(f)
			s := string(b)
			if strings.Count(s, beginMarker) != 1 || strings.Count(s, "new table") != 1 || strings.Contains(s, "old table") {
				t.Errorf("README after two runs:\n%s", s)
			}
			if strings.Contains(tc.before, "tail") && !strings.HasSuffix(s, endMarker+"\ntail\n") {
				t.Errorf("text after the section lost:\n%s", s)
			}
		})
	}
}

func TestMarkdownAddedLatency(t *testing.T) {
	r := &report{ReferenceConns: 16, peaks: map[string]float64{"bowline/client": 30}, Machine: map[string]string{}}
	lat := func(p50, p99 float64) loadResult {
		return loadResult{Requests: 1000, ActualQPS: 1000, Latency: map[string]float64{"p50": p50, "p90": p50, "p99": p99, "p99.9": p99}}
	}
	r.Points = []point{
		{Path: pathDirect, Protocol: protoHTTP, Mode: "latency", Conns: 16, loadResult: lat(0.1, 1)},
		{Path: pathBowline, Protocol: protoHTTP, Mode: "latency", Conns: 16, loadResult: lat(0.3, 1.2),
			Proxies: []proxyPoint{{Role: "client", CPUSecondsPer1000Req: 0.05, RSSMiB: 18}}},
		{Path: pathBowline, Protocol: protoGRPC, Mode: "latency", Conns: 16, Error: "fortio: 503"},
	}
	r.finish(r.Started)
	if got := r.Points[1].AddedMs["p99"]; got != 0.2 {
		t.Errorf("added p99 %v, want 0.2", got)
	}
	md := r.markdown("bench/results", "bench")
	for _, want := range []string{"| http | 16 | bowline | +0.200 | +0.200 | +0.200 | +0.200 |", "| grpc | 16 | bowline | failed: fortio: 503",
		"two sidecars add <= 0.30 ms p99 (http, 1000 qps, 16 connections) | 0.200 ms | pass",
		"client sidecar peak RSS (VmHWM) <= 20 MiB | 30.000 MiB | FAIL", "(results/dataplane-latest-http.png)"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
