package dashboard

import (
	"cmp"
	"fmt"
	"github.com/bowline-mesh/bowline/internal/telemetry"
	"slices"
	"strings"
	"time"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/analysis"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// View is the body of /dashboard/api/mesh: everything the page shows.
type View struct {
	// Now is when the view was computed.
	Now time.Time `json:"now"`
	// WindowSeconds is the span the rates and percentages cover.
	WindowSeconds float64 `json:"windowSeconds"`
	// Scrapes is how many scrape rounds the history holds.
	Scrapes int `json:"scrapes"`
	// IntervalSeconds is the scrape interval; HistorySeconds the span of the series.
	IntervalSeconds float64 `json:"intervalSeconds"`
	HistorySeconds  float64 `json:"historySeconds"`
	// Graph is the service graph over the window.
	Graph Graph `json:"graph"`
	// Services lists the registry's services with their inbound signals.
	Services []ServiceView `json:"services"`
	// Workloads lists workloads seen in proxies or traffic.
	Workloads []WorkloadView `json:"workloads"`
	// Failures are the failed requests of the window by flag, code and edge.
	Failures []Failure `json:"failures"`
	// Recent are the last failed requests the proxies recorded, newest first.
	Recent []RecentFailure `json:"recent"`
	// Config is the configuration in force with its problems.
	Config ConfigView `json:"config"`
	// Proxies are the connected proxies with their sync and scrape state.
	Proxies []ProxyView `json:"proxies"`
}

// Graph is the service graph: workload and service nodes, and edges from a
// workload to a service it calls and from a service to a workload serving it.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Node is a workload or a service.
type Node struct {
	// ID is "workload:NAMESPACE/NAME", "service:HOST" or "unknown".
	ID string `json:"id"`
	// Kind is workload, service or unknown.
	Kind string `json:"kind"`
	// Name is the workload name, or the service host.
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// App and Version are the workload's canonical service and revision.
	App     string `json:"app,omitempty"`
	Version string `json:"version,omitempty"`
	// Gateway is true for routers (ingress/egress gateways).
	Gateway bool `json:"gateway,omitempty"`
	// Inbound are the signals of the requests the node received.
	Inbound Stats `json:"inbound"`
}

// Edge is traffic from one node to another over the window.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	// FromName and ToName name the nodes as the page shows them.
	FromName string `json:"fromName"`
	ToName   string `json:"toName"`
	Stats
}

// ServiceView is one service and the requests it received.
type ServiceView struct {
	Host         string   `json:"host"`
	Namespace    string   `json:"namespace"`
	Ports        []string `json:"ports"`
	Endpoints    int      `json:"endpoints"`
	Healthy      int      `json:"healthy"`
	MeshExternal bool     `json:"meshExternal,omitempty"`
	Stats        Stats    `json:"stats"`
	// Series are the signals per scrape interval over the retained history.
	Series []Point `json:"series"`
}

// WorkloadView is one workload and the requests it received.
type WorkloadView struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	App       string `json:"app,omitempty"`
	Version   string `json:"version,omitempty"`
	// Proxies are the names of its connected proxies.
	Proxies []string `json:"proxies"`
	// Sync sums up its proxies' sync states: SYNCED, STALE, NACK, NOT SENT, or
	// "no proxy".
	Sync   string  `json:"sync"`
	Stats  Stats   `json:"stats"`
	Series []Point `json:"series"`
}

// Point is the signals of one scrape interval.
type Point struct {
	// T is the end of the interval (unix milliseconds).
	T     int64 `json:"t"`
	Stats Stats `json:"stats"`
}

// Failure is a group of failed requests (5xx, 4xx or a response flag).
type Failure struct {
	Flags   string `json:"flags"`
	Meaning string `json:"meaning"`
	Code    string `json:"code"`
	// Source and Service say who called what; Destination is the workload that answered ("unknown" if none).
	Source      string  `json:"source"`
	Service     string  `json:"service"`
	Destination string  `json:"destination"`
	Reporter    string  `json:"reporter"`
	Requests    float64 `json:"requests"`
	Rate        float64 `json:"rate"`
}

