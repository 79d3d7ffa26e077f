package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// managedLabel marks the Services Bowline's discovery creates for Gateways.
const managedLabel = "gateway.istio.io/managed=istio.io-gateway-controller"

// loopbackLB is the test cluster's load balancer for the gateways'
// Services: it gives each LoadBalancer Service Bowline created for a
// Gateway an address of its own on loopback (127.0.N.M; all of 127/8 is
// loopback on Linux), written to the Service's status with ipMode Proxy
// (so kube-proxy programs nothing for it), and forwards every connection
// to that address through a port-forward to a ready pod of the Service,
// via the API server as `kubectl port-forward` does. The suite therefore
// sends all its traffic to loopback; no packet goes to a pod or Service
// address of the cluster.
type loopbackLB struct {
	t    testing.TB
	kc   kubernetes.Interface
	cfg  *rest.Config
	poll time.Duration

	mu   sync.Mutex
	svcs map[string]*lbService // namespace/name
	next int
}

// lbService is one Service's address, listeners and current forward.
type lbService struct {
	ns, name  string
	ip        string
	listeners map[int32]net.Listener // service port -> listener on ip
	targets   map[int32]int32        // service port -> container port
	fwd       *podForward
}

// podForward is a port-forward to one pod: container port -> local port.
type podForward struct {
	pod   string
	local map[int32]int
	stop  chan struct{}
	done  chan struct{}
}

func newLoopbackLB(t testing.TB, kc kubernetes.Interface, cfg *rest.Config) *loopbackLB {
	return &loopbackLB{t: t, kc: kc, cfg: cfg, poll: 500 * time.Millisecond, svcs: map[string]*lbService{}}
}

// run reconciles until ctx ends, then closes every listener and forward.
func (lb *loopbackLB) run(ctx context.Context) {
	defer lb.closeAll()
	for {
		lb.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(lb.poll):
		}
	}
}

func (lb *loopbackLB) closeAll() {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for k, s := range lb.svcs {
		s.close()
		delete(lb.svcs, k)
	}
}

func (s *lbService) close() {
	for _, l := range s.listeners {
		_ = l.Close()
	}
	if s.fwd != nil {
		s.fwd.close()
	}
}

func (f *podForward) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

func (f *podForward) ended() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func (lb *loopbackLB) reconcile(ctx context.Context) {
	list, err := lb.kc.CoreV1().Services("").List(ctx, metav1.ListOptions{LabelSelector: managedLabel})
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for i := range list.Items {
		svc := &list.Items[i]
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.DeletionTimestamp != nil {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		seen[key] = true
		lb.mu.Lock()
		s := lb.svcs[key]
		if s == nil {
			lb.next++
			s = &lbService{ns: svc.Namespace, name: svc.Name, ip: fmt.Sprintf("127.0.%d.%d", 10+lb.next/250, 1+lb.next%250),
				listeners: map[int32]net.Listener{}, targets: map[int32]int32{}}
			lb.svcs[key] = s
		}
		lb.mu.Unlock()
		lb.ensureStatus(ctx, svc, s.ip)
		lb.ensureListeners(svc, s)
		lb.ensureForward(ctx, svc, s)
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	for k, s := range lb.svcs {
		if !seen[k] {
			s.close()
			delete(lb.svcs, k)
		}
	}
}

// ensureStatus writes ip (ipMode Proxy) as the Service's load balancer ingress.
func (lb *loopbackLB) ensureStatus(ctx context.Context, svc *corev1.Service, ip string) {
	proxy := corev1.LoadBalancerIPModeProxy
	want := []corev1.LoadBalancerIngress{{IP: ip, IPMode: &proxy}}
	in := svc.Status.LoadBalancer.Ingress
	if len(in) == 1 && in[0].IP == ip && in[0].IPMode != nil && *in[0].IPMode == proxy {
		return
	}
	svc = svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = want
	if _, err := lb.kc.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		lb.t.Logf("loopback lb: status of Service %s/%s: %v", svc.Namespace, svc.Name, err)
	}
}

// ensureListeners listens on ip:port for every port of the Service.
func (lb *loopbackLB) ensureListeners(svc *corev1.Service, s *lbService) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	want := map[int32]bool{}
	for _, p := range svc.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		want[p.Port] = true
		target := p.Port
		if p.TargetPort.IntValue() > 0 {
			target = int32(p.TargetPort.IntValue())
		}
		s.targets[p.Port] = target
		if s.listeners[p.Port] != nil {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(s.ip, strconv.Itoa(int(p.Port))))
		if err != nil {
			lb.t.Logf("loopback lb: listen for Service %s/%s: %v", s.ns, s.name, err)
			continue
		}
		s.listeners[p.Port] = l
		go lb.serve(l, s, p.Port)
	}
	for port, l := range s.listeners {
		if !want[port] {
			_ = l.Close()
			delete(s.listeners, port)
		}
	}
}

