package proxy

import (
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// statsText serves Envoy's /stats text form, "NAME: VALUE" per line sorted
// by name, for the statistics Bowline keeps per cluster:
//
//	cluster.outbound|80||httpbin.default.svc.cluster.local.upstream_rq_pending_overflow: 21
//
// (Istio's circuit-breaking task greps these). ?filter=REGEX keeps the
// names matching REGEX, as Envoy's; ?usedonly is accepted (every value
// listed is one Bowline keeps). The Prometheus form is /stats/prometheus.
func (p *Proxy) statsText(w http.ResponseWriter, r *http.Request) {
	var filter *regexp.Regexp
	if f := r.URL.Query().Get("filter"); f != "" {
		re, err := regexp.Compile(f)
		if err != nil {
			http.Error(w, "invalid regex: "+err.Error(), http.StatusBadRequest)
			return
		}
		filter = re
	}
	if format := r.URL.Query().Get("format"); format != "" && format != "text" {
		http.Error(w, "format "+strconv.Quote(format)+": only text is served here; use /stats/prometheus", http.StatusBadRequest)
		return
	}
	var lines []string
	add := func(name string, v int64) {
		if filter == nil || filter.MatchString(name) {
			lines = append(lines, name+": "+strconv.FormatInt(v, 10))
		}
	}
	if s := p.snap.Load(); s != nil {
		for name, c := range s.clusters {
			pre := "cluster." + name + "."
			add(pre+"upstream_rq_total", c.rqTotal.Load())
			add(pre+"upstream_rq_active", c.active.Load())
			add(pre+"upstream_rq_pending_overflow", c.overflows.Load())
			var total, healthy, ejected int64
			if hs := c.hosts.Load(); hs != nil {
				for _, h := range hs.hosts {
					total++
					switch {
					case h.ejected():
						ejected++
					case h.health.Routable():
						healthy++
					}
				}
			}
			add(pre+"membership_total", total)
			add(pre+"membership_healthy", healthy)
			add(pre+"outlier_detection.ejections_active", ejected)
			add(pre+"outlier_detection.ejections_enforced_success_rate", c.srEjections.Load())
			add(pre+"lb_healthy_panic", c.panics.Load())
		}
	}
	sort.Strings(lines)
	w.Header().Set("content-type", "text/plain; charset=UTF-8")
	_, _ = w.Write([]byte(strings.Join(lines, "\n") + "\n"))
}
