package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

// held is what a client holds: per type URL, resource name -> bytes.
type held map[string]map[string][]byte

// propClient is an Envoy-like ADS client, state of the world or delta:
// CDS and LDS wildcard, EDS and RDS by the names those carry, every
// response ACKed; it keeps what it was sent, applying delta updates and
// removals, so that what it holds can be compared with a regeneration.
type propClient struct {
	node  *core.Node
	proxy *model.Proxy
	delta bool

	mu   sync.Mutex
	have held
	err  error
}

func (c *propClient) snapshot() (held, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := held{}
	for typ, m := range c.have {
		out[typ] = maps.Clone(m)
	}
	return out, c.err
}

func (c *propClient) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// follow returns the type a response's resources name (EDS for EDS
// clusters, RDS for RDS listeners) and those names, sorted.
func follow(typ string, have map[string][]byte) (string, []string) {
	var names []string
	switch typ {
	case resourcev3.ClusterType:
		for _, b := range have {
			cl := &clusterv3.Cluster{}
			if err := proto.Unmarshal(b, cl); err == nil && cl.GetType() == clusterv3.Cluster_EDS {
				names = append(names, cl.GetEdsClusterConfig().GetServiceName())
			}
		}
		slices.Sort(names)
		return resourcev3.EndpointType, names
	case resourcev3.ListenerType:
		for _, b := range have {
			l := &listenerv3.Listener{}
			if proto.Unmarshal(b, l) != nil {
				continue
			}
			chains := l.GetFilterChains()
			if l.GetDefaultFilterChain() != nil {
				chains = append(chains, l.GetDefaultFilterChain())
			}
			for _, fc := range chains {
				for _, f := range fc.GetFilters() {
					hcm := &hcmv3.HttpConnectionManager{}
					if f.GetTypedConfig().UnmarshalTo(hcm) == nil && hcm.GetRds() != nil {
						names = append(names, hcm.GetRds().GetRouteConfigName())
					}
				}
			}
		}
		slices.Sort(names)
		return resourcev3.RouteType, slices.Compact(names)
	}
	return "", nil
}

func (c *propClient) run(ctx context.Context, addr string) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		c.fail(err)
		return
	}
	defer conn.Close()
	ads := discovery.NewAggregatedDiscoveryServiceClient(conn)
	if c.delta {
		c.runDelta(ctx, ads)
		return
	}
	c.runSotW(ctx, ads)
}

func (c *propClient) runSotW(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient) {
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		c.fail(err)
		return
	}
	send := func(r *discovery.DiscoveryRequest) bool {
		if err := st.Send(r); err != nil && ctx.Err() == nil {
			c.fail(err)
			return false
		}
		return true
	}
	if !send(&discovery.DiscoveryRequest{Node: c.node, TypeUrl: resourcev3.ClusterType}) || !send(&discovery.DiscoveryRequest{TypeUrl: resourcev3.ListenerType}) {
		return
	}
	names := map[string][]string{}
	for {
		resp, err := st.Recv()
		if err != nil {
			if ctx.Err() == nil {
				c.fail(err)
			}
			return
		}
		typ := resp.GetTypeUrl()
		m := map[string][]byte{}
		for _, a := range resp.GetResources() {
			m[nameOf(typ, a.GetValue())] = a.GetValue()
		}
		c.mu.Lock()
		if typ == resourcev3.EndpointType || typ == resourcev3.RouteType {
			// By name: a response holds the names asked for.
			for n := range c.have[typ] {
				if !slices.Contains(names[typ], n) {
					delete(c.have[typ], n)
				}
			}
			maps.Copy(c.have[typ], m)
		} else {
			c.have[typ] = m
		}
		next, want := follow(typ, c.have[typ])
		c.mu.Unlock()
		if !send(&discovery.DiscoveryRequest{TypeUrl: typ, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: names[typ]}) {
			return
		}
		if next != "" && !slices.Equal(names[next], want) {
			names[next] = want
			c.mu.Lock()
			for n := range c.have[next] {
				if !slices.Contains(want, n) {
					delete(c.have[next], n)
				}
			}
			c.mu.Unlock()
			if !send(&discovery.DiscoveryRequest{TypeUrl: next, ResourceNames: want}) {
				return
			}
		}
	}
}

