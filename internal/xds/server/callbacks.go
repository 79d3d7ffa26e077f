package server

import (
	"context"
	"log/slog"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// callbacks identify proxies on their first request and track what each
// stream was sent and acknowledged. go-control-plane calls them
// synchronously from the stream's goroutine.
type callbacks struct {
	log     *slog.Logger
	tracker *tracker
	pusher  *pusher
	metrics *metrics
	now     func() time.Time
}

var _ serverv3.Callbacks = (*callbacks)(nil)

// streamKey tells SotW and delta streams apart: their ids are counted separately.
type streamKey struct {
	delta bool
	id    int64
}

// OnStreamOpen accepts every stream; identity comes with the first request.
func (c *callbacks) OnStreamOpen(context.Context, int64, string) error { return nil }

// OnStreamClosed forgets the stream.
func (c *callbacks) OnStreamClosed(id int64, _ *core.Node) { c.closed(streamKey{id: id}) }

// OnDeltaStreamOpen accepts every stream.
func (c *callbacks) OnDeltaStreamOpen(context.Context, int64, string) error { return nil }

// OnDeltaStreamClosed forgets the stream.
func (c *callbacks) OnDeltaStreamClosed(id int64, _ *core.Node) {
	c.closed(streamKey{delta: true, id: id})
}

// OnStreamRequest identifies the proxy and records ACKs and NACKs. A NACKed
// version is not sent again: the request is marked as knowing it, so the
// cache answers only with a newer one (Istio does not resend on NACK either).
func (c *callbacks) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	key := streamKey{id: id}
	if err := c.identify(key, req.GetNode()); err != nil {
		return err
	}
	errText := nackText(req.GetErrorDetail())
	if res, version := c.tracker.request(key, req.GetTypeUrl(), req.GetResponseNonce(), errText); res == nacked {
		c.nacked(key, req.GetTypeUrl(), version, errText)
		req.VersionInfo = version
	}
	return nil
}

// OnStreamResponse records what was sent.
func (c *callbacks) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	c.sent(streamKey{id: id}, resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce())
}

// OnStreamDeltaRequest identifies the proxy and records ACKs and NACKs.
func (c *callbacks) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	key := streamKey{delta: true, id: id}
	if err := c.identify(key, req.GetNode()); err != nil {
		return err
	}
	errText := nackText(req.GetErrorDetail())
	if res, version := c.tracker.request(key, req.GetTypeUrl(), req.GetResponseNonce(), errText); res == nacked {
		c.nacked(key, req.GetTypeUrl(), version, errText)
	}
	return nil
}

// OnStreamDeltaResponse records what was sent.
func (c *callbacks) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	c.sent(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetSystemVersionInfo(), resp.GetNonce())
}

// nackText is the error a request reports: "" for an ACK.
func nackText(detail *rpcstatus.Status) string {
	if detail != nil && detail.GetMessage() == "" {
		return "rejected without a message"
	}
	return detail.GetMessage()
}

// OnFetchRequest refuses REST/unary fetches: only ADS is served.
func (c *callbacks) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error {
	return status.Error(codes.Unimplemented, "only the aggregated discovery service (ADS) is served")
}

// OnFetchResponse is never called: fetches are refused.
func (c *callbacks) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

// identify parses the node on a stream's first request.
func (c *callbacks) identify(key streamKey, n *core.Node) error {
	if c.tracker.proxy(key) != nil {
		return nil
	}
	p, err := ParseNode(n)
	if err != nil {
		c.metrics.rejectedClients.Inc()
		c.log.Info("xds stream rejected", slog.String(attrProxy, n.GetId()), slog.String(attrError, err.Error()))
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if c.tracker.connect(key, p) {
		c.metrics.connected.Inc()
		c.log.Info("proxy connected", slog.String(attrProxy, p.ID), slog.Bool("delta", key.delta))
		c.pusher.connect(p)
	}
	return nil
}

func (c *callbacks) closed(key streamKey) {
	p := c.tracker.disconnect(key)
	if p == nil {
		return
	}
	c.metrics.connected.Dec()
	c.pusher.disconnect(p.ID)
	c.log.Info("proxy disconnected", slog.String(attrProxy, p.ID))
}

func (c *callbacks) sent(key streamKey, typeURL, version, nonce string) {
	p := c.tracker.sent(key, typeURL, version, nonce)
	if p == nil {
		return
	}
	c.metrics.pushes.WithLabelValues(metricType(typeURL)).Inc()
	if at := c.pusher.lastSet(p.ID); !at.IsZero() {
		c.metrics.pushTime.WithLabelValues(metricType(typeURL)).Observe(c.now().Sub(at).Seconds())
	}
}

func (c *callbacks) nacked(key streamKey, typeURL, version, errText string) {
	c.metrics.rejects.WithLabelValues(metricType(typeURL)).Inc()
	id := ""
	if p := c.tracker.proxy(key); p != nil {
		id = p.ID
	}
	c.log.Info("proxy rejected config", slog.String(attrProxy, id), slog.String(attrType, shortType(typeURL)),
		slog.String(attrVersion, version), slog.String(attrError, errText))
}
