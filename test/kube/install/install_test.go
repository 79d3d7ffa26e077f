// Package install tests `bowline install` on the real cluster of `make
// kube-up`: the bowline image `make images` built for this version runs as
// discovery and as the ingress gateway, Istio's own Bookinfo networking YAML
// applies and shows in the gateway's configuration and traffic, the
// validation webhook refuses an invalid VirtualService with `bowline
// validate`'s message, scaled pods show in the gateway's endpoints, the CA
// refuses a CSR whose token is another service account's, a Gateway API
// Gateway gets its own gateway Deployment and Service (gatewayapi_test.go), and `bowline
// uninstall --purge` leaves nothing behind. It uses the cluster through
// test/kubecluster (failing, never skipping, in CI) and the bowline binary
// `make build` wrote to bin/bowline (make kube-up and make test build it,
// with the image of the same version).
package install

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/bowline-mesh/bowline/test/kubecluster"
)

// bowline is the CLI under test, with the cluster's kubeconfig.
type bowline struct {
	bin, kubeconfig string
	// runtimeDir is an empty XDG_RUNTIME_DIR, so that proxy-status and
	// proxy-config never find a `bowline up` that another test (test/e2e,
	// run in parallel by go test ./...) registered on this machine, and
	// talk to the cluster.
	runtimeDir string
}

// binary returns bin/bowline of this checkout.
func binary(t *testing.T, c *kubecluster.Cluster) *bowline {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(filepath.Dir(file), "..", "..", "..", "bin", "bowline")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no %s: make build writes it (make kube-up and make test run it, and load the image of the same version)", bin)
	}
	return &bowline{bin: bin, kubeconfig: c.Kubeconfig, runtimeDir: t.TempDir()}
}

// run runs bowline with args and returns its combined output and exit code.
func (b *bowline) run(ctx context.Context, args ...string) (string, int) {
	cmd := exec.CommandContext(ctx, b.bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+b.kubeconfig, "XDG_RUNTIME_DIR="+b.runtimeDir)
	cmd.Dir = os.TempDir() // no ./.bowline of a bowline up here
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return string(out), code
}

// poll calls cond until it returns "" or the timeout passes, then fails
// with its last message.
func poll(t *testing.T, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, timeout, msg)
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
}

// uninstall removes Bowline (a leftover of an interrupted run, or this
// test's install) and its CRDs.
func uninstall(t *testing.T, b *bowline) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, code := b.run(ctx, "uninstall", "-y", "--purge", "--timeout", "2m")
	if code != 0 {
		t.Errorf("bowline uninstall -y --purge: exit %d\n%s", code, out)
	}
	return out
}

