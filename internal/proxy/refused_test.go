package proxy_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// refusingH2Upstream is an h2c server that resets the first refuse streams
// with REFUSED_STREAM and answers the rest with 200 "served".
func refusingH2Upstream(t *testing.T, refuse int32) (addr string, streams *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	streams = new(atomic.Int32)
	serve := func(c net.Conn) {
		defer c.Close()
		if _, err := io.ReadFull(c, make([]byte, len(http2.ClientPreface))); err != nil {
			return
		}
		fr := http2.NewFramer(c, c)
		if fr.WriteSettings() != nil {
			return
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			case *http2.HeadersFrame:
				if streams.Add(1) <= refuse {
					_ = fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
					continue
				}
				var hb bytes.Buffer
				enc := hpack.NewEncoder(&hb)
				_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: hb.Bytes(), EndHeaders: true})
				_ = fr.WriteData(f.StreamID, true, []byte("served"))
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String(), streams
}

// TestRetryOnRefusedStream: requests an HTTP/2 upstream refused
// (REFUSED_STREAM: not processed) are sent again, also with a body, which
// the proxy keeps for retries. Go's HTTP/2 client resends them itself once
// it can rewind the body, so this holds whatever retry_on says: Istio's
// default retry_on includes refused-stream.
func TestRetryOnRefusedStream(t *testing.T) {
	up, streams := refusingH2Upstream(t, 2)
	lp := freePort(t)
	r := routeTo("/", "h2")
	r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "refused-stream", NumRetries: wrapperspb.UInt32(2)}
	c := edsCluster("h2")
	c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
	newEnv(t, resources(
		[]types.Resource{listenerOf(t, "l", "127.0.0.1", lp, true, hcmFilter(t, "r"))},
		[]types.Resource{routeConfig("r", r)},
		[]types.Resource{c}, []types.Resource{cla("h2", up)}))
	resp, err := http.Post("http://"+hostPort(lp)+"/p", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "served" || streams.Load() != 3 {
		t.Errorf("POST against two refused streams: %d %q after %d streams, want 200 \"served\" after 3", resp.StatusCode, b, streams.Load())
	}
}
