package kube_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/kube"
	"github.com/bowline-mesh/bowline/internal/registry"
)

// statusDeadline bounds the polls of the status tests: generous, for loaded CI machines.
const statusDeadline = 2 * time.Minute

// fakeDistribution is what the xDS server would say its proxies have.
type fakeDistribution struct {
	mu      sync.Mutex
	proxies map[string]uint64
}

func (f *fakeDistribution) set(p map[string]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proxies = p
}

func (f *fakeDistribution) get() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.proxies
}

// TestStatusWriter runs the controller and the status writer against a
// real API server and reads the VirtualService's status as kubectl shows it:
// observedGeneration, the Reconciled condition counting the proxies that
// have the object's current generation, other conditions kept, and the
// analysis messages when analysis is on.
func TestStatusWriter(t *testing.T) {
	c, kc, ic := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const ns = "status"
	if err := apply(t, c, `
apiVersion: v1
kind: Namespace
metadata: {name: status, labels: {mesh: "on"}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: status}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
`); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	vsAPI := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).Namespace(ns)

	// A condition another controller wrote stays.
	vs, err := vsAPI.Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vs.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "PassedValidation", "status": "True", "message": "other writer"}}}
	if _, err := vsAPI.UpdateStatus(ctx, vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	store := config.NewStore()
	ctl, err := kube.NewController(kube.ControllerConfig{Kube: kc, Istio: ic, Store: store, Registry: registry.New(nil), Validate: validation.Objects})
	if err != nil {
		t.Fatal(err)
	}
	// Two discovery replicas report what their proxies have; the leader's
	// writer sums them. Reports live in namespace status-reports.
	const reportsNS = "status-reports"
	if err := apply(t, c, "apiVersion: v1\nkind: Namespace\nmetadata: {name: status-reports}\n"); err != nil {
		t.Fatal(err)
	}
	dist := &fakeDistribution{proxies: map[string]uint64{"gw.istio-system": 0, "reviews-1.status": 0}}
	dist2 := &fakeDistribution{proxies: map[string]uint64{}}
	var analyzeMu sync.Mutex
	analyzed := map[config.Key][]kube.ValidationMessage{}
	w := kube.NewStatusWriter(kube.StatusConfig{Client: dyn, Kube: kc, Namespace: reportsNS, Store: store, Interval: 20 * time.Millisecond,
		Analyze: func(*config.Snapshot) map[config.Key][]kube.ValidationMessage {
			analyzeMu.Lock()
			defer analyzeMu.Unlock()
			return analyzed
		}})
	repA := kube.NewReporter(kube.ReporterConfig{Kube: kc, Namespace: reportsNS, Pod: "istiod-a", Store: store, Distribution: dist.get, Interval: 20 * time.Millisecond})
	// Replica b reads the cluster into a store of its own, as each replica does.
	storeB := config.NewStore()
	ctlB, err := kube.NewController(kube.ControllerConfig{Kube: kc, Istio: ic, Store: storeB, Registry: registry.New(nil), Validate: validation.Objects})
	if err != nil {
		t.Fatal(err)
	}
	repB := kube.NewReporter(kube.ReporterConfig{Kube: kc, Namespace: reportsNS, Pod: "istiod-b", Store: storeB, Distribution: dist2.get, Interval: 20 * time.Millisecond})
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	ctxB, stopB := context.WithCancel(runCtx)
	doneB := make(chan error, 1)
	go func() { doneB <- repB.Run(ctxB) }()
	defer func() { stopB(); <-doneB }()
	for _, run := range []func(context.Context) error{ctl.Run, ctlB.Run, w.Run, repA.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- run(runCtx) }()
	}
	defer func() {
		stop()
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("run: %v", err)
			}
		}
	}()
	<-ctl.Synced()
	<-ctlB.Synced()

	// status reads the VirtualService's status: observedGeneration, the
	// Reconciled condition and the other conditions, and the validation
	// message codes.
	status := func() (gen int64, reconciled, message, other string, codes []string) {
		obj, err := vsAPI.Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		gen, _, _ = unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
		conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		for _, c := range conds {
			m := c.(map[string]any)
			switch m["type"] {
			case kube.ConditionReconciled:
				reconciled, message = fmt.Sprint(m["status"]), fmt.Sprint(m["message"])
			default:
				other = fmt.Sprintf("%s=%s", m["type"], m["status"])
			}
		}
		msgs, _, _ := unstructured.NestedSlice(obj.Object, "status", "validationMessages")
		for _, m := range msgs {
			mm := m.(map[string]any)
			code, _, _ := unstructured.NestedString(mm, "type", "code")
			codes = append(codes, fmt.Sprintf("%s %s %s", code, mm["level"], mm["documentationUrl"]))
		}
		return
	}
	expect := func(what string, wantGen int64, wantReconciled, wantMessage string, wantCodes ...string) {
		t.Helper()
		deadline := time.Now().Add(statusDeadline)
		for {
			gen, rec, msg, other, codes := status()
			ok := gen == wantGen && rec == wantReconciled && msg == wantMessage && other == "PassedValidation=True" && fmt.Sprint(codes) == fmt.Sprint(wantCodes)
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status observedGeneration %d, Reconciled %s %q, other %q, validationMessages %v; want %d, %s %q, PassedValidation=True, %v",
					what, gen, rec, msg, other, codes, wantGen, wantReconciled, wantMessage, wantCodes)
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	}
	storeVersion := func(store *config.Store, gen int64) uint64 {
		t.Helper()
		deadline := time.Now().Add(statusDeadline)
		for {
			snap := store.Current()
			for _, o := range snap.Objects {
				if o.Meta.Namespace == ns && o.Meta.Name == "reviews" && o.Meta.Generation == gen {
					return snap.Version
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("generation %d of the VirtualService not in the store", gen)
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	}

	v1 := storeVersion(store, 1)
	expect("no proxy has it", 1, "False", "0/2 proxies up to date.")
	dist.set(map[string]uint64{"gw.istio-system": v1, "reviews-1.status": 0})
	expect("one proxy has it", 1, "False", "1/2 proxies up to date.")
	dist.set(map[string]uint64{"gw.istio-system": v1, "reviews-1.status": v1 + 5})
	expect("both have it", 1, "True", "2/2 proxies up to date.")

	// A new generation: not reconciled until the proxies have the version it came in.
	if err := apply(t, c, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: status}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}], timeout: 3s}]
