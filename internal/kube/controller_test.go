package kube_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/kube"
	"github.com/bowline-mesh/bowline/internal/kube/kubetest"
	"github.com/bowline-mesh/bowline/internal/kube/manifest"
	"github.com/bowline-mesh/bowline/internal/registry"
)

func TestMain(m *testing.M) {
	code := kubetest.Main(m)
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var crdsOnce sync.Once

// cluster returns the shared API server with Istio's CRDs installed.
func cluster(t *testing.T) (*kubetest.Cluster, kubernetes.Interface, istioclient.Interface) {
	t.Helper()
	c := kubetest.Shared(t)
	var err error
	crdsOnce.Do(func() {
		var a *kube.Applier
		a, err = kube.NewApplier(c.Config)
		if err != nil {
			return
		}
		objs, derr := manifest.Decode(manifest.CRDs())
		if derr != nil {
			err = derr
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err = a.Apply(ctx, objs)
	})
	if err != nil {
		t.Fatalf("install CRDs: %v", err)
	}
	ic, err := istioclient.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c, c.Clientset(t), ic
}

// apply creates Istio or Kubernetes objects from YAML with the cluster's
// dynamic client, as kubectl apply would.
func apply(t *testing.T, c *kubetest.Cluster, yaml string) error {
	t.Helper()
	objs, err := manifest.Decode([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	a, err := kube.NewApplier(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return a.Apply(ctx, objs)
}

// eventually polls cond until it returns "" or 20 s pass, then fails with its last answer.
func eventually(t *testing.T, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for the result
	}
}

func ptr[T any](v T) *T { return &v }

func findService(v *registry.View, host string) *registry.Service {
	for _, s := range v.Services() {
		if s.Hostname == host {
			return s
		}
	}
	return nil
}

func endpointList(s *registry.Service) string {
	var parts []string
	for _, e := range s.Endpoints {
		parts = append(parts, fmt.Sprintf("%s healthy=%v sa=%s loc=%s sidecar=%v app=%s", e.Address, e.Healthy, e.ServiceAccount, e.Locality, e.Sidecar, e.Labels["app"]))
	}
	return strings.Join(parts, "; ")
}

func TestControllerFeedsRegistryAndStore(t *testing.T) {
	c, kc, ic := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ns = "ctl"
	if err := apply(t, c, `
apiVersion: v1
kind: Namespace
metadata: {name: ctl, labels: {mesh: "on"}}
---
apiVersion: v1
kind: Namespace
metadata: {name: ctl-hidden}
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    discoverySelectors:
    - matchLabels: {mesh: "on"}
---
apiVersion: v1
kind: Node
metadata:
  name: node-a
  labels: {topology.kubernetes.io/region: eu, topology.kubernetes.io/zone: eu-1, topology.istio.io/subzone: rack-7}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: ctl}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
  - {name: web, port: 9081, appProtocol: kubernetes.io/h2c}
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: ctl}
spec:
  clusterIP: None
  ports: [{name: tcp-pg, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: secret, namespace: ctl-hidden}
spec:
  ports: [{name: http, port: 80}]
`); err != nil {
		t.Fatal(err)
	}
	pod := func(name, ip string, ready bool) {
		t.Helper()
		p, err := kc.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "reviews", "version": "v1", registry.LabelTLSMode: registry.TLSModeIstio}},
			Spec: corev1.PodSpec{NodeName: "node-a", ServiceAccountName: "bookinfo-reviews",
				Containers: []corev1.Container{{Name: "app", Image: "reviews"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}
		if _, err := kc.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod("reviews-1", "10.1.0.5", true)
	pod("reviews-2", "10.1.0.6", false)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "reviews-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(9080))}, {Name: ptr("web"), Port: ptr(int32(9081))}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.5"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-1", Namespace: ns}},
			{Addresses: []string{"10.1.0.6"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-2", Namespace: ns}},
			{Addresses: []string{"10.1.0.7"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)}},
		},
	}
	slice, err := kc.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(t, c, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: ctl}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}], timeout: 5s}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: ctl}
spec:
  hosts: [broken]
  http: [{route: [{destination: {host: reviews}}], redirect: {uri: /elsewhere}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hidden, namespace: ctl-hidden}
spec:
  hosts: [secret]
  http: [{route: [{destination: {host: secret}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-pods, namespace: ctl}
spec:
  hosts: [reviews.mesh.internal]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 9080}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: ctl}
spec:
  hosts: [vm.mesh.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: ctl}
spec: {address: 10.2.0.1, labels: {app: vm}, serviceAccount: vm-sa}
`); err != nil {
		t.Fatal(err)
	}

	store := config.NewStore()
	reg := registry.New(nil)
	ctl, err := kube.NewController(kube.ControllerConfig{Kube: kc, Istio: ic, Store: store, Registry: reg, Validate: validation.Objects})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ctl.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	}()
	<-ctl.Synced()
	sync := func() { reg.SetConfig(store.Current().Objects) } // what the server's loop does

	t.Run("services", func(t *testing.T) {
		eventually(t, func() string {
			sync()
			v := reg.View()
			s := findService(v, "reviews.ctl.svc.cluster.local")
			if s == nil {
				return "no reviews service yet"
			}
			want := "10.1.0.5 healthy=true sa=bookinfo-reviews loc=eu/eu-1/rack-7 sidecar=true app=reviews; " +
				"10.1.0.6 healthy=false sa=bookinfo-reviews loc=eu/eu-1/rack-7 sidecar=true app=reviews; " +
				"10.1.0.7 healthy=false sa= loc= sidecar=false app="
			if got := endpointList(s); got != want {
				return "reviews endpoints:\n got " + got + "\nwant " + want
			}
			var ports []string
			for _, p := range s.Ports {
				ports = append(ports, fmt.Sprintf("%s/%d/%s", p.Name, p.Number, p.Protocol))
			}
			if got, want := strings.Join(ports, ","), "dns/53/UDP,http/9080/HTTP,web/9081/HTTP2"; got != want {
				return "ports " + got + ", want " + want
			}
			if len(s.Addresses) != 1 || !strings.HasPrefix(s.Addresses[0], "10.96.") {
				return fmt.Sprintf("addresses %v, want the cluster IP", s.Addresses)
			}
			if s.Endpoints[0].PortFor(s.Ports[1]) != 9080 {
				return "endpoint port for http is not 9080"
			}
			db := findService(v, "db.ctl.svc.cluster.local")
			if db == nil || db.Resolution != registry.ResolutionNone || len(db.Addresses) != 0 {
				return fmt.Sprintf("headless db service: %+v", db)
			}
			if findService(v, "secret.ctl-hidden.svc.cluster.local") != nil {
				return "service of a namespace outside discoverySelectors is visible"
			}
			se := findService(v, "reviews.mesh.internal")
			if se == nil || len(se.Endpoints) != 2 {
				return fmt.Sprintf("ServiceEntry selecting pods: %+v", se)
			}
			if got := endpointList(se); !strings.HasPrefix(got, "10.1.0.5 healthy=true sa=bookinfo-reviews loc=eu/eu-1/rack-7 sidecar=true") {
				return "ServiceEntry pod endpoints: " + got
			}
			vm := findService(v, "vm.mesh.internal")
			if vm == nil || endpointList(vm) != "10.2.0.1 healthy=true sa=vm-sa loc= sidecar=false app=vm" {
				return fmt.Sprintf("ServiceEntry selecting a WorkloadEntry: %+v", vm)
			}
			return ""
		})
	})

	t.Run("istio config goes through validation", func(t *testing.T) {
		eventually(t, func() string {
			snap := store.Current()
			var keys []string
			for _, o := range snap.Objects {
				keys = append(keys, o.Ref())
			}
			// the namespaces come with their labels (Gateway API allowedRoutes selectors)
			want := "Namespace ctl,Namespace istio-system,ServiceEntry ctl/reviews-pods,ServiceEntry ctl/vms,VirtualService ctl/reviews,WorkloadEntry ctl/vm-1"
			if got := strings.Join(keys, ","); got != want {
				return "objects " + got + ", want " + want
			}
			if got, want := snap.Problems.Error(), "VirtualService ctl/broken: spec.http[0].redirect: route and redirect cannot both be set"; got != want {
				return "problems:\n got " + got + "\nwant " + want
			}
			return ""
		})
	})

	t.Run("scale to three ready endpoints", func(t *testing.T) {
		slice.Endpoints = []discoveryv1.Endpoint{
			{Addresses: []string{"10.1.0.5"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
			{Addresses: []string{"10.1.0.8"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
			{Addresses: []string{"10.1.0.9"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(true)}},
		}
		if _, err := kc.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, func() string {
			s := findService(reg.View(), "reviews.ctl.svc.cluster.local")
			var ready []string
			for _, e := range s.Endpoints {
				if e.Healthy {
					ready = append(ready, e.Address)
				}
			}
			if got := strings.Join(ready, ","); got != "10.1.0.5,10.1.0.8,10.1.0.9" {
				return "ready endpoints " + got
			}
			return ""
		})
	})

	t.Run("service port change", func(t *testing.T) {
		svc, err := kc.CoreV1().Services(ns).Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc.Spec.Ports = []corev1.ServicePort{{Name: "grpc-api", Port: 7070, TargetPort: intstr.FromInt32(7070)}}
		if _, err := kc.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, func() string {
			s := findService(reg.View(), "reviews.ctl.svc.cluster.local")
			if len(s.Ports) != 1 || s.Ports[0].Protocol != "GRPC" || s.Ports[0].Number != 7070 {
				return fmt.Sprintf("ports %+v, want grpc-api 7070 GRPC", s.Ports)
			}
			return ""
		})
	})
}