func TestInstall(t *testing.T) {
	c := kubecluster.Require(t)
	b := binary(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if out, err := c.Run(ctx, "get", "namespace", "istio-system", "--ignore-not-found", "-o", "name"); err == nil && strings.TrimSpace(out) != "" {
		t.Logf("istio-system exists (an earlier run was interrupted): uninstalling first\n%s", uninstall(t, b))
	}

	start := time.Now()
	out, code := b.run(ctx, "install", "-y", "--timeout", "3m", "--set", "enableAnalysis=true")
	t.Logf("bowline install -y (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	uninstalled := false
	t.Cleanup(func() {
		if !uninstalled {
			if t.Failed() {
				dumpState(t, c)
			}
			uninstall(t, b)
		}
	})
	if code != 0 {
		t.Fatalf("bowline install -y: exit %d", code)
	}
	for _, want := range []string{
		"waiting for Deployment istio-system/istiod",
		"Deployment istio-system/istiod ready (1/1)",
		"Deployment istio-system/istio-ingressgateway ready (1/1)",
		"ValidatingWebhookConfiguration istio-validator-istio-system ready",
		"Bowline is installed and ready.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("bowline install output lacks %q", want)
		}
	}

	t.Run("ProxyStatusShowsGatewaySynced", func(t *testing.T) {
		poll(t, time.Minute, "bowline proxy-status shows the gateway SYNCED", func() string {
			out, code := b.run(ctx, "proxy-status")
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "istio-ingressgateway-") && strings.Contains(line, ".istio-system") &&
					strings.Count(line, "SYNCED") >= 2 && !strings.Contains(line, "STALE") && !strings.Contains(line, "NACK") {
					t.Logf("bowline proxy-status:\n%s", out)
					return ""
				}
			}
			return fmt.Sprintf("exit %d:\n%s", code, out)
		})
	})

	t.Run("DiscoveryPortsAsIstiod", func(t *testing.T) { testDiscoveryPorts(ctx, t, c) })
	t.Run("NamespaceFromKubeconfigContext", func(t *testing.T) { testNamespaceFromContext(ctx, t, c, b) })

	ns := c.Namespace(t)
	gwAdmin := c.PortForward(t, "istio-system", "deploy/istio-ingressgateway", 15000)
	t.Run("BookinfoSamplesInGatewayConfig", func(t *testing.T) {
		if out, err := c.RunStdin(ctx, bookinfoApps(), "apply", "-n", ns, "-f", "-"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, f := range istioSamples {
			if out, err := c.Run(ctx, "apply", "-n", ns, "-f", filepath.Join("testdata", "istio", f)); err != nil {
				t.Fatalf("kubectl apply -f %s (Istio's YAML as shipped): %v\n%s", f, err, out)
			}
		}
		productpage := "outbound|9080||productpage." + ns + ".svc.cluster.local"
		poll(t, time.Minute, "the gateway routes /productpage to productpage (bookinfo-gateway.yaml)", func() string {
			out, code := b.run(ctx, "proxy-config", "route", "deployment/istio-ingressgateway.istio-system", "-o", "json")
			if code == 0 && strings.Contains(out, `"/productpage"`) && strings.Contains(out, `"/api/v1/products"`) && strings.Contains(out, productpage) {
				return ""
			}
			return fmt.Sprintf("exit %d:\n%s", code, out)
		})
		poll(t, time.Minute, "the gateway has the subsets of destination-rule-all.yaml", func() string {
			out, code := b.run(ctx, "proxy-config", "cluster", "deployment/istio-ingressgateway.istio-system", "-o", "json")
			var missing []string
			for _, want := range []string{"outbound|9080|v1|productpage.", "outbound|9080|v1|reviews.", "outbound|9080|v2|reviews.", "outbound|9080|v3|reviews.",
				"outbound|9080|v2-mysql|ratings.", "outbound|9080|v2|details."} {
				if !strings.Contains(out, `"`+want+ns+`.svc.cluster.local"`) {
					missing = append(missing, want+ns+".svc.cluster.local")
				}
			}
			if code != 0 || len(missing) > 0 {
				return fmt.Sprintf("exit %d, missing %v", code, missing)
			}
			return ""
		})
		// virtual-service-all-v1.yaml binds to the mesh only (no gateways:),
		// so, as with istiod, it is not in the gateway's routes; it is
		// accepted and the gateway stays in sync (no NACK) with all three.
		if out, err := c.Run(ctx, "get", "virtualservices", "-n", ns, "-o", "name"); err != nil || strings.Count(out, "virtualservice.networking.istio.io/") != 5 {
			t.Errorf("kubectl get virtualservices: %v\n%s\nwant bookinfo and the four of virtual-service-all-v1.yaml", err, out)
		}
		poll(t, time.Minute, "the gateway SYNCED after the samples", func() string {
			out, code := b.run(ctx, "proxy-status")
			if code == 0 && strings.Count(out, "SYNCED") >= 4 && !strings.Contains(out, "STALE") && !strings.Contains(out, "NACK") {
				return ""
			}
			return fmt.Sprintf("exit %d:\n%s", code, out)
		})
		// Real traffic: the gateway's 8080 listener (the Gateway's port) to
		// productpage, which fetched the book's details from details.
		gw := c.Forward(t, "istio-system", "deploy/istio-ingressgateway", 8080)
		poll(t, time.Minute, "GET /productpage through the gateway shows the details", func() string {
			code, body, err := get("http://" + gw.Addr + "/productpage")
			if err == nil && code == 200 && strings.Contains(body, `<dd id="details-isbn10">1234567890</dd>`) {
				return ""
			}
			if err != nil {
				// A port-forward can stall (seen once in CI: every request
				// timed out for a minute); the next try goes through a new one.
				gw.Renew()
			}
			return fmt.Sprintf("%d %v\n%.400s", code, err, body)
		})
		if code, _, err := get("http://" + gw.Addr + "/"); err != nil || code != 404 {
			t.Errorf("GET / through the gateway = %d %v, want 404 (bookinfo-gateway.yaml routes only productpage's paths)", code, err)
		}
	})

	t.Run("StatusReconciledAndAnalysis", func(t *testing.T) { testStatus(ctx, t, c, ns) })

	t.Run("WebhookRefusesInvalidVirtualService", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "reviews-broken.yaml")
		if err := os.WriteFile(file, []byte(fmt.Sprintf(brokenVirtualService, ns)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, code := b.run(ctx, "validate", "-f", file)
		_, rest, ok := strings.Cut(strings.SplitN(out, "\n", 2)[0], ".yaml:")
		_, msg, ok2 := strings.Cut(rest, ": ") // after the line number
		if code != 1 || !ok || !ok2 || !strings.Contains(msg, "spec.http[0].redirect") {
			t.Fatalf("bowline validate -f %s: exit %d, want 1 with FILE:LINE: MESSAGE:\n%s", file, code, out)
		}
		want := `admission webhook "validation.istio.io" denied the request: ` + msg
		kout, err := c.Run(ctx, "apply", "-f", file)
		if err == nil || !strings.Contains(kout, want) {
			t.Errorf("kubectl apply -f %s = %v:\n%s\nwant it refused with %q", file, err, kout, want)
		}
		t.Logf("bowline validate: %s\nkubectl apply: %s", strings.TrimSpace(out), strings.TrimSpace(kout))
	})

	t.Run("ScaledPodsInGatewayEDS", func(t *testing.T) {
		cluster := "outbound|9080||productpage." + ns + ".svc.cluster.local"
		if n, body := healthyHosts(gwAdmin, cluster); n != 1 {
			t.Fatalf("before scaling: %d healthy hosts of %s in the gateway, want 1:\n%.2000s", n, cluster, body)
		}
		start := time.Now()
		if out, err := c.Run(ctx, "scale", "-n", ns, "deployment/productpage-v1", "--replicas=3"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var podsReady, inEDS time.Duration
		poll(t, 2*time.Minute, "3 ready productpage pods and 3 endpoints in the gateway", func() string {
			if podsReady == 0 {
				out, _ := c.Run(ctx, "get", "-n", ns, "deployment/productpage-v1", "-o", "jsonpath={.status.readyReplicas}")
				if strings.TrimSpace(out) == "3" {
					podsReady = time.Since(start)
				}
			}
			n, _ := healthyHosts(gwAdmin, cluster)
			if n == 3 && inEDS == 0 {
				inEDS = time.Since(start)
			}
			if podsReady == 0 || inEDS == 0 {
				return fmt.Sprintf("%d healthy hosts in the gateway, pods ready after %s", n, podsReady)
			}
			return ""
		})
		t.Logf("scaled productpage 1 -> 3: kubectl saw 3 ready pods after %s, the gateway's EDS had 3 healthy endpoints after %s",
			podsReady.Round(time.Millisecond), inEDS.Round(time.Millisecond))
	})

	t.Run("CARefusesAnotherServiceAccountsToken", func(t *testing.T) {
		for _, sa := range []string{"attacker", "bookinfo-productpage"} {
			if out, err := c.Run(ctx, "create", "serviceaccount", "-n", ns, sa); err != nil && !strings.Contains(out, "AlreadyExists") {
				t.Fatalf("%v\n%s", err, out)
			}
		}
		token := func(sa string) string {
			out, err := c.Run(ctx, "create", "token", "-n", ns, sa, "--audience", "istio-ca", "--duration", "10m")
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			return strings.TrimSpace(out)
		}
		root, err := c.Run(ctx, "get", "configmap", "-n", ns, "istio-ca-root-cert", "-o", `jsonpath={.data.root-cert\.pem}`)
		if err != nil {
			t.Fatalf("%v\n%s", err, root)
		}
		caAddr := c.PortForward(t, "istio-system", "deploy/istiod", 15012)
		victim := "spiffe://cluster.local/ns/" + ns + "/sa/bookinfo-productpage"
		attacker := "spiffe://cluster.local/ns/" + ns + "/sa/attacker"

		// attacker's token, asking for productpage's identity as Istio's
		// node agents ask for another's: refused.
		_, err = createCertificate(ctx, caAddr, root, token("attacker"), victim, victim)
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "request impersonation authentication failure") {
			t.Errorf("CSR for %s with attacker's token and ImpersonatedIdentity: %v, want Unauthenticated: request impersonation authentication failure", victim, err)
		}
		// attacker's token, productpage's identity only in the CSR: the
		// certificate is attacker's (the CA ignores the CSR's SANs, as istiod).
		got, err := createCertificate(ctx, caAddr, root, token("attacker"), victim, "")
		if err != nil || got != attacker {
			t.Errorf("CSR naming %s with attacker's token: certificate for %q (%v), want %s and never the CSR's identity", victim, got, err, attacker)
		}
		// productpage's own token: its identity.
		if got, err := createCertificate(ctx, caAddr, root, token("bookinfo-productpage"), victim, victim); err != nil || got != victim {
			t.Errorf("CSR for %s with its own token: certificate for %q (%v), want %s", victim, got, err, victim)
		}
		// A token of the right service account for another audience.
		out, err := c.Run(ctx, "create", "token", "-n", ns, "bookinfo-productpage", "--duration", "10m")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if _, err := createCertificate(ctx, caAddr, root, strings.TrimSpace(out), victim, ""); status.Code(err) != codes.Unauthenticated {
			t.Errorf("CSR with a token not for audience istio-ca: %v, want Unauthenticated", err)
		}
	})

	t.Run("GatewayAPIDeployment", func(t *testing.T) { testGatewayAPIDeployment(ctx, t, c, ns) })

	// Last: uninstall --purge, and nothing of Bowline is left.
	t.Run("UninstallPurgeLeavesNothing", func(t *testing.T) {
		uninstalled = true
		out := uninstall(t, b)
		t.Logf("bowline uninstall -y --purge:\n%s", out)
		for _, want := range []string{"Namespace istio-system deleted", "Bowline is uninstalled."} {
			if !strings.Contains(out, want) {
				t.Errorf("bowline uninstall output lacks %q", want)
			}
		}
		left := leftovers(ctx, t, c)
		if len(left) > 0 {
			t.Errorf("after bowline uninstall --purge these remain:\n%s", strings.Join(left, "\n"))
		}
	})
}

