package extauthz

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// Dialer connects to a host of a cluster of the configuration in force
// (TLS included when the cluster's transport socket asks for it).
type Dialer interface {
	DialCluster(ctx context.Context, cluster string) (net.Conn, error)
}

// Pool holds the connections to authorization services, one gRPC client
// or HTTP transport per cluster and authority, shared by every filter and
// config snapshot that names them. Safe for concurrent use.
type Pool struct {
	dial Dialer
	mu   sync.Mutex
	grpc map[poolKey]*grpc.ClientConn
	http map[string]*http.Transport
}

type poolKey struct{ cluster, authority string }

// NewPool returns an empty pool dialing through d.
func NewPool(d Dialer) *Pool {
	return &Pool{dial: d, grpc: map[poolKey]*grpc.ClientConn{}, http: map[string]*http.Transport{}}
}

// Filter returns the runtime filter of cfg.
func (p *Pool) Filter(cfg *Config) *Filter {
	if cfg.Protocol == HTTP {
		return &Filter{cfg: cfg, c: &httpChecker{client: &http.Client{Transport: p.transport(cfg.Cluster),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}}
	}
	return &Filter{cfg: cfg, c: newGRPCChecker(p, cfg)}
}

// Close closes every connection; filters of the pool then fail their checks.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.grpc {
		_ = c.Close()
		delete(p.grpc, k)
	}
	for k, t := range p.http {
		t.CloseIdleConnections()
		delete(p.http, k)
	}
}

func (p *Pool) transport(cluster string) *http.Transport {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.http[cluster]; t != nil {
		return t
	}
	t := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return p.dial.DialCluster(ctx, cluster)
		},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	p.http[cluster] = t
	return t
}

// conn returns the gRPC client of a cluster, created on first use. The
// reconnect backoff stays short (at most a second) so a service that comes
// back is used again soon, as Envoy connects per request when it has none.
func (p *Pool) conn(cluster, authority string) (*grpc.ClientConn, error) {
	k := poolKey{cluster, authority}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.grpc[k]; c != nil {
		return c, nil
	}
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = 50*time.Millisecond, time.Second
	c, err := grpc.NewClient("passthrough:///"+authority,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority(authority),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: time.Second}),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return p.dial.DialCluster(ctx, cluster)
		}))
	if err != nil {
		return nil, err
	}
	p.grpc[k] = c
	return c, nil
}
