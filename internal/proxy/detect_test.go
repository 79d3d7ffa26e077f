package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The greeter speaks a server-first protocol (as MySQL and SMTP do): a
// greeting on accept, then every line echoed.
const detectGreeting = "220 greeter ready"

func startGreeterTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				fmt.Fprintf(c, "%s\r\n", detectGreeting)
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					fmt.Fprintf(c, "echo %s", line)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// sniffedListener is Istio's listener of an undeclared (auto-detected)
// port: the http_inspector, an HTTP chain matched by the application
// protocols it detects, and the TCP chain for everything else, which a
// client still silent at listener_filters_timeout gets
// (continue_on_listener_filters_timeout).
func sniffedListener(t *testing.T, name string, p int, timeout time.Duration, disabled *listenerv3.ListenerFilterChainMatchPredicate) *listenerv3.Listener {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: "sniffed"}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: anyOf(t, &routerv3.Router{})}}},
	}
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddr("127.0.0.1", uint32(p)),
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.http_inspector",
			ConfigType:     &listenerv3.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, &httpinspectorv3.HttpInspector{})},
			FilterDisabled: disabled}},
		ListenerFiltersTimeout:           durationpb.New(timeout),
		ContinueOnListenerFiltersTimeout: true,
		FilterChains: []*listenerv3.FilterChain{{
			Name:             "http",
			FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "h2c"}},
			Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: anyOf(t, hcm)}}},
		}},
		DefaultFilterChain: &listenerv3.FilterChain{Name: "tcp", Filters: []*listenerv3.Filter{tcpFilter(t, "greeter")}},
	}
}

// TestProtocolDetection: on a listener with the http_inspector, HTTP/1.1
// and h2c clients are served by the HTTP chain (its route answers), a
// silent client of a server-first protocol gets the TCP chain's greeting
// once the detection timeout passes, and a port the inspector is disabled
// for (filter_disabled) is not inspected at all: the greeting comes
// without waiting on a timeout of an hour.
func TestProtocolDetection(t *testing.T) {
	cp := startControlPlane(t, "")
	greeter := startGreeterTCP(t)
	web := startBackend(t, "web", nil)
	sniffedPort, disabledPort := freePort(t), freePort(t)
	off := &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
		DestinationPortRange: &typev3.Int32Range{Start: int32(disabledPort), End: int32(disabledPort + 1)}}}
	rc := routeConfig("sniffed", routeTo("/", "web"))
	rc.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-chain", Value: "http"}}}
	cp.push(t, map[resource.Type][]types.Resource{
		resource.ListenerType: {
			sniffedListener(t, "sniffed", sniffedPort, 200*time.Millisecond, nil),
			sniffedListener(t, "disabled", disabledPort, time.Hour, off),
		},
		resource.RouteType:    {rc},
		resource.ClusterType:  {edsCluster("web"), edsCluster("greeter")},
		resource.EndpointType: {cla("web", web.addr), cla("greeter", greeter)},
	})
	startProxy(t, cp.addr, false)
	sniffedAddr := fmt.Sprintf("127.0.0.1:%d", sniffedPort)

	t.Run("HTTP/1.1 takes the HTTP chain", func(t *testing.T) {
		var resp *http.Response
		var body string
		waitFor(t, "an answer through the HTTP chain", func() bool {
			r, err := http.Get("http://" + sniffedAddr + "/x")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(r.Body)
			_ = r.Body.Close()
			resp, body = r, string(b)
			return r.StatusCode == http.StatusOK
		})
		if body != "web" || resp.Header.Get("x-chain") != "http" || resp.Header.Get("x-seen-path") != "/x" {
			t.Fatalf("got %q, headers %v; want web's answer with the route's x-chain: http", body, resp.Header)
		}
	})
	t.Run("h2c prior knowledge takes the HTTP chain", func(t *testing.T) {
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("http://" + sniffedAddr + "/h2")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.Header.Get("x-chain") != "http" || resp.Header.Get("x-backend") != "web" {
			t.Fatalf("got %s %d %v; want HTTP/2 through the HTTP chain to web", resp.Proto, resp.StatusCode, resp.Header)
		}
	})
	greet := func(t *testing.T, addr string) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n') // the client sends nothing first
		if err != nil || strings.TrimSpace(line) != detectGreeting {
			t.Fatalf("greeting %q, %v; want %q", line, err, detectGreeting)
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\n") // HTTP-looking bytes after detection stay TCP
		if line, err := r.ReadString('\n'); err != nil || line != "echo GET / HTTP/1.1\n" {
			t.Fatalf("echo %q, %v", line, err)
		}
	}
	t.Run("a silent client gets the TCP chain after the timeout", func(t *testing.T) {
		greet(t, sniffedAddr)
	})
	t.Run("a client of a non-HTTP protocol gets the TCP chain at once", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", sniffedAddr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "*1\r\n") // RESP (Redis): not a request line
		r := bufio.NewReader(c)
		if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != detectGreeting {
			t.Fatalf("greeting %q, %v", line, err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "echo *1\r\n" {
			t.Fatalf("echo %q, %v", line, err)
		}
	})
	t.Run("filter_disabled port is not inspected", func(t *testing.T) {
		greet(t, fmt.Sprintf("127.0.0.1:%d", disabledPort))
	})
}