// RecentFailure is one failed request or connection as a proxy's access
// log recorded it (its /debug/failures), with the proxy's name.
type RecentFailure struct {
	Proxy           string    `json:"proxy"`
	Time            time.Time `json:"time"`
	Inbound         bool      `json:"inbound"`
	Protocol        string    `json:"protocol"`
	Method          string    `json:"method,omitempty"`
	Authority       string    `json:"authority"`
	Path            string    `json:"path,omitempty"`
	Code            int       `json:"code"`
	Flags           string    `json:"flags"`
	Meaning         string    `json:"meaning,omitempty"`
	Details         string    `json:"details,omitempty"`
	UpstreamCluster string    `json:"upstreamCluster,omitempty"`
	UpstreamHost    string    `json:"upstreamHost,omitempty"`
	DurationMS      float64   `json:"durationMs"`
	RequestID       string    `json:"requestId,omitempty"`
}

// ConfigView is the configuration in force.
type ConfigView struct {
	Version uint64       `json:"version"`
	Objects []ObjectView `json:"objects"`
	// Problems are validation problems of the last read (files with errors keep their last good objects).
	Problems []string `json:"problems"`
	// Analysis are the analyzers' messages (bowline analyze).
	Analysis []string `json:"analysis"`
	// MeshProblems are configuration the model could not apply.
	MeshProblems []string `json:"meshProblems"`
}

// ObjectView is one object in force.
type ObjectView struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Source    string `json:"source,omitempty"`
	// Status is "valid", or the number of problems and messages about it.
	Status string `json:"status"`
	// Messages are the problems and analysis messages naming it.
	Messages []string `json:"messages,omitempty"`
}

// ProxyView is one connected proxy.
type ProxyView struct {
	Proxy
	// Scrape is "ok", "not scraped yet", "no stats address", or the last error.
	Scrape string `json:"scrape"`
}

