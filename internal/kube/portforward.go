package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// Forward is a port-forward to one pod, like `kubectl port-forward`:
// connections to Addr (on 127.0.0.1) reach the pod's port inside the pod's
// network namespace, so ports a container binds to its loopback (discovery's
// debug port, a proxy's admin port) are reachable too.
type Forward struct {
	// Addr is the local HOST:PORT forwarding to the pod.
	Addr string
	stop chan struct{}
	done chan error
}

// Close stops forwarding and waits until the forwarder has ended.
func (f *Forward) Close() error {
	close(f.stop)
	err := <-f.done
	if errors.Is(err, portforward.ErrLostConnectionToPod) {
		return nil
	}
	return err
}

// PortForward forwards a free port of 127.0.0.1 to port of pod ns/name
// through the API server until Close or ctx ends.
func PortForward(ctx context.Context, cfg *rest.Config, ns, name string, port int) (*Forward, error) {
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward pod %s/%s: %w", ns, name, err)
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward pod %s/%s: %w", ns, name, err)
	}
	u := kc.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(name).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	f := &Forward{stop: make(chan struct{}), done: make(chan error, 1)}
	ready := make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(port)}, f.stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("port-forward pod %s/%s: %w", ns, name, err)
	}
	go func() { f.done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-f.done:
		if err == nil {
			err = errors.New("ended before forwarding")
		}
		return nil, fmt.Errorf("port-forward pod %s/%s port %d: %w", ns, name, port, err)
	case <-ctx.Done():
		close(f.stop)
		<-f.done
		return nil, fmt.Errorf("port-forward pod %s/%s port %d: %w", ns, name, port, ctx.Err())
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		_ = f.Close()
		return nil, fmt.Errorf("port-forward pod %s/%s port %d: no local port: %v", ns, name, port, err)
	}
	f.Addr = "127.0.0.1:" + strconv.Itoa(int(ports[0].Local))
	return f, nil
}

// ReadyPod returns the name of a running, ready pod of ns matching the
// label selector, preferring the newest; the error says what was found
// instead.
func ReadyPod(ctx context.Context, kc kubernetes.Interface, ns, selector string) (string, error) {
	pods, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return "", fmt.Errorf("list pods %s in %s: %w", selector, ns, err)
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
	if best == nil {
		return "", fmt.Errorf("no ready pod %s in namespace %s (%d pods match)", selector, ns, len(pods.Items))
	}
	return best.Name, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
