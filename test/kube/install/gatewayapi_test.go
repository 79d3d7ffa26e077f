package install

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/test/kubecluster"
)

// gatewayAPICRDs returns the directory of the Gateway API's standard CRDs
// in the sigs.k8s.io/gateway-api module go.mod requires.
func gatewayAPICRDs(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/gateway-api: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the Gateway API CRDs: %v", err)
	}
	return dir
}

// installGatewayAPICRDs applies the standard CRDs unless the cluster has
// them, and removes them when the test ends if it applied them.
func installGatewayAPICRDs(ctx context.Context, t *testing.T, c *kubecluster.Cluster) {
	t.Helper()
	if out, err := c.Run(ctx, "get", "crd", "gateways.gateway.networking.k8s.io", "--ignore-not-found", "-o", "name"); err == nil && strings.TrimSpace(out) != "" {
		return
	}
	dir := gatewayAPICRDs(t)
	kubectl(ctx, t, c, "", "apply", "--server-side", "-f", dir)
	kubectl(ctx, t, c, "", "wait", "--for=condition=Established", "crd", "--all", "--timeout=120s")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if out, err := c.Run(ctx, "delete", "-f", dir, "--ignore-not-found", "--wait=false"); err != nil {
			t.Logf("delete the Gateway API CRDs: %v\n%s", err, out)
		}
	})
}