// View computes what the page shows over the last window.
func (d *Dashboard) View(window time.Duration) View {
	now := d.cfg.Now()
	hist := d.col.history()
	v := View{Now: now, Scrapes: len(hist), IntervalSeconds: d.cfg.Interval.Seconds()}
	if len(hist) > 1 {
		v.HistorySeconds = hist[len(hist)-1].at.Sub(hist[0].at).Seconds()
	}
	proxies := d.cfg.Proxies()
	var services []*registry.Service
	if d.cfg.Services != nil {
		services = d.cfg.Services()
	}

	// The window's deltas: the newest sample minus the newest one at least
	// window older (or the oldest kept).
	var delta map[key]counts
	var span time.Duration
	if len(hist) >= 2 {
		last := hist[len(hist)-1]
		first := hist[0]
		for _, s := range hist {
			if last.at.Sub(s.at) >= window {
				first = s
			}
		}
		delta = diff(first.totals, last.totals)
		span = last.at.Sub(first.at)
	}
	v.WindowSeconds = span.Seconds()
	chosen := choose(delta)

	// Nodes and edges.
	gateways := map[string]bool{}
	for _, p := range proxies {
		if p.Type == "router" {
			gateways[p.Namespace+"/"+p.Workload] = true
		}
	}
	nodes := map[string]*Node{}
	nodeAgg := map[string]*agg{}
	edgeAgg := map[[2]string]*agg{}
	workloadNode := func(name, ns, app, ver string) string {
		if name == "" || name == "unknown" {
			return "unknown"
		}
		id := "workload:" + ns + "/" + name
		if _, ok := nodes[id]; !ok {
			nodes[id] = &Node{ID: id, Kind: "workload", Name: name, Namespace: ns, App: known(app), Version: known(ver), Gateway: gateways[ns+"/"+name]}
		}
		return id
	}
	serviceNode := func(host, ns string) string {
		id := "service:" + host
		if _, ok := nodes[id]; !ok {
			nodes[id] = &Node{ID: id, Kind: "service", Name: host, Namespace: known(ns)}
		}
		return id
	}
	for _, kc := range chosen {
		k, c := kc.k, kc.c
		src := workloadNode(k.srcWorkload, k.srcNamespace, k.srcApp, k.srcVersion)
		if src == "unknown" {
			nodes["unknown"] = &Node{ID: "unknown", Kind: "unknown", Name: "unknown"}
		}
		dst := ""
		if k.dstWorkload != "" && k.dstWorkload != "unknown" {
			dst = workloadNode(k.dstWorkload, k.dstNamespace, k.dstApp, k.dstVersion)
		}
		if k.dstService != "" && k.dstService != "unknown" {
			svc := serviceNode(k.dstService, k.dstServiceNS)
			aggOf(edgeAgg, [2]string{src, svc}).add(k, c)
			aggOf(nodeAgg, svc).add(k, c)
			if dst != "" {
				aggOf(edgeAgg, [2]string{svc, dst}).add(k, c)
			}
		} else if dst != "" {
			aggOf(edgeAgg, [2]string{src, dst}).add(k, c)
		}
		if dst != "" {
			aggOf(nodeAgg, dst).add(k, c)
		}
	}
	// Workloads with a proxy and services with endpoints are nodes even when idle.
	for _, p := range proxies {
		if p.Workload != "" {
			workloadNode(p.Workload, p.Namespace, telemetry.CanonicalService(p.Labels, p.Workload), p.Labels["version"])
		}
	}
	for _, n := range nodes {
		a := nodeAgg[n.ID]
		if a == nil {
			a = &agg{}
		}
		n.Inbound = a.stats(span)
		v.Graph.Nodes = append(v.Graph.Nodes, *n)
	}
	slices.SortFunc(v.Graph.Nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	label := func(id string) string {
		n := nodes[id]
		if n.Kind == "service" {
			return shortHost(n.Name)
		}
		return n.Name
	}
	for e, a := range edgeAgg {
		v.Graph.Edges = append(v.Graph.Edges, Edge{From: e[0], To: e[1], FromName: label(e[0]), ToName: label(e[1]), Stats: a.stats(span)})
	}
	slices.SortFunc(v.Graph.Edges, func(a, b Edge) int { return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To)) })

	intervals := stepsOf(hist)
	v.Services = d.serviceViews(services, nodeAgg, span, intervals)
	v.Workloads = workloadViews(nodes, nodeAgg, proxies, span, intervals)
	v.Failures = failures(chosen, span)
	v.Recent = d.col.recentFailures()
	for i := range v.Recent {
		if f := v.Recent[i].Flags; f != "-" {
			v.Recent[i].Meaning = explainFlags(f)
		}
	}
	if v.Recent == nil {
		v.Recent = []RecentFailure{}
	}
	v.Config = d.configView(services)
	for _, p := range proxies {
		pv := ProxyView{Proxy: p}
		switch lastErr, scraped := d.col.scrapeStatus(p.ID); {
		case p.StatsAddress == "":
			pv.Scrape = "no stats address"
		case lastErr != "":
			pv.Scrape = lastErr
		case !scraped:
			pv.Scrape = "not scraped yet"
		default:
			pv.Scrape = "ok"
		}
		v.Proxies = append(v.Proxies, pv)
	}
	if v.Graph.Nodes == nil {
		v.Graph.Nodes = []Node{}
	}
	if v.Graph.Edges == nil {
		v.Graph.Edges = []Edge{}
	}
	if v.Proxies == nil {
		v.Proxies = []ProxyView{}
	}
	return v
}

type keyCounts struct {
	k key
	c counts
}

// aggOf returns m's agg for id, adding an empty one first.
func aggOf[K comparable](m map[K]*agg, id K) *agg {
	a := m[id]
	if a == nil {
		a = &agg{}
		m[id] = a
	}
	return a
}

// diff returns last - first for every key with requests (or TCP traffic) in between.
func diff(first, last map[key]counts) map[key]counts {
	out := map[key]counts{}
	for k, c := range last {
		d := c.sub(first[k])
		if !d.empty() {
			out[k] = d
		}
	}
	return out
}

// choose picks, for each request, the report the dashboard counts, as Kiali
// does: the destination's (it knows the mTLS peer and the serving workload),
// and the source's where no destination reported traffic from that source to
// that service (no sidecar there, or nothing reached it) or where the
// source's proxy failed the request itself (a response flag: fault
// injection, no healthy upstream, ...), which the destination never saw.
func choose(delta map[key]counts) []keyCounts {
	type pair struct{ srcW, srcNS, svc string }
	reached := map[pair]bool{}
	for k := range delta {
		if k.reporter == "destination" {
			reached[pair{k.srcWorkload, k.srcNamespace, k.dstService}] = true
		}
	}
	var out []keyCounts
	for k, c := range delta {
		switch {
		case k.reporter == "destination":
		case !reached[pair{k.srcWorkload, k.srcNamespace, k.dstService}]:
		case k.flags != "" && k.flags != "-":
		default:
			continue
		}
		out = append(out, keyCounts{k, c})
	}
	slices.SortFunc(out, func(a, b keyCounts) int { return cmp.Compare(fmt.Sprint(a.k), fmt.Sprint(b.k)) })
	return out
}