// leftovers lists what Bowline might have left on the cluster: the
// namespace, Istio's CRDs, webhook configurations, ClusterRoles and
// bindings named like Istio's (istio*) or labelled part of Bowline, and
// istio-ca-root-cert ConfigMaps in any namespace.
func leftovers(ctx context.Context, t *testing.T, c *kubecluster.Cluster) []string {
	t.Helper()
	var left []string
	get := func(args ...string) []string {
		out, err := c.Run(ctx, append([]string{"get", "-o", "name"}, args...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return strings.Fields(out)
	}
	if ns := get("namespace", "istio-system", "--ignore-not-found"); len(ns) > 0 {
		left = append(left, ns...)
	}
	for _, name := range get("customresourcedefinitions") {
		if strings.HasSuffix(name, ".istio.io") {
			left = append(left, name)
		}
	}
	for _, kind := range []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations", "clusterroles", "clusterrolebindings"} {
		for _, name := range get(kind) {
			if strings.Contains(name, "istio") { // Istio's names (the kit's own are bowline-kit:*)
				left = append(left, name)
			}
		}
		left = append(left, get(kind, "-l", "app.kubernetes.io/part-of=bowline")...)
	}
	left = append(left, get("configmaps", "-A", "--field-selector", "metadata.name=istio-ca-root-cert")...)
	return left
}

// dumpState logs what the test cluster shows of Bowline, for a failed run.
func dumpState(t *testing.T, c *kubecluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{
		{"get", "all", "-n", "istio-system", "-o", "wide"},
		{"describe", "pods", "-n", "istio-system"},
		{"logs", "-n", "istio-system", "deploy/istiod", "--tail", "50"},
		{"logs", "-n", "istio-system", "deploy/istio-ingressgateway", "--tail", "50"},
	} {
		out, _ := c.Run(ctx, args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
}

// istioSamples are Istio's Bookinfo networking files as Istio ships them
// (testdata/istio/README.md).
var istioSamples = []string{"bookinfo-gateway.yaml", "destination-rule-all.yaml", "virtual-service-all-v1.yaml"}

// brokenVirtualService has a route and a redirect in one rule (namespace %s).
const brokenVirtualService = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-broken
  namespace: %s
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    redirect: {uri: /elsewhere}
`

// bookinfoApps is productpage (a Deployment, to scale) and details from the
// images make images built under Istio's names, with Bookinfo's Services.
func bookinfoApps() string {
	var b strings.Builder
	for _, svc := range []string{"productpage", "details", "reviews", "ratings"} {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  labels: {app: %[1]s, service: %[1]s}
spec:
  ports:
  - {port: 9080, name: http}
  selector: {app: %[1]s}
`, svc)
	}
	for _, app := range []string{"productpage", "details"} {
		fmt.Fprintf(&b, `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s-v1
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[1]s, version: v1}
  template:
    metadata:
      labels: {app: %[1]s, version: v1}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: %[1]s
        image: %[2]s
        imagePullPolicy: Never
        ports:
        - containerPort: 9080
        readinessProbe:
          httpGet: {path: /health, port: 9080}
          periodSeconds: 1
        volumeMounts:
        - {name: tmp, mountPath: /tmp}
      volumes:
      - name: tmp
        emptyDir: {}
`, app, kubecluster.BookinfoImage(app+"-v1"))
	}
	return b.String()
}

