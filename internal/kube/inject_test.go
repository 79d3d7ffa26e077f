package kube_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/bowline-mesh/bowline/internal/config/validation"
	"github.com/bowline-mesh/bowline/internal/kube"
	"github.com/bowline-mesh/bowline/internal/kube/inject"
	"github.com/bowline-mesh/bowline/internal/kube/manifest"
)

// installedInjector is the MutatingWebhookConfiguration `bowline install`
// applies, with its selectors unchanged, pointed at url instead of the
// discovery Service and renamed for the test. Its caBundle is empty:
// discovery's publisher sets it.
func installedInjector(t *testing.T, name, url string) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	objs, err := manifest.Objects(manifest.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() != "MutatingWebhookConfiguration" {
			continue
		}
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &mwc); err != nil {
			t.Fatal(err)
		}
		mwc.Name = name
		for i := range mwc.Webhooks {
			w := &mwc.Webhooks[i]
			if w.ClientConfig.Service == nil || w.ClientConfig.Service.Path == nil || *w.ClientConfig.Service.Path != kube.InjectPath {
				t.Fatalf("webhook %s: clientConfig %+v, want the istiod Service at %s", w.Name, w.ClientConfig, kube.InjectPath)
			}
			w.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
		}
		return &mwc
	}
	t.Fatal("the manifest has no MutatingWebhookConfiguration")
	return nil
}

