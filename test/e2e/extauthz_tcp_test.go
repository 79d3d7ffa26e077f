package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/ca"
	"github.com/bowline-mesh/bowline/internal/proxy/extauthz/authztest"
)

// TestExtAuthzTCPEndToEnd: AuthorizationPolicy CUSTOM on a sidecar's TCP
// port with a gRPC provider becomes envoy.filters.network.ext_authz: each
// connection is checked with its addresses and peer identity by the test
// authorizer (Istio's samples/extauthz: allowed when the source principal
// is its allowed service account), an allowed one reaches the app, a denied
// one is closed before the app sees a byte; with the authorizer gone the
// connection is refused, or let through with failOpen.
func TestExtAuthzTCPEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	authzSrv, err := authztest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(authzSrv.Stop)
	_, grpcPort, _ := net.SplitHostPort(authzSrv.GRPCAddr())
	echo := startTCPEcho(t)
	in := freePort(t)
	dir := t.TempDir()
	writeAtomic(t, filepath.Join(dir, "services.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-authz, namespace: foo}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: grpc, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1, ports: {grpc: %s}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}, labels: {app: web}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext-tcp, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  action: CUSTOM
  provider: {name: tcp-authz}
  rules:
  - to: [{operation: {ports: ["%d"]}}]
`, extAuthzHost, grpcPort, in, in))
	mesh := func(failOpen bool) string {
		return meshConfigMap(fmt.Sprintf("    - name: tcp-authz\n      envoyExtAuthzGrpc: {service: %s, port: 9000, timeout: 2s, failOpen: %t}\n",
			extAuthzHost, failOpen))
	}
	writeAtomic(t, filepath.Join(dir, "mesh.yaml"), mesh(false))
	caDir := t.TempDir()
	meshCA, err := ca.New(ca.Config{Dir: caDir})
	if err != nil {
		t.Fatal(err)
	}
	cp := &meshCP{root: filepath.Join(caDir, ca.RootCertFile), tokens: ca.NewTokens(), dir: t.TempDir()}
	cp.xds, _ = runDiscovery(t, secureDiscoveryConfig(dir, meshCA, cp.tokens))
	sc := startSidecar(t, cp, map[uint32]uint32{uint32(in): uint32(echo)})
	sc.waitConfig(t, "envoy.filters.network.ext_authz")

	allowedSA := meshClientTLS(t, caDir, "cluster.local", "default", authzSrv.AllowServiceAccount)
	otherSA := meshClientTLS(t, caDir, "cluster.local", "default", "intruder")
	// roundTrip sends "ping\n" over mTLS (or plaintext with cfg nil) and
	// returns what came back; a closed connection is an error.
	roundTrip := func(cfg *tls.Config) (string, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		var c net.Conn
		var err error
		if cfg != nil {
			c, err = tls.DialWithDialer(d, "tcp", fmt.Sprintf("127.0.0.1:%d", in), cfg)
		} else {
			c, err = d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", in))
		}
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			return "", err
		}
		b := make([]byte, 5)
		_, err = io.ReadFull(c, b)
		return string(b), err
	}
	if got, err := roundTrip(allowedSA); got != "ping\n" {
		t.Fatalf("allowed service account: got %q, %v\n%s", got, err, sc.log.String())
	}
	checks := authzSrv.Checks()
	if len(checks) == 0 {
		t.Fatal("the authorizer saw no check")
	}
	last := checks[len(checks)-1].GetAttributes()
	if p := last.GetSource().GetPrincipal(); p != "spiffe://cluster.local/ns/default/sa/"+authzSrv.AllowServiceAccount {
		t.Errorf("check's source principal %q", p)
	}
	if a := last.GetDestination().GetAddress().GetSocketAddress(); a.GetPortValue() != uint32(in) || last.GetRequest().GetHttp() != nil {
		t.Errorf("check's destination %v, HTTP %v: want the connection's port and no HTTP attributes", a, last.GetRequest().GetHttp())
	}
	if got, err := roundTrip(otherSA); err == nil {
		t.Errorf("denied service account: got %q, want the connection closed", got)
	}
	if got, err := roundTrip(nil); err == nil {
		t.Errorf("plaintext (no principal): got %q, want the connection closed", got)
	}
	if !strings.Contains(sc.log.String(), `"response_flags":"UAEX"`) {
		t.Errorf("no UAEX connection in the access log:\n%s", sc.log.String())
	}

	// The authorizer gone: refused (failOpen false), then let through.
	authzSrv.Stop()
	if got, err := roundTrip(allowedSA); err == nil {
		t.Errorf("authorizer down, failOpen false: got %q, want the connection closed", got)
	}
	writeAtomic(t, filepath.Join(dir, "mesh.yaml"), mesh(true))
	sc.waitConfig(t, `"failure_mode_allow": true`)
	if got, err := roundTrip(otherSA); got != "ping\n" {
		t.Errorf("authorizer down, failOpen true: got %q, %v, want the echo", got, err)
	}
}
