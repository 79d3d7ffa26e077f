package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// point is one fortio run against one path.
type point struct {
	Path      string  `json:"path"`
	Protocol  string  `json:"protocol"`
	Mode      string  `json:"mode"` // latency (open loop) or throughput (closed loop)
	Conns     int     `json:"conns"`
	TargetQPS float64 `json:"targetQps"` // -1: closed loop
	DurationS float64 `json:"durationS"`
	loadResult
	// AddedMs is this path's latency minus direct's at the same protocol
	// and connections, per percentile.
	AddedMs map[string]float64 `json:"addedMs,omitempty"`
	Proxies []proxyPoint       `json:"proxies,omitempty"`
	Error   string             `json:"error,omitempty"`
}

// proxyPoint is one proxy's resource use during a point.
type proxyPoint struct {
	Role                 string  `json:"role"` // client or server side
	Process              string  `json:"process"`
	CPUSeconds           float64 `json:"cpuSeconds"`
	CPUSecondsPer1000Req float64 `json:"cpuSecondsPer1000Req"` // = vCPU per 1000 req/s
	RSSMiB               float64 `json:"rssMiB"`               // median VmRSS while loaded
	RSSMaxMiB            float64 `json:"rssMaxMiB"`
	RSSAnonMiB           float64 `json:"rssAnonMiB"` // RssAnon at the end of the point
	RSSFileMiB           float64 `json:"rssFileMiB"` // RssFile (binary pages) at the end
	PSSMiB               float64 `json:"pssMiB"`     // Pss (smaps_rollup) at the end: shared binary pages split among sidecars
	Error                string  `json:"error,omitempty"`
}

// proxySummary is one proxy's headline numbers over the run.
type proxySummary struct {
	Path              string  `json:"path"`
	Role              string  `json:"role"`
	PeakRSSMiB        float64 `json:"peakRssMiB"`               // VmHWM at the end of the run
	SteadyRSSMiB      float64 `json:"steadyRssMiB"`             // median VmRSS at 1000 qps, reference conns
	AnonRSSMiB        float64 `json:"anonRssMiB"`               // of which RssAnon
	FileRSSMiB        float64 `json:"fileRssMiB"`               // of which RssFile
	PSSMiB            float64 `json:"pssMiB"`                   // Pss at the end of that point
	CPUPer1000ReqHTTP float64 `json:"cpuSecondsPer1000ReqHttp"` // at 1000 qps, reference conns
	CPUPer1000ReqGRPC float64 `json:"cpuSecondsPer1000ReqGrpc"`
}

// targetCheck is one of the performance targets.
type targetCheck struct {
	Name  string  `json:"name"`
	Limit float64 `json:"limit"`
	Unit  string  `json:"unit"`
	Value float64 `json:"value"`
	Pass  bool    `json:"pass"`
	Note  string  `json:"note,omitempty"`
}

// report is the JSON written per run.
type report struct {
	Started        time.Time         `json:"started"`
	Finished       time.Time         `json:"finished"`
	Commit         string            `json:"commit"`
	Short          bool              `json:"short"`
	Machine        map[string]string `json:"machine"`
	Pinning        string            `json:"pinning"`
	Tools          map[string]string `json:"tools"`
	Setup          map[string]string `json:"setup"`
	ReferenceConns int               `json:"referenceConns"`
	Points         []point           `json:"points"`
	Proxies        []proxySummary    `json:"proxies"`
	Targets        []targetCheck     `json:"targets"`
	Profiles       []string          `json:"profiles,omitempty"`
	Notes          []string          `json:"notes,omitempty"`
	peaks          map[string]float64
}