// testGatewayAPIDeployment is Istio's automated gateway deployment: a
// Gateway of class istio (the GatewayClass discovery creates) gets its
// Deployment and Service web-istio, labelled with the Gateway's name and
// owned by it; its status shows the Service's address and Programmed; the
// HTTPRoute's parent is Accepted with its refs resolved; HTTP and HTTPS
// (the certificateRefs Secret, served over SDS) through the generated
// gateway reach details; deleting the Gateway removes both.
func testGatewayAPIDeployment(ctx context.Context, t *testing.T, c *kubecluster.Cluster, ns string) {
	installGatewayAPICRDs(ctx, t, c)
	poll(t, 2*time.Minute, "discovery creates the GatewayClass istio, Accepted", func() string {
		out, err := c.Run(ctx, "get", "gatewayclass", "istio", "-o", `jsonpath={.spec.controllerName} {.status.conditions[?(@.type=="Accepted")].status}`)
		if err == nil && strings.TrimSpace(out) == "istio.io/gateway-controller True" {
			return ""
		}
		return fmt.Sprintf("%v: %s", err, out)
	})

	certPEM, keyPEM, pool := selfSigned(t, "details.example.com")
	dir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kubectl(ctx, t, c, "", "create", "secret", "tls", "-n", ns, "details-cert", "--cert", filepath.Join(dir, "tls.crt"), "--key", filepath.Join(dir, "tls.key"))
	kubectl(ctx, t, c, fmt.Sprintf(gatewayAPIWeb, ns), "apply", "-f", "-")

	poll(t, 3*time.Minute, "Deployment and Service web-istio, labelled and owned by the Gateway", func() string {
		var msgs []string
		for _, kind := range []string{"deployment", "service"} {
			out, err := c.Run(ctx, "get", kind, "-n", ns, "web-istio", "-o",
				`jsonpath={.metadata.labels.gateway\.networking\.k8s\.io/gateway-name} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}`)
			if err != nil || strings.TrimSpace(out) != "web Gateway/web" {
				msgs = append(msgs, fmt.Sprintf("%s: %v %s", kind, err, out))
			}
		}
		return strings.Join(msgs, "; ")
	})
	clusterIP := strings.TrimSpace(kubectl(ctx, t, c, "", "get", "service", "-n", ns, "web-istio", "-o", "jsonpath={.spec.clusterIP}"))
	ports := strings.TrimSpace(kubectl(ctx, t, c, "", "get", "service", "-n", ns, "web-istio", "-o", `jsonpath={range .spec.ports[*]}{.name}={.port} {end}`))
	if ports != "status-port=15021 http-80=80 https-443=443" {
		t.Errorf("Service web-istio ports = %q, want status-port=15021 http-80=80 https-443=443 (the listeners')", ports)
	}
	poll(t, 3*time.Minute, "Gateway web Programmed with the Service's address", func() string {
		out, err := c.Run(ctx, "get", "gateway", "-n", ns, "web", "-o", "json")
		if err != nil {
			return err.Error() + out
		}
		var gw struct {
			Status struct {
				Addresses  []struct{ Type, Value string }
				Conditions []struct{ Type, Status, Reason string }
				Listeners  []struct {
					Name           string
					AttachedRoutes int
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &gw); err != nil {
			return err.Error()
		}
		st := gw.Status
		programmed := false
		for _, c := range st.Conditions {
			programmed = programmed || (c.Type == "Programmed" && c.Status == "True")
		}
		if !programmed || len(st.Addresses) != 1 || st.Addresses[0].Value != clusterIP || st.Addresses[0].Type != "IPAddress" ||
			len(st.Listeners) != 2 || st.Listeners[0].AttachedRoutes != 1 || st.Listeners[1].AttachedRoutes != 1 {
			return fmt.Sprintf("status %+v, want Programmed, address IPAddress %s and one route on each listener", st, clusterIP)
		}
		return ""
	})
	poll(t, time.Minute, "HTTPRoute web Accepted with its refs resolved", func() string {
		out, err := c.Run(ctx, "get", "httproute", "-n", ns, "web", "-o",
			`jsonpath={.status.parents[0].controllerName} {.status.parents[0].conditions[?(@.type=="Accepted")].status} {.status.parents[0].conditions[?(@.type=="ResolvedRefs")].status}`)
		if err == nil && strings.TrimSpace(out) == "istio.io/gateway-controller True True" {
			return ""
		}
		return fmt.Sprintf("%v: %s", err, out)
	})

	// Traffic through the generated gateway's listeners (kubectl port-forward
	// to its pod; nothing here sends to a pod or Service address).
	web := c.Forward(t, ns, "deploy/web-istio", 80)
	poll(t, 2*time.Minute, "GET /details/0 through the gateway's HTTP listener", func() string {
		code, body, err := get("http://" + web.Addr + "/details/0")
		if err == nil && code == 200 && strings.Contains(body, `"ISBN-10":"1234567890"`) {
			return ""
		}
		if err != nil {
			web.Renew()
		}
		return fmt.Sprintf("%d %v %.300s", code, err, body)
	})
	if code, _, err := get("http://" + web.Addr + "/productpage"); err != nil || code != 404 {
		t.Errorf("GET /productpage through the gateway = %d %v, want 404 (the HTTPRoute matches /details only)", code, err)
	}
	secure := c.Forward(t, ns, "deploy/web-istio", 443)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "details.example.com", MinVersion: tls.VersionTLS12}}}
	poll(t, 2*time.Minute, "GET https://details.example.com/details/0 with the certificateRefs Secret's certificate", func() string {
		req, err := http.NewRequest(http.MethodGet, "https://"+secure.Addr+"/details/0", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "details.example.com" // the listener's hostname, as SNI
		resp, err := client.Do(req)
		if err != nil {
			secure.Renew()
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 && strings.Contains(string(body), `"ISBN-10":"1234567890"`) {
			return ""
		}
		return fmt.Sprintf("%d %.300s", resp.StatusCode, body)
	})

	kubectl(ctx, t, c, "", "delete", "gateway", "-n", ns, "web")
	poll(t, 2*time.Minute, "deleting the Gateway removes its Deployment and Service", func() string {
		out, err := c.Run(ctx, "get", "deployment,service", "-n", ns, "-l", "gateway.networking.k8s.io/gateway-name=web", "-o", "name")
		if err == nil && strings.TrimSpace(out) == "" {
			return ""
		}
		return fmt.Sprintf("%v: %s", err, out)
	})
}

// gatewayAPIWeb is a Gateway with an HTTP and an HTTPS listener (the
// Secret details-cert) and an HTTPRoute sending /details to details (namespace %s).
const gatewayAPIWeb = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: web
  namespace: %[1]s
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
  - name: https
    port: 443
    protocol: HTTPS
    hostname: details.example.com
    tls:
      mode: Terminate
      certificateRefs:
      - name: details-cert
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: %[1]s
spec:
  parentRefs:
  - name: web
  rules:
  - matches:
    - path: {type: PathPrefix, value: /details}
    backendRefs:
    - name: details
      port: 9080
`

// selfSigned returns a self-signed certificate for host, its key (PEM) and
// a pool trusting it.
func selfSigned(t *testing.T, host string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}