// step is one scrape interval of the history: its end, its length and the
// reports counted in it.
type step struct {
	at     time.Time
	span   time.Duration
	chosen []keyCounts
}

// stepsOf splits the history into its intervals, choosing each one's reports
// once for every series of the view.
func stepsOf(hist []sample) []step {
	var out []step
	for i := 1; i < len(hist); i++ {
		out = append(out, step{at: hist[i].at, span: hist[i].at.Sub(hist[i-1].at), chosen: choose(diff(hist[i-1].totals, hist[i].totals))})
	}
	return out
}

// seriesFor computes a node's signals for each interval of the history.
func seriesFor(steps []step, match func(key) bool) []Point {
	out := []Point{}
	for _, s := range steps {
		a := &agg{}
		for _, kc := range s.chosen {
			if match(kc.k) {
				a.add(kc.k, kc.c)
			}
		}
		out = append(out, Point{T: s.at.UnixMilli(), Stats: a.stats(s.span)})
	}
	return out
}

func (d *Dashboard) serviceViews(services []*registry.Service, nodeAgg map[string]*agg, span time.Duration, steps []step) []ServiceView {
	out := []ServiceView{}
	for _, s := range services {
		sv := ServiceView{Host: s.Hostname, Namespace: s.Namespace, MeshExternal: s.MeshExternal, Endpoints: len(s.Endpoints)}
		for _, p := range s.Ports {
			sv.Ports = append(sv.Ports, fmt.Sprintf("%d/%s", p.Number, p.Protocol))
		}
		for _, e := range s.Endpoints {
			if e.Healthy {
				sv.Healthy++
			}
		}
		a := nodeAgg["service:"+s.Hostname]
		if a == nil {
			a = &agg{}
		}
		sv.Stats = a.stats(span)
		host := s.Hostname
		sv.Series = seriesFor(steps, func(k key) bool { return k.dstService == host })
		out = append(out, sv)
	}
	slices.SortFunc(out, func(a, b ServiceView) int { return cmp.Compare(a.Host, b.Host) })
	return out
}

func workloadViews(nodes map[string]*Node, nodeAgg map[string]*agg, proxies []Proxy, span time.Duration, steps []step) []WorkloadView {
	out := []WorkloadView{}
	for _, n := range nodes {
		if n.Kind != "workload" {
			continue
		}
		wv := WorkloadView{Name: n.Name, Namespace: n.Namespace, App: n.App, Version: n.Version, Proxies: []string{}, Sync: "no proxy"}
		var states []string
		for _, p := range proxies {
			if p.Workload == n.Name && p.Namespace == n.Namespace {
				wv.Proxies = append(wv.Proxies, p.Name)
				states = append(states, overall(p.Sync))
			}
		}
		if len(states) > 0 {
			wv.Sync = worst(states)
		}
		a := nodeAgg[n.ID]
		if a == nil {
			a = &agg{}
		}
		wv.Stats = a.stats(span)
		name, ns := n.Name, n.Namespace
		wv.Series = seriesFor(steps, func(k key) bool { return k.dstWorkload == name && k.dstNamespace == ns })
		out = append(out, wv)
	}
	slices.SortFunc(out, func(a, b WorkloadView) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Sync states, worst last.
var syncOrder = []string{"SYNCED", "NOT SENT", "STALE", "NACK"}

// overall is the worst state over a proxy's types (NOT SENT counts only when nothing was sent).
func overall(sync map[string]SyncState) string {
	var states []string
	for _, s := range sync {
		states = append(states, s.State)
	}
	if len(states) == 0 {
		return "NOT SENT"
	}
	return worst(states)
}

func worst(states []string) string {
	w := -1
	for _, s := range states {
		if i := slices.Index(syncOrder, s); i > w {
			w = i
		}
	}
	if w < 0 {
		return states[0]
	}
	// NOT SENT beside SYNCED types (a proxy with no RDS) is in sync.
	if syncOrder[w] == "NOT SENT" && slices.Contains(states, "SYNCED") {
		return "SYNCED"
	}
	return syncOrder[w]
}

func failures(chosen []keyCounts, span time.Duration) []Failure {
	type fk struct{ flags, code, src, svc, dst, reporter string }
	sums := map[fk]float64{}
	for _, kc := range chosen {
		k := kc.k
		if k.tcp || !isFailure(k) { // failed connections are counted by the request metrics' flags
			continue
		}
		src := "unknown"
		if k.srcWorkload != "" && k.srcWorkload != "unknown" {
			src = k.srcWorkload + "." + k.srcNamespace
		}
		dst := "unknown"
		if k.dstWorkload != "" && k.dstWorkload != "unknown" {
			dst = k.dstWorkload + "." + k.dstNamespace
		}
		sums[fk{orDash(k.flags), k.code, src, k.dstService, dst, k.reporter}] += kc.c.requests
	}
	out := []Failure{}
	for f, n := range sums {
		rate := 0.0
		if span > 0 {
			rate = n / span.Seconds()
		}
		out = append(out, Failure{Flags: f.flags, Meaning: explainFlags(f.flags), Code: f.code, Source: f.src, Service: f.svc,
			Destination: f.dst, Reporter: f.reporter, Requests: n, Rate: rate})
	}
	slices.SortFunc(out, func(a, b Failure) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), cmp.Compare(a.Service, b.Service), cmp.Compare(a.Flags, b.Flags), cmp.Compare(a.Code, b.Code))
	})
	return out
}