// get sends GET url once.
func get(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// healthyHosts counts the healthy hosts of cluster in the proxy admin's
// /clusters, as Envoy prints them.
func healthyHosts(admin, cluster string) (int, string) {
	_, body, err := get("http://" + admin + "/clusters")
	if err != nil {
		return 0, err.Error()
	}
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, cluster+"::") && strings.HasSuffix(line, "::health_flags::healthy") {
			n++
		}
	}
	return n, body
}

// createCertificate sends a CSR naming identity (a URI SAN) to the CA at
// addr with token, asking for impersonate when not empty, and returns the
// SPIFFE ID of the certificate it signed.
func createCertificate(ctx context.Context, addr, rootPEM, token, identity, impersonate string) (string, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(rootPEM)) {
		return "", fmt.Errorf("no certificate in istio-ca-root-cert: %q", rootPEM)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: pool, ServerName: "istiod.istio-system.svc", MinVersion: tls.VersionTLS12})))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(identity)
	if err != nil {
		return "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return "", err
	}
	req := &pb.IstioCertificateRequest{Csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), ValidityDuration: 3600}
	if impersonate != "" {
		req.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{"ImpersonatedIdentity": structpb.NewStringValue(impersonate)}}
	}
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), 20*time.Second)
	defer cancel()
	resp, err := pb.NewIstioCertificateServiceClient(conn).CreateCertificate(ctx, req)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode([]byte(resp.GetCertChain()[0]))
	if block == nil {
		return "", fmt.Errorf("cert_chain[0] is not PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", err
	}
	if len(leaf.URIs) != 1 {
		return "", fmt.Errorf("leaf has URIs %v, want one", leaf.URIs)
	}
	return leaf.URIs[0].String(), nil
}
