package kube

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/bowline-mesh/bowline/internal/config"
)

func TestRenderGateway(t *testing.T) {
	g := &GatewayDeployer{cfg: GatewayDeployerConfig{Image: "hub/bowline:v1", Discovery: "istiod.istio-system.svc:15012",
		TrustDomain: "cluster.local", ServiceType: corev1.ServiceTypeLoadBalancer}}
	d := g.renderGateway(gatewayTarget{namespace: "apps", name: "web", class: "istio", uid: "u-1", listeners: []gwv1.Listener{
		{Name: "https", Port: 443, Protocol: gwv1.HTTPSProtocolType},
		{Name: "http", Port: 80, Protocol: gwv1.HTTPProtocolType},
		{Name: "http-b", Port: 80, Protocol: gwv1.HTTPProtocolType, Hostname: ptr(gwv1.Hostname("b.example.com"))},
	}})
	for _, m := range []metav1.ObjectMeta{d.sa.ObjectMeta, d.deploy.ObjectMeta, d.service.ObjectMeta} {
		if m.Name != "web-istio" || m.Namespace != "apps" || m.Labels["gateway.networking.k8s.io/gateway-name"] != "web" {
			t.Errorf("object %s/%s labels %v, want apps/web-istio labelled with the Gateway's name", m.Namespace, m.Name, m.Labels)
		}
		if len(m.OwnerReferences) != 1 || m.OwnerReferences[0].Kind != "Gateway" || m.OwnerReferences[0].Name != "web" ||
			m.OwnerReferences[0].UID != "u-1" || m.OwnerReferences[0].Controller == nil || !*m.OwnerReferences[0].Controller {
			t.Errorf("object %s owner references %+v, want the Gateway web (controller)", m.Name, m.OwnerReferences)
		}
	}
	var ports []string
	for _, p := range d.service.Spec.Ports {
		ports = append(ports, p.Name)
	}
	if got := strings.Join(ports, " "); got != "status-port http-80 https-443" {
		t.Errorf("Service ports %q, want one per listener port: status-port http-80 https-443", got)
	}
	if d.service.Spec.Type != corev1.ServiceTypeLoadBalancer || d.service.Spec.Selector["gateway.networking.k8s.io/gateway-name"] != "web" {
		t.Errorf("Service spec %+v", d.service.Spec)
	}
	pod := d.deploy.Spec.Template
	args := strings.Join(pod.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--type=router", "--discovery=istiod.istio-system.svc:15012", "--service-account=web-istio",
		"gateway.networking.k8s.io/gateway-name=web"} {
		if !strings.Contains(args, want) {
			t.Errorf("proxy args %q lack %q", args, want)
		}
	}
	if pod.Labels["sidecar.istio.io/inject"] != "false" || pod.Spec.ServiceAccountName != "web-istio" {
		t.Errorf("pod labels %v, service account %q", pod.Labels, pod.Spec.ServiceAccountName)
	}
	objs, err := d.objects()
	if err != nil || len(objs) != 3 || objs[1].GetKind() != "Deployment" {
		t.Fatalf("objects: %v %v", objs, err)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(objs[1].Object, "status"); found {
		t.Errorf("the applied Deployment carries a status")
	}
}

func TestDeployNameIsCut(t *testing.T) {
	long := strings.Repeat("g", 70)
	if n := deployName(long, "istio"); len(n) > 63 {
		t.Errorf("deployName of a 70-character Gateway has %d characters, want at most 63", len(n))
	}
}

func TestServiceAddresses(t *testing.T) {
	for _, tc := range []struct {
		name string
		svc  corev1.Service
		want string
	}{
		{"load balancer IP", corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.5"},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "127.0.10.2"}}}}}, "IPAddress=127.0.10.2"},
		{"load balancer hostname", corev1.Service{Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: "lb.example.com"}}}}}, "Hostname=lb.example.com"},
		{"pending load balancer: the cluster IP", corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.5", ClusterIPs: []string{"10.96.0.5"}}}, "IPAddress=10.96.0.5"},
		{"headless", corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "None"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range serviceAddresses(&tc.svc) {
				got = append(got, string(*a.Type)+"="+a.Value)
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("addresses %v, want %s", got, tc.want)
			}
		})
	}
}

func TestMergeConditionsKeepsTransitionTimes(t *testing.T) {
	then := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	old := []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, LastTransitionTime: then},
		{Type: "Programmed", Status: metav1.ConditionFalse, LastTransitionTime: then}}
	got := mergeConditions(old, []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted"},
		{Type: "Programmed", Status: metav1.ConditionTrue, Reason: "Programmed"}})
	if !got[0].LastTransitionTime.Equal(&then) {
		t.Errorf("Accepted stayed True but its lastTransitionTime moved to %v", got[0].LastTransitionTime)
	}
	if got[1].LastTransitionTime.Equal(&then) || got[1].LastTransitionTime.IsZero() {
		t.Errorf("Programmed went False->True but kept lastTransitionTime %v", got[1].LastTransitionTime)
	}
}

func TestCredentialSecret(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    corev1.Secret
		want bool
	}{
		{"kubernetes.io/tls", corev1.Secret{Type: corev1.SecretTypeTLS}, true},
		{"generic with cert", corev1.Secret{Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"cert": []byte("x")}}, true},
		{"generic CA", corev1.Secret{Data: map[string][]byte{"cacert": []byte("x")}}, true},
		{"generic without TLS keys", corev1.Secret{Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"password": []byte("x")}}, false},
		{"service account token", corev1.Secret{Type: corev1.SecretTypeServiceAccountToken, Data: map[string][]byte{"ca.crt": []byte("x")}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := credentialSecret(&tc.s); got != tc.want {
				t.Errorf("credentialSecret = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseGatewayAPIObject(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "r", "namespace": "apps", "resourceVersion": "7", "generation": int64(2)},
		"spec": map[string]any{"parentRefs": []any{map[string]any{"name": "web"}},
			"rules": []any{map[string]any{"backendRefs": []any{map[string]any{"name": "details", "port": int64(9080)}}}}},
		"status": map[string]any{"parents": []any{}},
	}}
	accept := func(objs []*config.Object) ([]*config.Object, config.Problems) { return objs, nil }
	p := parseGatewayAPIObject(config.KindHTTPRoute, u, accept)
	if len(p.problems) > 0 || len(p.objs) != 1 {
		t.Fatalf("parse: %v objects, problems %v", len(p.objs), p.problems)
	}
	o := p.objs[0]
	spec, ok := o.Spec.(*gwv1.HTTPRouteSpec)
	if !ok || o.Meta.Generation != 2 || o.Meta.ResourceVersion != "7" || len(spec.Rules) != 1 || spec.Rules[0].BackendRefs[0].Name != "details" {
		t.Errorf("parsed %+v %+v", o.Meta, o.Spec)
	}
	u.Object["spec"].(map[string]any)["bogus"] = true
	if p := parseGatewayAPIObject(config.KindHTTPRoute, u, accept); len(p.problems) == 0 || !strings.Contains(p.problems.Error(), "bogus") {
		t.Errorf("an unknown spec field: problems %v, want one naming it", p.problems)
	}
}