// serve accepts connections for one Service port and pipes each to the
// current forward of its container port.
func (lb *loopbackLB) serve(l net.Listener, s *lbService, port int32) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		lb.mu.Lock()
		local := 0
		if s.fwd != nil && !s.fwd.ended() {
			local = s.fwd.local[s.targets[port]]
		}
		lb.mu.Unlock()
		if local == 0 {
			_ = c.Close() // no ready pod yet: the client retries
			continue
		}
		go pipe(c, net.JoinHostPort("127.0.0.1", strconv.Itoa(local)))
	}
}

func pipe(c net.Conn, to string) {
	defer c.Close()
	u, err := net.DialTimeout("tcp", to, 10*time.Second)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); closeWrite(u); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// ensureForward keeps a port-forward to the newest ready pod of the Service.
func (lb *loopbackLB) ensureForward(ctx context.Context, svc *corev1.Service, s *lbService) {
	pods, err := lb.kc.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Spec.Selector).String()})
	if err != nil {
		return
	}
	var best *corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || !podReady(p) {
			continue
		}
		if best == nil || p.CreationTimestamp.After(best.CreationTimestamp.Time) {
			best = p
		}
	}
	lb.mu.Lock()
	cur := s.fwd
	var ports []int32
	for _, t := range s.targets {
		if !slices.Contains(ports, t) {
			ports = append(ports, t)
		}
	}
	lb.mu.Unlock()
	if best == nil {
		return
	}
	if cur != nil && !cur.ended() && cur.pod == best.Name && len(cur.local) == len(ports) {
		return
	}
	fwd, err := lb.forward(svc.Namespace, best.Name, ports)
	if err != nil {
		lb.t.Logf("loopback lb: port-forward to pod %s/%s: %v", svc.Namespace, best.Name, err)
		return
	}
	lb.mu.Lock()
	old := s.fwd
	s.fwd = fwd
	lb.mu.Unlock()
	if old != nil {
		go old.close() // connections in flight on it finish or fail
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// forward starts a port-forward from free ports of 127.0.0.1 to ports of pod ns/name.
func (lb *loopbackLB) forward(ns, name string, ports []int32) (*podForward, error) {
	transport, upgrader, err := spdy.RoundTripperFor(lb.cfg)
	if err != nil {
		return nil, err
	}
	u := lb.kc.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(name).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	var specs []string
	for _, p := range ports {
		specs = append(specs, "0:"+strconv.Itoa(int(p)))
	}
	f := &podForward{pod: name, local: map[int32]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, specs, f.stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() {
		defer close(f.done)
		errc <- pf.ForwardPorts()
	}()
	select {
	case <-ready:
	case err := <-errc:
		if err == nil {
			err = errors.New("port-forward ended before it was ready")
		}
		return nil, err
	case <-time.After(30 * time.Second):
		close(f.stop)
		<-f.done
		return nil, errors.New("port-forward not ready after 30s")
	}
	got, err := pf.GetPorts()
	if err != nil {
		close(f.stop)
		<-f.done
		return nil, err
	}
	for _, p := range got {
		f.local[int32(p.Remote)] = int(p.Local)
	}
	return f, nil
}