func newReport(o options, e *env, start time.Time, planned time.Duration) *report {
	r := &report{Started: start, Commit: o.commit, Short: o.short, peaks: map[string]float64{},
		Machine: map[string]string{"cpus": fmt.Sprint(runtime.NumCPU()), "goos": runtime.GOOS, "goarch": runtime.GOARCH}}
	if r.Commit == "" {
		out, _ := exec.Command("git", "describe", "--always", "--dirty").Output()
		r.Commit = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.Machine["loadavgAtStart"] = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				r.Machine["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if e.procs.taskset != "" {
		r.Pinning = fmt.Sprintf("taskset: fortio client and server on CPU %s; every proxy and the control plane on CPU %s",
			e.loadCPUs, e.proxyCPUs)
	} else {
		r.Pinning = "none (taskset missing or fewer than 2 CPUs)"
	}
	r.Tools = map[string]string{"fortio": binVersion(e.fortio, "version"), "go": runtime.Version()}
	if e.nginx != "" {
		r.Tools["nginx"] = binVersion(e.nginx, "-v")
	}
	if e.haproxy != "" {
		r.Tools["haproxy"] = binVersion(e.haproxy, "-v")
	}
	r.Setup = map[string]string{
		"http":       fmt.Sprintf("fortio load, HTTP/1.1 keep-alive, GET /echo?size=%d (%d B responses)", payloadSize, payloadSize),
		"grpc":       fmt.Sprintf("fortio load -grpc -ping -s 1 -payload-size %d (%d B each way)", payloadSize, payloadSize),
		"latency":    fmt.Sprintf("-qps %g -uniform -nocatchup -r 0.00001, %s per point", o.qps, o.duration),
		"throughput": fmt.Sprintf("-qps -1 (closed loop), %d connections, %s", o.tputConns, o.tputDuration),
		"bowline":    "fortio -> client sidecar explicit outbound listener (Host: echo.bench.svc.cluster.local:PORT) -> server sidecar inbound -> fortio server; " + bowlineSecurity(e.plaintext) + ", access log off",
		"nginx":      "fortio -> nginx (1 worker) -> TLS 1.3, upstream keepalive -> nginx (1 worker) -> fortio server",
		"haproxy":    "fortio -> haproxy (nbthread 1) -> TLS 1.3, http-reuse always -> haproxy (nbthread 1) -> fortio server",
		"planned":    planned.Round(time.Second).String(),
	}
	if len(e.sidecarEnv) > 0 {
		r.Setup["bowlineEnv"] = strings.Join(e.sidecarEnv, " ")
	}
	r.ReferenceConns = 16
	if !slices.Contains(o.conns, 16) {
		r.ReferenceConns = o.conns[len(o.conns)-1]
	}
	return r
}

func (r *report) peak(path, role string, mib float64) { r.peaks[path+"/"+role] = mib }

// find returns the point for path, protocol, mode and conns.
func (r *report) find(path, proto, mode string, conns int) *point {
	for i := range r.Points {
		p := &r.Points[i]
		if p.Path == path && p.Protocol == proto && p.Mode == mode && p.Conns == conns {
			return p
		}
	}
	return nil
}

// finish computes added latency, per-proxy summaries and target checks.
func (r *report) finish(end time.Time) {
	r.Finished = end
	for i := range r.Points {
		p := &r.Points[i]
		if p.Mode != "latency" || p.Path == pathDirect || p.Error != "" {
			continue
		}
		d := r.find(pathDirect, p.Protocol, "latency", p.Conns)
		if d == nil || d.Error != "" {
			continue
		}
		p.AddedMs = map[string]float64{}
		for k, v := range p.Latency {
			p.AddedMs[k] = round(v-d.Latency[k], 4)
		}
	}
	seen := map[string]bool{}
	for _, p := range r.Points {
		for _, pp := range p.Proxies {
			key := p.Path + "/" + pp.Role
			if seen[key] {
				continue
			}
			seen[key] = true
			s := proxySummary{Path: p.Path, Role: pp.Role, PeakRSSMiB: round(r.peaks[key], 1)}
			for _, proto := range []string{protoHTTP, protoGRPC} {
				if rp := r.find(p.Path, proto, "latency", r.ReferenceConns); rp != nil && rp.Error == "" {
					for _, x := range rp.Proxies {
						if x.Role != pp.Role {
							continue
						}
						if proto == protoHTTP {
							s.CPUPer1000ReqHTTP = round(x.CPUSecondsPer1000Req, 4)
							s.SteadyRSSMiB = round(x.RSSMiB, 1)
							s.AnonRSSMiB, s.FileRSSMiB = round(x.RSSAnonMiB, 1), round(x.RSSFileMiB, 1)
							s.PSSMiB = round(x.PSSMiB, 1)
						} else {
							s.CPUPer1000ReqGRPC = round(x.CPUSecondsPer1000Req, 4)
							if s.SteadyRSSMiB == 0 {
								s.SteadyRSSMiB = round(x.RSSMiB, 1)
							}
						}
					}
				}
			}
			r.Proxies = append(r.Proxies, s)
		}
	}
	ref := fmt.Sprintf("1000 qps, %d connections", r.ReferenceConns)
	for _, proto := range []string{protoHTTP, protoGRPC} {
		p := r.find(pathBowline, proto, "latency", r.ReferenceConns)
		if p == nil {
			continue
		}
		c := targetCheck{Name: fmt.Sprintf("two sidecars add <= 0.30 ms p99 (%s, %s)", proto, ref), Limit: 0.30, Unit: "ms"}
		if p.AddedMs == nil {
			c.Note = "not measured: " + firstNonEmpty(p.Error, "no direct baseline")
		} else {
			c.Value = p.AddedMs["p99"]
			c.Pass = c.Value <= c.Limit
		}
		r.Targets = append(r.Targets, c)
	}
	for _, s := range r.Proxies {
		if s.Path != pathBowline {
			continue
		}
		r.Targets = append(r.Targets,
			targetCheck{Name: fmt.Sprintf("%s sidecar <= 0.10 vCPU per 1000 req/s (http, %s)", s.Role, ref), Limit: 0.10,
				Unit: "vCPU", Value: s.CPUPer1000ReqHTTP, Pass: s.CPUPer1000ReqHTTP > 0 && s.CPUPer1000ReqHTTP <= 0.10},
			targetCheck{Name: fmt.Sprintf("%s sidecar steady RSS <= 20 MiB", s.Role), Limit: 20, Unit: "MiB",
				Value: s.SteadyRSSMiB, Pass: s.SteadyRSSMiB > 0 && s.SteadyRSSMiB <= 20},
			targetCheck{Name: fmt.Sprintf("%s sidecar peak RSS (VmHWM) <= 20 MiB", s.Role), Limit: 20, Unit: "MiB",
				Value: s.PeakRSSMiB, Pass: s.PeakRSSMiB > 0 && s.PeakRSSMiB <= 20})
	}
}

// write stores the JSON, the plots and the README table.
func (r *report) write(o options, log *slog.Logger) error {
	if err := os.MkdirAll(o.results, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	stamp := r.Started.Format("20060102T150405Z")
	files := []string{filepath.Join(o.results, "dataplane-"+stamp+".json"), filepath.Join(o.results, "dataplane-latest.json")}
	for _, f := range files {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			return err
		}
	}
	for _, proto := range []string{protoHTTP, protoGRPC} {
		f := filepath.Join(o.results, "dataplane-latest-"+proto+".png")
		if err := r.plot(proto, f); err != nil {
			log.Info("plot not written", slog.String("protocol", proto), slog.String("reason", err.Error()))
			continue
		}
		files = append(files, f)
	}
	md := r.markdown(filepath.ToSlash(o.results), filepath.Dir(o.readme))
	if !o.noReadme {
		if err := replaceSection(o.readme, md); err != nil {
			return err
		}
		files = append(files, o.readme)
	}
	fmt.Print(md)
	log.Info("results written", slog.String("files", strings.Join(files, " ")))
	return nil
}

// Markers around the generated section of the README.
const (
	beginMarker = "<!-- BEGIN dataplane-results (generated by bench/dataplane/cmd/dpbench; do not edit) -->"
	endMarker   = "<!-- END dataplane-results -->"
)

// replaceSection puts md between the markers of file (appending the markers
// when missing).
func replaceSection(file, md string) error {
	b, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	block := beginMarker + "\n" + md + endMarker
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(endMarker):]
	} else {
		if s != "" && !strings.HasSuffix(s, "\n\n") {
			s += "\n"
		}
		s += block + "\n"
	}
	return os.WriteFile(file, []byte(s), 0o644)
}