func (c *propClient) runDelta(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient) {
	st, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		c.fail(err)
		return
	}
	send := func(r *discovery.DeltaDiscoveryRequest) bool {
		if err := st.Send(r); err != nil && ctx.Err() == nil {
			c.fail(err)
			return false
		}
		return true
	}
	if !send(&discovery.DeltaDiscoveryRequest{Node: c.node, TypeUrl: resourcev3.ClusterType}) || !send(&discovery.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType}) {
		return
	}
	subscribed := map[string][]string{}
	for {
		resp, err := st.Recv()
		if err != nil {
			if ctx.Err() == nil {
				c.fail(err)
			}
			return
		}
		typ := resp.GetTypeUrl()
		c.mu.Lock()
		for _, n := range resp.GetRemovedResources() {
			delete(c.have[typ], n)
		}
		for _, r := range resp.GetResources() {
			c.have[typ][r.GetName()] = r.GetResource().GetValue()
		}
		next, want := follow(typ, c.have[typ])
		c.mu.Unlock()
		if !send(&discovery.DeltaDiscoveryRequest{TypeUrl: typ, ResponseNonce: resp.GetNonce()}) {
			return
		}
		if next != "" && !slices.Equal(subscribed[next], want) {
			var sub, unsub []string
			for _, n := range want {
				if !slices.Contains(subscribed[next], n) {
					sub = append(sub, n)
				}
			}
			for _, n := range subscribed[next] {
				if !slices.Contains(want, n) {
					unsub = append(unsub, n)
				}
			}
			subscribed[next] = want
			c.mu.Lock()
			for _, n := range unsub {
				delete(c.have[next], n)
			}
			c.mu.Unlock()
			if !send(&discovery.DeltaDiscoveryRequest{TypeUrl: next, ResourceNamesSubscribe: sub, ResourceNamesUnsubscribe: unsub}) {
				return
			}
		}
	}
}

// nameOf is the name of a resource of typ encoded as b.
func nameOf(typ string, b []byte) string {
	switch typ {
	case resourcev3.ClusterType:
		m := &clusterv3.Cluster{}
		_ = proto.Unmarshal(b, m)
		return m.GetName()
	case resourcev3.ListenerType:
		m := &listenerv3.Listener{}
		_ = proto.Unmarshal(b, m)
		return m.GetName()
	case resourcev3.EndpointType:
		m := &endpointv3.ClusterLoadAssignment{}
		_ = proto.Unmarshal(b, m)
		return m.GetClusterName()
	default:
		m := &routev3.RouteConfiguration{}
		_ = proto.Unmarshal(b, m)
		return m.GetName()
	}
}

// propMesh is the configuration the property test edits: objects by key,
// each kept as parsed until it changes (as the config directory does).
type propMesh struct {
	t       *testing.T
	objects map[string]*config.Object
}

func (pm *propMesh) set(key, yaml string) {
	pm.t.Helper()
	res := config.Parse(key+".yaml", []byte(yaml), config.ParseOptions{})
	if len(res.Problems) > 0 || len(res.Objects) != 1 {
		pm.t.Fatalf("%s: %v", key, res.Problems)
	}
	if valid, probs := validation.Objects(res.Objects); len(valid) != 1 {
		pm.t.Fatalf("%s: %v", key, probs)
	}
	pm.objects[key] = res.Objects[0]
}

func (pm *propMesh) list() []*config.Object {
	keys := slices.Sorted(maps.Keys(pm.objects))
	out := make([]*config.Object, 0, len(keys))
	for _, k := range keys {
		out = append(out, pm.objects[k])
	}
	return out
}

