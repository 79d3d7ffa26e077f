package ratelimit

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// Verdict is a rate limit service's answer.
type Verdict struct {
	// OverLimit: the service says the request is over a limit.
	OverLimit bool
	// ResponseHeaders go on the answer (limited or not); RequestHeaders on
	// the request sent upstream.
	ResponseHeaders, RequestHeaders []xdsconfig.HeaderValue
	// Limit, Remaining and Reset come from the descriptor status with the
	// fewest remaining requests, when the service reports one (Bucketed).
	Limit, Remaining uint32
	Reset            time.Duration
	Bucketed         bool
}

// Check asks the envoy.service.ratelimit.v3 RateLimitService on conn
// whether one request with descs is within the limits of domain.
func Check(ctx context.Context, conn grpc.ClientConnInterface, domain string, descs []Descriptor) (Verdict, error) {
	req := &rlsv3.RateLimitRequest{Domain: domain, HitsAddend: 1}
	for _, d := range descs {
		rd := &commonrlv3.RateLimitDescriptor{}
		for _, e := range d {
			rd.Entries = append(rd.Entries, &commonrlv3.RateLimitDescriptor_Entry{Key: e.Key, Value: e.Value})
		}
		req.Descriptors = append(req.Descriptors, rd)
	}
	resp, err := rlsv3.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, req)
	if err != nil {
		return Verdict{}, fmt.Errorf("rate limit service: %w", err)
	}
	var v Verdict
	switch resp.GetOverallCode() {
	case rlsv3.RateLimitResponse_OK:
	case rlsv3.RateLimitResponse_OVER_LIMIT:
		v.OverLimit = true
	default:
		return Verdict{}, fmt.Errorf("rate limit service: overall code %v", resp.GetOverallCode())
	}
	v.ResponseHeaders = headerValues(resp.GetResponseHeadersToAdd())
	v.RequestHeaders = headerValues(resp.GetRequestHeadersToAdd())
	for _, s := range resp.GetStatuses() {
		if s.GetCurrentLimit() == nil {
			continue
		}
		if !v.Bucketed || s.GetLimitRemaining() < v.Remaining {
			v.Limit, v.Remaining, v.Reset, v.Bucketed = s.GetCurrentLimit().GetRequestsPerUnit(), s.GetLimitRemaining(),
				s.GetDurationUntilReset().AsDuration(), true
		}
	}
	return v, nil
}

func headerValues(hs []*corev3.HeaderValue) []xdsconfig.HeaderValue {
	var out []xdsconfig.HeaderValue
	for _, h := range hs {
		if h.GetKey() == "" {
			continue
		}
		out = append(out, xdsconfig.HeaderValue{Key: strings.ToLower(h.GetKey()), Value: h.GetValue(),
			Action: xdsconfig.OverwriteIfExistsOrAdd})
	}
	return out
}
