package e2e

// The loopback servers and clients the end-to-end tests share: HTTP, HTTPS
// and raw TCP servers on 127.0.0.1 that stop when the test ends, an HTTPS
// client pinned to one address, and a throwaway CA for their certificates.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveHTTP serves h on ln until the test ends and returns ln's port.
func serveHTTP(t *testing.T, ln net.Listener, h http.Handler) int {
	t.Helper()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: h}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

// startHandler serves h on a loopback port until the test ends.
func startHandler(t *testing.T, h http.Handler) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveHTTP(t, ln, h)
}

// startNamedBackend answers every request with "<name> <request URI>".
func startNamedBackend(t *testing.T, name string) int {
	t.Helper()
	return startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.RequestURI())
	}))
}

// startTLSBackend serves HTTPS with cert on loopback, answering "<name>
// <path>"; it is the TLS backend a PASSTHROUGH server forwards to.
func startTLSBackend(t *testing.T, name string, cert tls.Certificate) int {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	return serveHTTP(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close") // every request on a new connection (a new handshake)
		fmt.Fprintf(w, "%s %s sni=%s", name, r.URL.Path, r.TLS.ServerName)
	}))
}

// serveTCP calls handle with each connection to a loopback port until the
// test ends, and closes the connection when handle returns.
func serveTCP(t *testing.T, handle func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); handle(c) }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

// startTCPEcho echoes every connection's bytes back.
func startTCPEcho(t *testing.T) int {
	t.Helper()
	return serveTCP(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
}

// startNamedTCPEcho answers each connection with "<name>\n", then echoes lines.
func startNamedTCPEcho(t *testing.T, name string) int {
	t.Helper()
	return serveTCP(t, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "%s\n", name)
		_, _ = io.Copy(c, c)
	})
}

// tcpHello connects to addr, reads the backend's name line, and checks one
// echoed line.
func tcpHello(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	name, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	fmt.Fprint(c, "ping\n")
	if echo, err := br.ReadString('\n'); err != nil || echo != "ping\n" {
		return "", fmt.Errorf("echo %q: %v", echo, err)
	}
	return strings.TrimSpace(name), nil
}

// tcpSpread makes n tcpHello connections to addr and counts the backends
// that answered.
func tcpSpread(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		name, err := tcpHello(addr)
		if err != nil {
			t.Fatalf("TCP to %s: %v", addr, err)
		}
		seen[name]++
	}
	return seen
}

// testCA is a throwaway certificate authority for gateway credentials.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: pool}
}

// issued is a leaf certificate with its key, PEM and as tls.Certificate.
type issued struct {
	certPEM, keyPEM []byte
	leaf            *x509.Certificate
	tls             tls.Certificate
}

// issue signs a leaf for dns names (server and client use).
func (ca *testCA) issue(t *testing.T, cn string, dns ...string) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A random 128-bit serial: unique across CAs and tests, so a test can
	// tell which leaf a peer presented by its serial.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := issued{certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})}
	out.leaf, _ = x509.ParseCertificate(der)
	if out.tls, err = tls.X509KeyPair(out.certPEM, out.keyPEM); err != nil {
		t.Fatal(err)
	}
	return out
}

// tlsResult is what one HTTPS request through the gateway saw.
type tlsResult struct {
	status int
	body   string
	header http.Header
	peer   *x509.Certificate // the gateway's leaf
	reused bool              // the request went on an existing connection
}

// httpsClient talks to addr whatever the URL's host, with SNI sni.
func httpsClient(addr, sni string, cfg *tls.Config) *http.Client {
	cfg = cfg.Clone()
	cfg.ServerName = sni
	return &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: cfg, ForceAttemptHTTP2: false,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
			}}}
}

func httpsGet(c *http.Client, host, path string) (tlsResult, error) {
	var res tlsResult
	req, err := http.NewRequest(http.MethodGet, "https://"+host+path, nil)
	if err != nil {
		return res, err
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { res.reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	res.status, res.body, res.header = resp.StatusCode, string(b), resp.Header
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		res.peer = resp.TLS.PeerCertificates[0]
	}
	return res, nil
}
