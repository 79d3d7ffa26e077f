package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// A client whose ALPN offer shares nothing with the listener's protocols
// handshakes without ALPN, as with Envoy (an Istio sidecar offers
// istio-http/1.1 and istio-h2 first); a shared protocol is still negotiated.
func TestServerTLSUnsharedALPN(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"server"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	srv := (&Proxy{}).serverTLS(&xdsconfig.TLSContext{Cert: cert, ALPN: []string{"h2", "http/1.1"}})

	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{offer: []string{"istio-http/1.1", "istio"}, want: ""},
		{offer: []string{"istio-h2"}, want: ""},
		{offer: []string{"istio-h2", "h2"}, want: "h2"},
		{offer: nil, want: ""},
	} {
		c, s := net.Pipe()
		errc := make(chan error, 1)
		go func() {
			ss := tls.Server(s, srv)
			errc <- ss.Handshake()
			_ = ss.Close()
		}()
		cc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: tc.offer})
		if err := cc.Handshake(); err != nil {
			t.Fatalf("offer %q: client handshake: %v", tc.offer, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("offer %q: server handshake: %v", tc.offer, err)
		}
		if got := cc.ConnectionState().NegotiatedProtocol; got != tc.want {
			t.Errorf("offer %q: negotiated %q, want %q", tc.offer, got, tc.want)
		}
		_ = cc.Close()
	}
}