func serviceEntry(i int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-%[1]d, namespace: default}
spec:
  hosts: [svc-%[1]d.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9000, name: tcp, protocol: TCP}]
  workloadSelector: {labels: {app: svc-%[1]d}}
`, i)
}

func destinationRule(i int, lb string, subsets int) string {
	var s strings.Builder
	for k := range subsets {
		fmt.Fprintf(&s, "  - {name: v%d, labels: {version: v%d}}\n", k+1, k+1)
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-%[1]d, namespace: default}
spec:
  host: svc-%[1]d.default.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: %[2]s}}
  subsets:
%[3]s`, i, lb, s.String())
}

func virtualService(i, w int, source bool) string {
	match := ""
	if source {
		match = "  - match: [{sourceLabels: {version: v2}}]\n    route: [{destination: {host: svc-" + fmt.Sprint(i) + ".default.svc.cluster.local, subset: v2}}]\n"
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-%[1]d, namespace: default}
spec:
  hosts: [svc-%[1]d.default.svc.cluster.local]
  http:
%[4]s  - route:
    - {destination: {host: svc-%[1]d.default.svc.cluster.local, subset: v1}, weight: %[2]d}
    - {destination: {host: svc-%[1]d.default.svc.cluster.local, subset: v2}, weight: %[3]d}
`, i, w, 100-w, match)
}

const sidecarOther = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: other}
spec:
  egress: [{hosts: ["./*", "default/svc-0.default.svc.cluster.local", "default/svc-1.default.svc.cluster.local"]}]
`

const strictV2 = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict-v2, namespace: default}
spec:
  selector: {matchLabels: {version: v2}}
  mtls: {mode: STRICT}