`); err != nil {
		t.Fatal(err)
	}
	v2 := storeVersion(store, 2)
	// (Status writes change the object's resourceVersion and so the store
	// version: v1, from generation 1, is surely older than generation 2.)
	dist.set(map[string]uint64{"gw.istio-system": v1, "reviews-1.status": v2})
	expect("generation 2, one proxy has it", 2, "False", "1/2 proxies up to date.")
	dist.set(map[string]uint64{"gw.istio-system": v2, "reviews-1.status": v2})
	expect("generation 2, both have it", 2, "True", "2/2 proxies up to date.")

	// Replica b gets two proxies, one of which has generation 2 (by b's
	// own store's versions): the count is every replica's.
	vb := storeVersion(storeB, 2)
	dist2.set(map[string]uint64{"details-1.status": vb, "ratings-1.status": 0})
	expect("two replicas, 3 of 4 proxies have it", 2, "False", "3/4 proxies up to date.")
	dist2.set(map[string]uint64{"details-1.status": vb, "ratings-1.status": vb})
	expect("two replicas, all have it", 2, "True", "4/4 proxies up to date.")
	// Replica b stops: its report is deleted, the count is a's proxies again.
	reports := func() string {
		cms, err := kc.CoreV1().ConfigMaps(reportsNS).List(ctx, metav1.ListOptions{LabelSelector: kube.DistributionReportLabel + "=true"})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, cm := range cms.Items {
			names = append(names, cm.Name)
		}
		return fmt.Sprint(names)
	}
	if got := reports(); got != "[istiod-a-distribution istiod-b-distribution]" {
		t.Errorf("report ConfigMaps %s, want one per replica", got)
	}
	stopB()
	if err := <-doneB; err != nil {
		t.Errorf("reporter b: %v", err)
	}
	doneB <- nil // for the deferred receive
	if got := reports(); got != "[istiod-a-distribution]" {
		t.Errorf("report ConfigMaps after replica b stopped: %s, want only a's", got)
	}
	expect("replica b gone", 2, "True", "2/2 proxies up to date.")

	// Analysis messages are written, and cleared when they go.
	analyzeMu.Lock()
	analyzed = map[config.Key][]kube.ValidationMessage{
		{Group: "networking.istio.io", Kind: "VirtualService", Namespace: ns, Name: "reviews"}: {
			{Code: "IST0101", Level: "ERROR", DocumentationURL: "https://istio.io/latest/docs/reference/config/analysis/ist0101/"}},
	}
	analyzeMu.Unlock()
	expect("an analysis message", 2, "True", "2/2 proxies up to date.", "IST0101 ERROR https://istio.io/latest/docs/reference/config/analysis/ist0101/")
	analyzeMu.Lock()
	analyzed = nil
	analyzeMu.Unlock()
	expect("the message gone", 2, "True", "2/2 proxies up to date.")
}