func (d *Dashboard) configView(services []*registry.Service) ConfigView {
	snap := d.cfg.Store.Current()
	cv := ConfigView{Version: snap.Version, Objects: []ObjectView{}, Problems: []string{}, Analysis: []string{}, MeshProblems: []string{}}
	about := map[config.Key][]string{}
	for _, p := range snap.Problems {
		cv.Problems = append(cv.Problems, p.String())
		if p.Kind != "" {
			k := config.Key{Kind: p.Kind, Namespace: p.Namespace, Name: p.Name}
			about[k] = append(about[k], string(p.Severity)+": "+p.Message)
		}
	}
	for _, m := range d.analysisOf(snap) {
		if resolvedElsewhere(m, services, d.cfg.Analysis.Domain) {
			continue
		}
		cv.Analysis = append(cv.Analysis, m.String())
		if m.Kind != "" {
			k := config.Key{Kind: m.Kind, Namespace: m.Namespace, Name: m.Name}
			about[k] = append(about[k], fmt.Sprintf("%s [%s] %s", m.Type.Level, m.Type.Code, m.Text()))
		}
	}
	for _, o := range snap.Objects {
		ov := ObjectView{Kind: o.GVK.Kind, Namespace: o.Meta.Namespace, Name: o.Meta.Name, Status: "valid"}
		if o.Source.File != "" {
			ov.Source = o.Source.File
			if o.Source.Line > 0 {
				ov.Source += fmt.Sprintf(":%d", o.Source.Line)
			}
		}
		if ms := about[o.Key()]; len(ms) > 0 {
			ov.Messages = ms
			ov.Status = fmt.Sprintf("%d problem%s", len(ms), plural(len(ms)))
		}
		cv.Objects = append(cv.Objects, ov)
	}
	if d.cfg.MeshProblems != nil {
		cv.MeshProblems = append(cv.MeshProblems, d.cfg.MeshProblems()...)
	}
	return cv
}

// resolvedElsewhere drops "Referenced host not found" for hosts the registry
// has (Kubernetes Services, which the analyzers over config objects cannot see).
func resolvedElsewhere(m analysis.Message, services []*registry.Service, domain string) bool {
	if m.Type != analysis.ReferencedResourceNotFound || len(m.Args) < 2 || m.Args[0] != "host" {
		return false
	}
	host, _ := m.Args[1].(string)
	if domain == "" {
		domain = analysis.DefaultDomain
	}
	for _, s := range services {
		if s.Hostname == host || (!strings.Contains(host, ".") && s.Hostname == host+"."+m.Namespace+".svc."+domain) {
			return true
		}
	}
	return false
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func known(s string) string {
	if s == "unknown" {
		return ""
	}
	return s
}

// shortHost is NAME.NAMESPACE of a Kubernetes-form host, else the host.
func shortHost(h string) string {
	if name, rest, ok := strings.Cut(h, "."); ok {
		if ns, tail, ok := strings.Cut(rest, "."); ok && strings.HasPrefix(tail, "svc.") {
			return name + "." + ns
		}
	}
	return h
}