// markdown renders the run as tables. Images are linked relative to the
// README's directory.
func (r *report) markdown(results, readmeDir string) string {
	var b bytes.Buffer
	mode := "full"
	if r.Short {
		mode = "short (-short)"
	}
	fmt.Fprintf(&b, "Run %s, %s, commit `%s`, %s CPUs (%s), load average at start %s. Pinning: %s.\n\n",
		r.Started.Format("2006-01-02 15:04 UTC"), mode, r.Commit, r.Machine["cpus"], r.Machine["cpu"],
		r.Machine["loadavgAtStart"], r.Pinning)
	b.WriteString("**Added latency over direct** (ms; 1000 qps open loop, uniform, no catch-up; direct row shows absolute latency):\n\n")
	b.WriteString("| protocol | conns | path | p50 | p90 | p99 | p99.9 | achieved qps | errors |\n")
	b.WriteString("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, p := range r.Points {
		if p.Mode != "latency" {
			continue
		}
		row := fmt.Sprintf("| %s | %d | %s |", p.Protocol, p.Conns, p.Path)
		switch {
		case p.Error != "" && p.Requests == 0:
			row += " failed: " + mdEscape(p.Error) + " | | | | | |"
		case p.Path == pathDirect:
			for _, pc := range percentiles {
				row += " (" + fmtMs(p.Latency[pc.key]) + ") |"
			}
			row += fmt.Sprintf(" %.0f | %d |", p.ActualQPS, p.Errors)
		case p.AddedMs == nil:
			row += " failed: " + mdEscape(p.Error) + fmt.Sprintf(" | | | | %.0f | %d |", p.ActualQPS, p.Errors)
		default:
			for _, pc := range percentiles {
				row += " +" + fmtMs(p.AddedMs[pc.key]) + " |"
			}
			row += fmt.Sprintf(" %.0f | %d |", p.ActualQPS, p.Errors)
		}
		b.WriteString(strings.ReplaceAll(row, "+-", "−") + "\n")
	}
	fmt.Fprintf(&b, "\n**Per proxy** (CPU = CPU-seconds per 1000 requests = vCPU per 1000 req/s, at 1000 qps and %d connections; "+
		"steady RSS = median VmRSS during that point; PSS = Pss from smaps_rollup at its end (pages shared with other processes, such as one binary's text, divided among them); peak = VmHWM at the end of the run; max qps = closed loop, 64 connections, whole path):\n\n",
		r.ReferenceConns)
	b.WriteString("| path | proxy | CPU http | CPU grpc | steady RSS MiB (anon + file) | PSS MiB | peak RSS MiB | max qps http | max qps grpc |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	tput := func(path, proto string) string {
		for _, p := range r.Points {
			if p.Mode == "throughput" && p.Path == path && p.Protocol == proto {
				if p.Error != "" && p.Requests == 0 {
					return "failed"
				}
				s := fmt.Sprintf("%.0f", p.ActualQPS)
				if p.Errors > 0 {
					s += fmt.Sprintf(" (%d errors)", p.Errors)
				}
				return s
			}
		}
		return ""
	}
	fmt.Fprintf(&b, "| direct | — | | | | | | %s | %s |\n", tput(pathDirect, protoHTTP), tput(pathDirect, protoGRPC))
	for _, s := range r.Proxies {
		first := s.Role == "client"
		th, tg := "", ""
		if first {
			th, tg = tput(s.Path, protoHTTP), tput(s.Path, protoGRPC)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.1f (%.1f + %.1f) | %.1f | %.1f | %s | %s |\n", s.Path, s.Role, fmtCPU(s.CPUPer1000ReqHTTP),
			fmtCPU(s.CPUPer1000ReqGRPC), s.SteadyRSSMiB, s.AnonRSSMiB, s.FileRSSMiB, s.PSSMiB, s.PeakRSSMiB, th, tg)
	}
	if len(r.Targets) > 0 {
		b.WriteString("\n**Targets** (Bowline sidecars):\n\n| target | value | result |\n| --- | ---: | --- |\n")
		for _, t := range r.Targets {
			res := "FAIL"
			if t.Pass {
				res = "pass"
			}
			val := fmt.Sprintf("%.3f %s", t.Value, t.Unit)
			if t.Note != "" {
				val, res = "—", mdEscape(t.Note)
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", t.Name, val, res)
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes from the run:\n\n")
		for _, n := range r.Notes {
			b.WriteString("- " + mdEscape(n) + "\n")
		}
	}
	rel := func(f string) string {
		if x, err := filepath.Rel(readmeDir, f); err == nil {
			return filepath.ToSlash(x)
		}
		return f
	}
	fmt.Fprintf(&b, "\n![HTTP latency percentiles](%s) ![gRPC latency percentiles](%s)\n\n",
		rel(filepath.Join(results, "dataplane-latest-http.png")), rel(filepath.Join(results, "dataplane-latest-grpc.png")))
	if len(r.Profiles) > 0 {
		b.WriteString("Profiles of the Bowline sidecars under load: ")
		for i, f := range r.Profiles {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "[%s](%s)", filepath.Base(f), rel(f))
		}
		b.WriteString(".\n\n")
	}
	fmt.Fprintf(&b, "Full data: [%s](%s).\n", "dataplane-latest.json", rel(filepath.Join(results, "dataplane-latest.json")))
	return b.String()
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "/")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func fmtMs(v float64) string {
	switch {
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func fmtCPU(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.3f", v)
}

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// bowlineSecurity describes the transport between the Bowline sidecars.
func bowlineSecurity(plaintext bool) string {
	if plaintext {
		return "plaintext (-plaintext: no CA, PeerAuthentication DISABLE)"
	}
	return "mTLS (TLS 1.3, ISTIO_MUTUAL via auto mTLS + PERMISSIVE, certificates from bowline discovery's CA)"
}