// TestInjectionWebhookThroughAPIServer has a real API server call
// discovery's injector over loopback through the installed
// MutatingWebhookConfiguration, whose caBundle the leader's publisher sets:
// a pod created in a namespace labelled istio-injection=enabled is stored
// with the native sidecar, the bowline iptables init container, the
// projected istio-ca token and the root cert ConfigMap; pods the selectors
// leave out are stored as they were sent, and a bad annotation is refused
// with the injector's reason.
func TestInjectionWebhookThroughAPIServer(t *testing.T) {
	_, kc, _ := cluster(t)
	cert, caPEM := selfSigned(t)
	injector := &inject.Webhook{Config: inject.Defaults("docker.io/bowline-mesh/bowline:test")}
	srv := kube.NewWebhookServer("127.0.0.1:0", func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil },
		kube.WebhookMux(kube.NewValidationHandler(validation.Objects, nil), injector, nil), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- srv.Run(runCtx) }()
	addr := srv.Addr(ctx)

	const mwcName = "bowline-injector-test"
	mwcs := kc.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := mwcs.Create(ctx, installedInjector(t, mwcName, "https://"+addr.String()+kube.InjectPath), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mwcs.Delete(context.Background(), mwcName, metav1.DeleteOptions{}) })
	pub := kube.NewPublisher(kc, func() []byte { return caPEM }, kube.WebhookConfigs{Mutating: []string{mwcName}}, nil)
	go func() { done <- pub.Run(runCtx) }()
	defer func() {
		stop()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("webhook server or publisher: %v", err)
			}
		}
	}()

	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "inj", Labels: map[string]string{"istio-injection": "enabled"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
	} {
		if _, err := kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = kc.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	}

	// The publisher sets the caBundle and the API server picks the
	// configuration up asynchronously: poll until a pod comes back injected.
	var pod *corev1.Pod
	n := 0
	eventually(t, func() string {
		n++
		p, err := createPod(ctx, kc, "inj", "details-"+strconv.Itoa(n), nil, nil)
		if err != nil {
			return "create pod: " + err.Error()
		}
		if len(p.Spec.InitContainers) == 0 {
			return "pod stored without injection"
		}
		pod = p
		return ""
	})

	if got := containerNames(pod.Spec.InitContainers); got != "istio-init,istio-proxy" {
		t.Fatalf("init containers %s, want istio-init,istio-proxy", got)
	}
	initC, proxy := pod.Spec.InitContainers[0], pod.Spec.InitContainers[1]
	if len(initC.Args) == 0 || initC.Args[0] != "iptables" || initC.Image != "docker.io/bowline-mesh/bowline:test" {
		t.Errorf("istio-init runs %s %v, want bowline iptables", initC.Image, initC.Args)
	}
	if caps := initC.SecurityContext.Capabilities; caps == nil || !strings.Contains(fmtCaps(caps.Add), "NET_ADMIN") {
		t.Errorf("istio-init capabilities %+v, want NET_ADMIN", caps)
	}
	if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("istio-proxy restartPolicy %v, want Always (a native sidecar)", proxy.RestartPolicy)
	}
	if len(proxy.Args) == 0 || proxy.Args[0] != "proxy" || !slices.Contains(proxy.Args, "--ca-token-file="+inject.TokenPath) ||
		!slices.Contains(proxy.Args, "--discovery=istiod.istio-system.svc:15012") {
		t.Errorf("istio-proxy args %v, want bowline proxy with the token file and istiod's address", proxy.Args)
	}
	if got := containerNames(pod.Spec.Containers); got != "details" {
		t.Errorf("containers %s, want the app alone (the sidecar is an init container)", got)
	}
	var token, root bool
	for _, v := range pod.Spec.Volumes {
		if p := v.Projected; p != nil {
			for _, s := range p.Sources {
				if sat := s.ServiceAccountToken; sat != nil && sat.Audience == "istio-ca" && sat.Path == "istio-token" {
					token = true
				}
			}
		}
		if cm := v.ConfigMap; cm != nil && cm.Name == "istio-ca-root-cert" {
			root = true
		}
	}
	if !token || !root {
		t.Errorf("volumes %+v: projected istio-ca token %v, istio-ca-root-cert ConfigMap %v; want both", pod.Spec.Volumes, token, root)
	}
	if pod.Labels["security.istio.io/tlsMode"] != "istio" || pod.Labels["service.istio.io/canonical-name"] != "details" {
		t.Errorf("labels %v, want tlsMode istio and canonical-name details", pod.Labels)
	}
	var st inject.Status
	if err := json.Unmarshal([]byte(pod.Annotations["sidecar.istio.io/status"]), &st); err != nil || st.Revision != "default" {
		t.Errorf("sidecar.istio.io/status %q (%v), want revision default", pod.Annotations["sidecar.istio.io/status"], err)
	}

	tests := []struct {
		name, ns string
		labels   map[string]string
		injected bool
	}{
		{"namespace without a label", "plain", nil, false},
		{"pod opts out", "inj", map[string]string{"sidecar.istio.io/inject": "false"}, false},
		{"pod opts in", "plain", map[string]string{"sidecar.istio.io/inject": "true"}, true},
		{"pod of the default revision", "plain", map[string]string{"istio.io/rev": "default"}, true},
		{"pod of another revision", "plain", map[string]string{"istio.io/rev": "canary"}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := createPod(ctx, kc, tt.ns, "case-"+strconv.Itoa(i), tt.labels, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(p.Spec.InitContainers) > 0; got != tt.injected {
				t.Errorf("injected %v, want %v (init containers %s)", got, tt.injected, containerNames(p.Spec.InitContainers))
			}
		})
	}
	t.Run("bad annotation", func(t *testing.T) {
		_, err := createPod(ctx, kc, "inj", "bad", nil, map[string]string{"sidecar.istio.io/proxyCPU": "lots"})
		want := `admission webhook "namespace.sidecar-injector.istio.io" denied the request: pod inj/bad: annotation sidecar.istio.io/proxyCPU: value "lots": not a resource quantity (like 100m or 128Mi)`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("create: %v, want it to contain %q", err, want)
		}
	})
}

func createPod(ctx context.Context, kc kubernetes.Interface, ns, name string, labels, annotations map[string]string) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "details", "version": "v1"}, Annotations: annotations},
		// The API server's ServiceAccount admission (off in kubetest) would set it.
		Spec: corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{Name: "details", Image: "details:v1",
			Ports: []corev1.ContainerPort{{ContainerPort: 9080}}}}},
	}
	for k, v := range labels {
		pod.Labels[k] = v
	}
	return kc.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
}

func containerNames(cs []corev1.Container) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return strings.Join(out, ",")
}

func fmtCaps(cs []corev1.Capability) string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c))
	}
	return strings.Join(out, ",")
}
