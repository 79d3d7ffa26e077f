package e2e

import (
	"crypto/tls"
	"fmt"
	"path/filepath"
	"testing"
)

// TestPermissiveTLSWithoutIstioALPNEndToEnd: a workload serving its own
// TLS on a TCP port behind a PERMISSIVE sidecar. A client that is not in
// the mesh speaks HTTPS to it directly — TLS without Istio's ALPN, with and
// without ALPN of its own — and reaches the app's TLS as it is (its
// certificate, its answer), as with Istio, whose PERMISSIVE TCP chains pass
// such TLS through instead of refusing it.
func TestPermissiveTLSWithoutIstioALPNEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	appCA := newTestCA(t, "app-ca")
	appCert := appCA.issue(t, "app.example", "app.example")
	app := startTLSBackend(t, "app", appCert.tls)
	in := freePort(t)
	dir := t.TempDir()
	writeAtomic(t, filepath.Join(dir, "app.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app, namespace: default}
spec:
  hosts: [app.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8443, name: tcp-tls, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp-tls: %d}, labels: {app: web}}]
`, in))
	sc := startSidecar(t, startSecureDiscovery(t, dir), map[uint32]uint32{uint32(in): uint32(app)})
	sc.waitConfig(t, `"transport_protocol": "tls"`)
	for _, alpn := range [][]string{nil, {"http/1.1"}, {"h2", "http/1.1"}} {
		c := httpsClient(fmt.Sprintf("127.0.0.1:%d", in), "app.example", &tls.Config{RootCAs: appCA.pool, NextProtos: alpn})
		res, err := httpsGet(c, "app.example", "/hello")
		c.CloseIdleConnections()
		if err != nil {
			t.Fatalf("ALPN %v: %v\n%s", alpn, err, sc.log.String())
		}
		if res.status != 200 || res.body != "app /hello sni=app.example" || res.peer == nil || res.peer.SerialNumber.Cmp(appCert.leaf.SerialNumber) != 0 {
			t.Errorf("ALPN %v: %d %q (peer %v), want the app's own TLS answer", alpn, res.status, res.body, res.peer != nil)
		}
	}
}