`

// TestIncrementalPushesEqualRegeneration applies random sequences of
// config and endpoint edits to a running server and checks, after each,
// that every connected proxy (state of the world and delta, distinct
// workloads in shared and separate scopes) holds exactly what a
// regeneration from scratch gives it: the same resource names and the
// same bytes.
func TestIncrementalPushesEqualRegeneration(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runIncremental(t, seed, 25) })
	}
}

func runIncremental(t *testing.T, seed uint64, steps int) {
	rnd := rand.New(rand.NewPCG(seed, 11))
	store := config.NewStore()
	reg := registry.New(nil)
	pm := &propMesh{t: t, objects: map[string]*config.Object{}}
	const nSvc = 6
	for i := range nSvc {
		pm.set(fmt.Sprintf("se-%d", i), serviceEntry(i))
	}
	pm.set("dr-0", destinationRule(0, "ROUND_ROBIN", 2))
	pm.set("vs-0", virtualService(0, 80, false))
	store.Publish(pm.list(), nil, nil)
	workload := func(i, k int) registry.Workload {
		return registry.Workload{ID: fmt.Sprintf("w-%d-%d", i, k), Name: fmt.Sprintf("svc-%d", i), Namespace: "default",
			Address: fmt.Sprintf("10.9.%d.%d", i, k+1), Ports: map[string]uint32{"http": 8080, "tcp": 9000},
			Labels: map[string]string{"app": fmt.Sprintf("svc-%d", i), "version": fmt.Sprintf("v%d", 1+k%2)}, Healthy: true}
	}
	for i := range nSvc {
		for k := range 2 {
			if err := reg.Register(workload(i, k)); err != nil {
				t.Fatal(err)
			}
		}
	}
	gen := NewMeshGenerator("", "", nil)
	srv, err := New(Config{XDSAddress: "127.0.0.1:0", DebugAddress: "127.0.0.1:0", Insecure: true, Store: store, Registry: reg,
		Generator: gen, Debounce: 5 * time.Millisecond, DebounceMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	xa, _, ok := srv.Addresses(ctx)
	if !ok {
		t.Fatal("server did not listen")
	}

	// Distinct sidecars: two share a scope (default, no selector matches),
	// one has v2 (sourceLabels, PeerAuthentication), one is in other (its
	// Sidecar), one is captured; each protocol.
	type spec struct {
		ns, version string
		captured    bool
	}
	specs := []spec{{"default", "v1", false}, {"default", "v1", false}, {"default", "v2", false}, {"other", "v1", false}, {"default", "v1", true}}
	var clients []*propClient
	var wg sync.WaitGroup
	for i, s := range specs {
		for _, delta := range []bool{false, true} {
			ip := fmt.Sprintf("10.9.%d.%d", i, 1+len(clients)%2) // some are endpoints, as pods are
			if delta {
				ip = fmt.Sprintf("10.8.0.%d", 1+len(clients))
			}
			md := map[string]any{"NAMESPACE": s.ns, "WORKLOAD_NAME": fmt.Sprintf("client-%d", len(clients)), "INSTANCE_IPS": ip,
				"LABELS": map[string]any{"app": fmt.Sprintf("client-%d", len(clients)), "version": s.version}, "BOWLINE_INBOUND": "8080=8080"}
			if s.captured {
				md["INTERCEPTION_MODE"] = "REDIRECT"
			}
			mds, err := structpb.NewStruct(md)
			if err != nil {
				t.Fatal(err)
			}
			node := &core.Node{Id: fmt.Sprintf("sidecar~%s~client-%d.%s~%s.svc.cluster.local", ip, len(clients), s.ns, s.ns), Metadata: mds}
			p, err := ParseNode(node)
			if err != nil {
				t.Fatal(err)
			}
			c := &propClient{node: node, proxy: p, delta: delta, have: held{resourcev3.ClusterType: {}, resourcev3.ListenerType: {},
				resourcev3.EndpointType: {}, resourcev3.RouteType: {}}}
			clients = append(clients, c)
			wg.Add(1)
			go func() { defer wg.Done(); c.run(ctx, xa.String()) }()
		}
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	check := func(step string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for _, c := range clients {
			for {
				// The registry takes the config from the server's loop:
				// regenerate from what both hold now.
				snap := model.Build(store.Current().Objects, reg.View(), model.Options{})
				want := expected(xds.Generate(snap, c.proxy))
				got, err := c.snapshot()
				if err != nil {
					t.Fatalf("%s: client %s: %v", step, c.node.GetId(), err)
				}
				diff := diffHeld(want, got)
				if diff == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s (delta %v) holds other resources than a regeneration: %s", step, c.node.GetId(), c.delta, diff)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	check("initial sync")

	var hosts []string // edits applied, for the failure message
	for step := range steps {
		i := rnd.IntN(nSvc)
		var what string
		switch rnd.IntN(10) {
		case 0:
			w := 10 * rnd.IntN(11)
			pm.set(fmt.Sprintf("vs-%d", i), virtualService(i, w, rnd.IntN(2) == 0))
			if _, ok := pm.objects[fmt.Sprintf("dr-%d", i)]; !ok {
				pm.set(fmt.Sprintf("dr-%d", i), destinationRule(i, "ROUND_ROBIN", 2))
			}
			what = fmt.Sprintf("virtual service %d weight %d", i, w)
		case 1:
			lb := []string{"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"}[rnd.IntN(3)]
			n := 2 + rnd.IntN(2)
			pm.set(fmt.Sprintf("dr-%d", i), destinationRule(i, lb, n))
			what = fmt.Sprintf("destination rule %d %s %d subsets", i, lb, n)
		case 2:
			delete(pm.objects, fmt.Sprintf("vs-%d", i))
			what = fmt.Sprintf("virtual service %d removed", i)
		case 3:
			if _, ok := pm.objects[fmt.Sprintf("se-%d", i)]; ok && i > 0 {
				delete(pm.objects, fmt.Sprintf("se-%d", i))
				what = fmt.Sprintf("service %d removed", i)
			} else {
				pm.set(fmt.Sprintf("se-%d", i), serviceEntry(i))
				what = fmt.Sprintf("service %d added", i)
			}
		case 4:
			if _, ok := pm.objects["sidecar-other"]; ok {
				delete(pm.objects, "sidecar-other")
				what = "sidecar removed"
			} else {
				pm.set("sidecar-other", sidecarOther)
				what = "sidecar added"
			}
		case 5:
			if _, ok := pm.objects["pa-strict-v2"]; ok {
				delete(pm.objects, "pa-strict-v2")
				what = "peer authentication removed"
			} else {
				pm.set("pa-strict-v2", strictV2)
				what = "peer authentication added"
			}
		case 6:
			k := 2 + rnd.IntN(3)
			w := workload(i, k)
			w.Weight = uint32(1 + rnd.IntN(5))
			if err := reg.Register(w); err != nil {
				t.Fatal(err)
			}
			what = fmt.Sprintf("endpoint %s registered weight %d", w.ID, w.Weight)
		case 7:
			id := fmt.Sprintf("w-%d-%d", i, rnd.IntN(2))
			healthy := rnd.IntN(2) == 0
			if err := reg.SetHealth(id, healthy); err != nil {
				t.Fatal(err)
			}
			what = fmt.Sprintf("endpoint %s healthy %v", id, healthy)
		case 9:
			app := fmt.Sprintf("client-%d", rnd.IntN(len(clients)))
			pm.set("authz", fmt.Sprintf(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector: {matchLabels: {app: %s}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin"]}}]}]
`, app))
			what = "authorization policy selecting " + app
		case 8:
			id := fmt.Sprintf("w-%d-%d", i, 2+rnd.IntN(3))
			if err := reg.Deregister(id); err != nil {
				what = "endpoint " + id + " not registered"
				break
			}
			what = "endpoint " + id + " deregistered"
		}
		if !strings.HasPrefix(what, "endpoint") {
			store.Publish(pm.list(), nil, nil)
		}
		hosts = append(hosts, what)
		check(fmt.Sprintf("step %d (%s)", step, strings.Join(hosts, "; ")))
	}
	// The pushes above were change-driven where the change allowed it, as
	// /metrics says.
	if st := gen.cache.ChangeStats(); st.ScopesUpdated == 0 || st.InboundKept == 0 {
		t.Fatalf("change stats %+v: no scope or inbound part was carried over from the last mesh", st)
	}
	_, da, _ := srv.Addresses(ctx)
	resp, err := http.Get("http://" + da.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`bowline_xds_scope_generations_total{how="updated"} `, `bowline_xds_inbound_generations_total{how="kept"} `} {
		i := strings.Index(string(body), want)
		if i < 0 || strings.HasPrefix(string(body[i+len(want):]), "0\n") {
			t.Errorf("metrics: want %s above 0 in:\n%s", want, body)
		}
	}
}

// expected is what a client subscribing as propClient does holds of r.
func expected(r xds.Resources) held {
	out := held{}
	for typ, wire := range r.Wire {
		m := map[string][]byte{}
		for _, a := range wire {
			m[nameOf(typ, a.GetValue())] = a.GetValue()
		}
		out[typ] = m
	}
	return out
}

// diffHeld describes the first difference between want and got, "" when equal.
func diffHeld(want, got held) string {
	types := slices.Sorted(maps.Keys(want))
	for _, typ := range types {
		w, g := want[typ], got[typ]
		names := slices.Sorted(maps.Keys(w))
		for _, n := range names {
			b, ok := g[n]
			switch {
			case !ok:
				return fmt.Sprintf("%s %s missing", typ, n)
			case !bytes.Equal(b, w[n]):
				return fmt.Sprintf("%s %s differs", typ, n)
			}
		}
		var extra []string
		for n := range g {
			if _, ok := w[n]; !ok {
				extra = append(extra, n)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			return fmt.Sprintf("%s %v not expected", typ, extra)
		}
	}
	return ""
}
