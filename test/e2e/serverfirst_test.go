package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/registry"
)

// This file proves a server-first protocol (the server greets before the
// client says anything, as MySQL and SMTP do; Istio issue #10062) works
// through sidecars: over mTLS between two sidecars, and from a plaintext
// client to a PERMISSIVE sidecar once MeshConfig protocolDetectionTimeout
// lets the TLS inspector give up waiting for the client's first bytes.

const (
	dbHost   = "db.prod.svc.cluster.local"
	dbPort   = 3306
	greeting = "220 db ready"
)

// startGreeter serves a server-first protocol: a greeting line on accept,
// then every line echoed back.
func startGreeter(t *testing.T) int {
	t.Helper()
	return serveTCP(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "%s\r\n", greeting)
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "echo %s", line)
		}
	})
}

// greeted reads the greeting without sending anything first, then checks
// one echo.
func greeted(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != greeting {
		t.Fatalf("greeting: %q (%v), want %q before the client sent a byte", line, err, greeting)
	}
	fmt.Fprintf(c, "hello\n")
	if line, err := r.ReadString('\n'); err != nil || line != "echo hello\n" {
		t.Fatalf("echo: %q (%v)", line, err)
	}
}

func TestServerFirstProtocolEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	m := startMesh(t)
	writeAtomic(t, filepath.Join(m.configDir, "db-service.yaml"), fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: prod}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: %d, name: mysql}]
  workloadSelector: {labels: {app: db}}
`, dbHost, dbPort))
	appPort := startGreeter(t)
	inPort := freePort(t)
	server := m.startSidecar(t, sidecarOptions{namespace: "prod", sa: "db", workload: "db", inbound: map[uint32]uint32{uint32(inPort): uint32(appPort)}})
	if err := m.reg.Register(registry.Workload{Name: "db", Namespace: "prod", Address: "127.0.0.1",
		Ports: map[string]uint32{"mysql": uint32(inPort)}, Labels: map[string]string{"app": "db"}, ServiceAccount: "db", Healthy: true}); err != nil {
		t.Fatal(err)
	}
	client := m.startSidecar(t, sidecarOptions{namespace: "prod", sa: "app", workload: "app", outbound: true})
	client.waitConfig(t, fmt.Sprintf("outbound|%d||%s", dbPort, dbHost))

	t.Run("through two sidecars over mTLS", func(t *testing.T) {
		// The tunnel answers 200 before its upstream connects: until the db
		// endpoint reaches the client sidecar (UH) the tunnel just closes.
		deadline := time.Now().Add(15 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", client.outbound, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n", dbHost, dbPort, dbHost, dbPort)
			r := bufio.NewReader(c)
			resp, err := http.ReadResponse(r, &http.Request{Method: http.MethodConnect})
			var line string
			if err == nil && resp.StatusCode == http.StatusOK {
				line, err = r.ReadString('\n')
			}
			if err == nil && strings.TrimSpace(line) == greeting {
				fmt.Fprintf(c, "hello\n")
				if line, err := r.ReadString('\n'); err != nil || line != "echo hello\n" {
					t.Fatalf("echo through the tunnel: %q (%v)", line, err)
				}
				_ = c.Close()
				break
			}
			_ = c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("CONNECT %s:%d through the client sidecar: greeting %q, %v; client log:\n%s", dbHost, dbPort, line, err, tail(client.log.String(), 3))
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("plaintext client to PERMISSIVE with protocolDetectionTimeout", func(t *testing.T) {
		writeAtomic(t, filepath.Join(m.configDir, "mesh.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    protocolDetectionTimeout: 200ms\n")
		server.waitConfig(t, `"listener_filters_timeout": "0.200s"`)
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", inPort), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		greeted(t, c, bufio.NewReader(c))
	})
}
