package install

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/bowline-mesh/bowline/test/kubecluster"
)

// testDiscoveryPorts checks istiod's ports as Istio has them: the Service
// has plaintext xDS 15010, xDS+CA over mTLS 15012, the webhook 443 and
// monitoring 15014; the pod is Ready by the kubelet's probe of /ready on
// 15014 at its address; 15014 serves the metrics and the version; 15010
// answers a plaintext ADS request with the mesh's clusters.
func testDiscoveryPorts(ctx context.Context, t *testing.T, c *kubecluster.Cluster) {
	out, err := c.Run(ctx, "get", "service", "-n", "istio-system", "istiod", "-o",
		`jsonpath={range .spec.ports[*]}{.name}={.port}->{.targetPort}{"\n"}{end}`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"grpc-xds=15010->15010", "https-dns=15012->15012", "https-webhook=443->15017", "http-monitoring=15014->15014"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("Service istio-system/istiod lacks port %s; has:\n%s", want, out)
		}
	}
	out, err = c.Run(ctx, "get", "deployment", "-n", "istio-system", "istiod", "-o",
		`jsonpath={.spec.template.spec.containers[0].readinessProbe.httpGet.port} {.status.readyReplicas} {.spec.template.spec.containers[0].image}`)
	fields := strings.Fields(out)
	if err != nil || len(fields) != 3 || fields[0] != "15014" || fields[1] != "1" {
		t.Fatalf("istiod readiness probe port, ready replicas, image = %q (%v), want 15014 and 1 ready (the kubelet probed /ready on the pod's address)", out, err)
	}
	_, tag, _ := strings.Cut(fields[2][strings.LastIndex(fields[2], "/")+1:], ":")

	mon := c.PortForward(t, "istio-system", "deploy/istiod", 15014)
	code, body, err := get("http://" + mon + "/metrics")
	if err != nil || code != 200 || !strings.Contains(body, "pilot_xds") {
		t.Errorf("GET /metrics on 15014 = %d %v, want 200 with pilot_xds metrics:\n%.500s", code, err, body)
	}
	if code, body, err := get("http://" + mon + "/version"); err != nil || code != 200 || strings.TrimSpace(body) != tag {
		t.Errorf("GET /version on 15014 = %d %q %v, want 200 %q (the image's tag)", code, body, err, tag)
	}
	if code, _, err := get("http://" + mon + "/debug/syncz"); err != nil || code != 404 {
		t.Errorf("GET /debug/syncz on 15014 = %d %v, want 404: debug stays on the pod's loopback 8080", code, err)
	}

	xds := c.PortForward(t, "istio-system", "deploy/istiod", 15010)
	conn, err := grpc.NewClient(xds, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatalf("plaintext ADS on 15010: %v", err)
	}
	node := &core.Node{Id: "router~10.244.0.250~ports-test.istio-system~istio-system.svc.cluster.local", Cluster: "ports-test.istio-system"}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatalf("plaintext ADS on 15010: send: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil || resp.GetTypeUrl() != resourcev3.ClusterType || len(resp.GetResources()) == 0 {
		t.Fatalf("plaintext ADS on 15010: %v, %d %s resources; want the mesh's clusters", err, len(resp.GetResources()), resp.GetTypeUrl())
	}
	t.Logf("plaintext xDS on 15010: %d clusters (version %s)", len(resp.GetResources()), resp.GetVersionInfo())
}

// testNamespaceFromContext checks that proxy-config and proxy-status find a
// pod named without .NAMESPACE in the kubeconfig context's namespace, as
// istioctl does, and that -n overrides it.
func testNamespaceFromContext(ctx context.Context, t *testing.T, c *kubecluster.Cluster, b *bowline) {
	data, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, c.Kubectl, "--kubeconfig", kc, "config", "set-context", "--current", "--namespace", "istio-system").CombinedOutput(); err != nil {
		t.Fatalf("kubectl config set-context --current --namespace istio-system: %v\n%s", err, out)
	}
	inSystem := &bowline{bin: b.bin, kubeconfig: kc, runtimeDir: b.runtimeDir}
	pod, err := c.Run(ctx, "get", "pods", "-n", "istio-system", "-l", "app=istio-ingressgateway", "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil || pod == "" {
		t.Fatalf("the gateway's pod: %q %v", pod, err)
	}
	poll(t, time.Minute, "proxy-config route deployment/istio-ingressgateway in the context's namespace", func() string {
		out, code := inSystem.run(ctx, "proxy-config", "route", "deployment/istio-ingressgateway")
		if code == 0 && strings.Contains(out, "NAME") {
			return ""
		}
		return fmt.Sprintf("exit %d:\n%s", code, out)
	})
	if out, code := inSystem.run(ctx, "proxy-config", "cluster", pod); code != 0 || !strings.Contains(out, "SERVICE FQDN") {
		t.Errorf("proxy-config cluster %s (context namespace istio-system): exit %d\n%s", pod, code, out)
	}
	if out, code := inSystem.run(ctx, "proxy-status", pod); code != 0 || !strings.Contains(out, "~"+pod+".istio-system~") || !strings.Contains(out, "Type:       router") {
		t.Errorf("proxy-status %s (context namespace istio-system): exit %d, want the detail of %s.istio-system:\n%s", pod, code, pod, out)
	}
	// The admin kubeconfig's context has no namespace: default, where no
	// such Deployment is; -n names the namespace.
	if out, code := b.run(ctx, "proxy-config", "route", "deployment/istio-ingressgateway"); code == 0 || !strings.Contains(out, "namespace default") {
		t.Errorf("proxy-config route deployment/istio-ingressgateway (context without namespace): exit %d, want an error naming namespace default:\n%s", code, out)
	}
	if out, code := b.run(ctx, "proxy-config", "route", "deployment/istio-ingressgateway", "-n", "istio-system"); code != 0 {
		t.Errorf("proxy-config route deployment/istio-ingressgateway -n istio-system: exit %d\n%s", code, out)
	}
}
