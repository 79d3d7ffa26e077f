package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bowline-mesh/bowline/internal/kube"
	"github.com/bowline-mesh/bowline/internal/kube/kubetest"
	"github.com/bowline-mesh/bowline/internal/kube/manifest"
)

// freeAddrs returns n loopback addresses nothing listens on.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

// background runs the command line until the test ends.
func background(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	root := newRootCommand(streams{in: strings.NewReader(""), out: &out, err: &out})
	root.SetArgs(args)
	done := make(chan struct{})
	go func() { defer close(done); _ = root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", args[0], out.String())
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func poll(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestDiscoveryOnKubernetes runs `bowline discovery --kubeconfig` against a
// real API server and an ingress gateway `bowline proxy` that gets its
// certificate with a service account token, the way the installed
// Deployments run: the CA root is created and kept in Secret
// istio-ca-secret, published as istio-ca-root-cert and as the webhook's
// caBundle; the API server then calls the webhook, which refuses an
// invalid VirtualService; the gateway is SYNCED with Istio's Bookinfo
// gateway YAML, and scaling productpage's endpoints 1 -> 3 shows in the
// gateway's clusters. (No request goes to the endpoints: their pod
// addresses exist nowhere on this machine.)
func TestDiscoveryOnKubernetes(t *testing.T) {
	c := kubetest.Shared(t)
	kc := c.Clientset(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := kube.NewApplier(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := manifest.Decode(append(append(manifest.Namespace("istio-system"), "---\n"...), manifest.CRDs()...))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, objs); err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 5)
	xdsAddr, debugAddr, webhookAddr, gwAddr, adminAddr := addrs[0], addrs[1], addrs[2], addrs[3], addrs[4]
	// The installed configuration points at the istiod Service; a bare API
	// server reaches discovery on loopback by URL.
	webhook, err := manifest.Decode([]byte(`apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: istio-validator-istio-system}
webhooks:
- name: validation.istio.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  clientConfig: {url: "https://` + webhookAddr + `/validate"}
  rules:
  - {operations: [CREATE, UPDATE], apiGroups: [networking.istio.io, security.istio.io, telemetry.istio.io], apiVersions: ["*"], resources: ["*"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, webhook); err != nil {
		t.Fatal(err)
	}
	background(t, "discovery", "--kubeconfig", c.Kubeconfig, "--xds-address", xdsAddr, "--debug-address", debugAddr,
		"--webhook-address", webhookAddr, "--id", "istiod-test", "--debounce", "20ms")

	var root string
	poll(t, "CA root published", func() string {
		sec, err := kc.CoreV1().Secrets("istio-system").Get(ctx, kube.SelfSignedCASecret, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		root = string(sec.Data["root-cert.pem"])
		cm, err := kc.CoreV1().ConfigMaps("default").Get(ctx, kube.RootCertConfigMap, metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if cm.Data["root-cert.pem"] != root || root == "" {
			return "istio-ca-root-cert of default is not the root of istio-ca-secret"
		}
		vwc, err := kc.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "istio-validator-istio-system", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		if string(vwc.Webhooks[0].ClientConfig.CABundle) != root {
			return "webhook caBundle is not the root: " + base64.StdEncoding.EncodeToString(vwc.Webhooks[0].ClientConfig.CABundle)
		}
		return ""
	})

	// Invalid Istio objects are refused by the API server, with validate's message.
	broken, _ := manifest.Decode([]byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}], redirect: {uri: /elsewhere}}]
`))
	poll(t, "webhook refuses an invalid VirtualService", func() string {
		err := a.Apply(ctx, broken)
		want := `admission webhook "validation.istio.io" denied the request: VirtualService default/broken: spec.http[0].redirect: route and redirect cannot both be set`
		if err == nil || !strings.Contains(err.Error(), want) {
			return fmt.Sprintf("apply error %v, want one containing %q", err, want)
		}
		return ""
	})

	// Bookinfo's productpage Service with one ready endpoint, and Istio's gateway YAML.
	bookinfo, err := os.ReadFile(filepath.Join("..", "..", "samples", "bookinfo", "networking", "bookinfo-gateway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	gwObjs, err := manifest.Decode(bookinfo)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range gwObjs {
		o.SetNamespace("default")
	}
	svc, _ := manifest.Decode([]byte(`apiVersion: v1
kind: ServiceAccount
metadata: {name: istio-ingressgateway-service-account, namespace: istio-system}
---
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: default}
spec:
  ports: [{name: http, port: 9080}]
`))
	if err := a.Apply(ctx, append(svc, gwObjs...)); err != nil {
		t.Fatal(err)
	}
	ready := true
	endpoint := func(ip string) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}
	}
	name, port := "http", int32(9080)
	slice, err := kc.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "productpage-1", Labels: map[string]string{discoveryv1.LabelServiceName: "productpage"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{endpoint("10.244.0.11")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The gateway, authenticated by its service account's projected token.
	dir := t.TempDir()
	tr, err := kc.CoreV1().ServiceAccounts("istio-system").CreateToken(ctx, "istio-ingressgateway-service-account",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{kube.CAAudience}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile, rootFile := filepath.Join(dir, "istio-token"), filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rootFile, []byte(root), 0o600); err != nil {
		t.Fatal(err)
	}
	_, gwPort, _ := net.SplitHostPort(gwAddr)
	background(t, "proxy", "--type", "router", "--discovery", xdsAddr, "--ca-address", xdsAddr, "--ca-root-cert", rootFile,
		"--ca-token-file", tokenFile, "--namespace", "istio-system", "--workload", "istio-ingressgateway-test",
		"--service-account", "istio-ingressgateway-service-account", "--labels", "app=istio-ingressgateway,istio=ingressgateway",
		"--gateway-port", "8080="+gwPort, "--admin-address", adminAddr, "--release-binary-pages=false")

	poll(t, "gateway SYNCED in proxy-status", func() string {
		out, errOut, code := run(t, "", "proxy-status", "--debug-address", debugAddr)
		if code != 0 || !strings.Contains(out, "istio-ingressgateway-test") || strings.Count(out, "SYNCED") < 3 {
			return fmt.Sprintf("exit %d:\n%s%s", code, out, errOut)
		}
		return ""
	})
	const cluster = "outbound|9080||productpage.default.svc.cluster.local::"
	endpoints := func() (int, string) {
		body, err := httpGet("http://" + adminAddr + "/clusters")
		if err != nil {
			return 0, err.Error()
		}
		n := 0
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, cluster) && strings.Contains(line, "::health_flags::healthy") {
				n++
			}
		}
		return n, body
	}
	poll(t, "gateway has productpage's endpoint", func() string {
		if n, body := endpoints(); n != 1 {
			return strconv.Itoa(n) + " endpoints:\n" + body
		}
		return ""
	})
	slice.Endpoints = []discoveryv1.Endpoint{endpoint("10.244.0.11"), endpoint("10.244.0.12"), endpoint("10.244.0.13")}
	if _, err := kc.DiscoveryV1().EndpointSlices("default").Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, "gateway has 3 productpage endpoints", func() string {
		if n, body := endpoints(); n != 3 {
			return strconv.Itoa(n) + " endpoints:\n" + body
		}
		return ""
	})
}
