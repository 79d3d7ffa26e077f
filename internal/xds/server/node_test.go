package server

import (
	"errors"
	"reflect"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/bowline-mesh/bowline/internal/model"
)

func mustStruct(t testing.TB, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseNode(t *testing.T) {
	const id = "sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local"
	tests := []struct {
		name    string
		id      string
		md      map[string]any
		want    *model.Proxy
		wantErr string
	}{
		{name: "minimal", id: id,
			want: &model.Proxy{ID: id, Type: model.SidecarProxy, Namespace: "default", WorkloadName: "reviews-v1", IPs: []string{"10.0.0.1"}}},
		{name: "full", id: id, md: map[string]any{
			"NAMESPACE": "default", "WORKLOAD_NAME": "reviews", "LABELS": map[string]any{"app": "reviews", "version": "v1"},
			"SERVICE_ACCOUNT": "bookinfo-reviews", "INSTANCE_IPS": "10.0.0.1,fd00::1", "BOWLINE_PROXY_TYPE": "sidecar",
			"BOWLINE_INBOUND": "9080=19080", "BOWLINE_OUTBOUND_HTTP": "127.0.0.1:15080"},
			want: &model.Proxy{ID: id, Type: model.SidecarProxy, Namespace: "default", WorkloadName: "reviews",
				Labels: map[string]string{"app": "reviews", "version": "v1"}, ServiceAccount: "bookinfo-reviews",
				IPs: []string{"10.0.0.1", "fd00::1"}, Inbound: []model.PortMapping{{Port: 9080, TargetPort: 19080}}, OutboundHTTP: "127.0.0.1:15080"}},
		{name: "router", id: "router~10.0.0.2~ingress.istio-system~istio-system.svc.cluster.local", md: map[string]any{"BOWLINE_GATEWAY_PORTS": "80=8080,443=8443"},
			want: &model.Proxy{ID: "router~10.0.0.2~ingress.istio-system~istio-system.svc.cluster.local", Type: model.Router, Namespace: "istio-system",
				WorkloadName: "ingress", IPs: []string{"10.0.0.2"}, GatewayPorts: []model.PortMapping{{Port: 80, TargetPort: 8080}, {Port: 443, TargetPort: 8443}}}},
		{name: "router on loopback", id: "router~127.0.0.1~ingress.istio-system~istio-system.svc.cluster.local", md: map[string]any{"BOWLINE_GATEWAY_ADDRESS": "127.0.0.1"},
			want: &model.Proxy{ID: "router~127.0.0.1~ingress.istio-system~istio-system.svc.cluster.local", Type: model.Router, Namespace: "istio-system",
				WorkloadName: "ingress", IPs: []string{"127.0.0.1"}, GatewayAddress: "127.0.0.1"}},
		{name: "bad gateway address", id: id, md: map[string]any{"BOWLINE_GATEWAY_ADDRESS": "localhost"}, wantErr: `invalid node metadata.BOWLINE_GATEWAY_ADDRESS: "localhost": want an IP address`},
		{name: "stats address", id: id, md: map[string]any{"BOWLINE_STATS_ADDRESS": "10.0.0.1:15020"},
			want: &model.Proxy{ID: id, Type: model.SidecarProxy, Namespace: "default", WorkloadName: "reviews-v1", IPs: []string{"10.0.0.1"}, StatsAddress: "10.0.0.1:15020"}},
		{name: "bad stats address", id: id, md: map[string]any{"BOWLINE_STATS_ADDRESS": "pod:15020"}, wantErr: `invalid node metadata.BOWLINE_STATS_ADDRESS: "pod:15020": want IP:PORT`},
		{name: "grpc", id: id, md: map[string]any{"GENERATOR": "grpc"},
			want: &model.Proxy{ID: id, Type: model.SidecarProxy, Namespace: "default", WorkloadName: "reviews-v1", IPs: []string{"10.0.0.1"}, Generator: "grpc"}},
		{name: "empty id", id: "", wantErr: "invalid node id: missing: the first request on a stream must carry the node"},
		{name: "short id", id: "envoy-1", wantErr: `invalid node id: "envoy-1" has 1 fields separated by '~', want 4: TYPE~IP~WORKLOAD.NAMESPACE~DOMAIN`},
		{name: "bad type", id: "gateway~10.0.0.1~a.b~b.svc", wantErr: `invalid node id: proxy type "gateway": want "sidecar" or "router"`},
		{name: "bad ip", id: "sidecar~ten~a.b~b.svc", wantErr: `invalid node id: IP "ten" is not an IP address`},
		{name: "no namespace", id: "sidecar~10.0.0.1~reviews~x", wantErr: `invalid node id: "reviews": want WORKLOAD.NAMESPACE`},
		{name: "namespace mismatch", id: id, md: map[string]any{"NAMESPACE": "prod"}, wantErr: `invalid node metadata.NAMESPACE: "prod" differs from namespace "default" in the node id`},
		{name: "labels not struct", id: id, md: map[string]any{"LABELS": "app=reviews"}, wantErr: "invalid node metadata.LABELS: must be a struct of strings"},
		{name: "label not string", id: id, md: map[string]any{"LABELS": map[string]any{"replicas": 3}}, wantErr: "invalid node metadata.LABELS.replicas: must be a string"},
		{name: "namespace not string", id: id, md: map[string]any{"NAMESPACE": true}, wantErr: "invalid node metadata.NAMESPACE: must be a string"},
		{name: "bad instance ip", id: id, md: map[string]any{"INSTANCE_IPS": "10.0.0.1,nope"}, wantErr: `invalid node metadata.INSTANCE_IPS: "nope" is not an IP address`},
		{name: "bad inbound", id: id, md: map[string]any{"BOWLINE_INBOUND": "9080"}, wantErr: `invalid node metadata.BOWLINE_INBOUND: "9080": want PORT=PORT`},
		{name: "inbound port range", id: id, md: map[string]any{"BOWLINE_INBOUND": "9080=70000"}, wantErr: `invalid node metadata.BOWLINE_INBOUND: "9080=70000": ports must be numbers from 1 to 65535`},
		{name: "inbound twice", id: id, md: map[string]any{"BOWLINE_INBOUND": "9080=1,9080=2"}, wantErr: "invalid node metadata.BOWLINE_INBOUND: port 9080 listed twice"},
		{name: "bad generator", id: id, md: map[string]any{"GENERATOR": "envoy"}, wantErr: `invalid node metadata.GENERATOR: "envoy": the only generator is "grpc" (or none, for proxies)`},
		{name: "type mismatch", id: id, md: map[string]any{"BOWLINE_PROXY_TYPE": "router"}, wantErr: `invalid node metadata.BOWLINE_PROXY_TYPE: "router" differs from type "sidecar" in the node id`},
		{name: "bad outbound", id: id, md: map[string]any{"BOWLINE_OUTBOUND_HTTP": "localhost:80"}, wantErr: `invalid node metadata.BOWLINE_OUTBOUND_HTTP: "localhost:80": want IP:PORT`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &core.Node{Id: tt.id}
			if tt.md != nil {
				n.Metadata = mustStruct(t, tt.md)
			}
			got, err := ParseNode(n)
			if tt.wantErr != "" {
				var ne *NodeError
				if err == nil || !errors.As(err, &ne) || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseNode(f *testing.F) {
	f.Add("sidecar~10.0.0.1~a.b~b.svc.cluster.local", "b", "a", "9080=1", "10.0.0.1")
	f.Add("router~::1~gw.istio-system~x", "", "", "80=8080,443=8443", "::1,10.0.0.2")
	f.Add("~~~", "", "", "=", ",")
	f.Fuzz(func(t *testing.T, id, ns, workload, inbound, ips string) {
		n := &core.Node{Id: id, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			"NAMESPACE": structpb.NewStringValue(ns), "WORKLOAD_NAME": structpb.NewStringValue(workload),
			"BOWLINE_INBOUND": structpb.NewStringValue(inbound), "INSTANCE_IPS": structpb.NewStringValue(ips)}}}
		p, err := ParseNode(n)
		if err != nil {
			return
		}
		if p.ID != id || p.Namespace == "" || len(p.IPs) == 0 {
			t.Fatalf("accepted node with missing fields: %+v", p)
		}
		for _, m := range p.Inbound {
			if m.Port == 0 || m.TargetPort == 0 || m.Port > 65535 {
				t.Fatalf("bad port mapping accepted: %+v", m)
			}
		}
	})
}
