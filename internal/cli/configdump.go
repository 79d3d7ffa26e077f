package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// configDump is a proxy's /config_dump read into typed resources.
type configDump struct {
	bootstrap *bootstrapv3.Bootstrap
	clusters  []*clusterv3.Cluster
	listeners []*listenerv3.Listener
	routes    []*routev3.RouteConfiguration
	endpoints []*endpointv3.ClusterLoadAssignment
}

// adminGet fetches path from a proxy's admin address.
func adminGet(ctx context.Context, admin, path string) ([]byte, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+path, nil)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("admin address %q: %w", admin, err)}
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("proxy admin %s: %w", admin, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("proxy admin %s%s: %w", admin, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy admin %s%s: status %d: %s", admin, path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// fetchConfigDump reads /config_dump (with endpoints when eds) in Envoy's form.
func fetchConfigDump(ctx context.Context, admin string, eds bool) (*configDump, error) {
	path := "/config_dump"
	if eds {
		path += "?include_eds"
	}
	body, err := adminGet(ctx, admin, path)
	if err != nil {
		return nil, err
	}
	return parseConfigDump(body)
}

// parseConfigDump reads Envoy's config dump JSON. Fields other than
// "configs" (Bowline's xDS client state) are ignored.
func parseConfigDump(body []byte) (*configDump, error) {
	var top struct {
		Configs []json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("config dump: %w", err)
	}
	out := &configDump{}
	uo := protojson.UnmarshalOptions{DiscardUnknown: true}
	for i, raw := range top.Configs {
		var a anypb.Any
		if err := uo.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("config dump: configs[%d]: %w", i, err)
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			return nil, fmt.Errorf("config dump: configs[%d]: %w", i, err)
		}
		if err := out.add(m); err != nil {
			return nil, fmt.Errorf("config dump: configs[%d] (%s): %w", i, a.GetTypeUrl(), err)
		}
	}
	return out, nil
}

func (d *configDump) add(m proto.Message) error {
	switch v := m.(type) {
	case *adminv3.BootstrapConfigDump:
		d.bootstrap = v.GetBootstrap()
	case *adminv3.ClustersConfigDump:
		for _, c := range v.GetStaticClusters() {
			if err := unpack(c.GetCluster(), &d.clusters); err != nil {
				return err
			}
		}
		for _, c := range v.GetDynamicActiveClusters() {
			if err := unpack(c.GetCluster(), &d.clusters); err != nil {
				return err
			}
		}
	case *adminv3.ListenersConfigDump:
		for _, l := range v.GetStaticListeners() {
			if err := unpack(l.GetListener(), &d.listeners); err != nil {
				return err
			}
		}
		for _, l := range v.GetDynamicListeners() {
			if err := unpack(l.GetActiveState().GetListener(), &d.listeners); err != nil {
				return err
			}
		}
	case *adminv3.RoutesConfigDump:
		for _, r := range v.GetStaticRouteConfigs() {
			if err := unpack(r.GetRouteConfig(), &d.routes); err != nil {
				return err
			}
		}
		for _, r := range v.GetDynamicRouteConfigs() {
			if err := unpack(r.GetRouteConfig(), &d.routes); err != nil {
				return err
			}
		}
	case *adminv3.EndpointsConfigDump:
		for _, e := range v.GetStaticEndpointConfigs() {
			if err := unpack(e.GetEndpointConfig(), &d.endpoints); err != nil {
				return err
			}
		}
		for _, e := range v.GetDynamicEndpointConfigs() {
			if err := unpack(e.GetEndpointConfig(), &d.endpoints); err != nil {
				return err
			}
		}
	}
	return nil
}

// unpack appends the message in a (if any) to list.
func unpack[T any, PT interface {
	*T
	proto.Message
}](a *anypb.Any, list *[]PT) error {
	if a == nil {
		return nil
	}
	m := PT(new(T))
	if err := a.UnmarshalTo(m); err != nil {
		return err
	}
	*list = append(*list, m)
	return nil
}
