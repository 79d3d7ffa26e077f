package xds_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/bowline-mesh/bowline/internal/config"
	"github.com/bowline-mesh/bowline/internal/model"
	"github.com/bowline-mesh/bowline/internal/registry"
	"github.com/bowline-mesh/bowline/internal/xds"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// load parses the named files under testdata.
func load(t *testing.T, files ...string) []*config.Object {
	t.Helper()
	var objs []*config.Object
	for _, f := range files {
		path := filepath.Join("testdata", f)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res := config.Parse(path, data, config.ParseOptions{})
		if len(res.Problems) > 0 {
			t.Fatalf("%s: %v", path, res.Problems)
		}
		objs = append(objs, res.Objects...)
	}
	return objs
}

// registered are the Bookinfo workloads that join through Register, as
// `bowline up` adds them: reviews v3, one healthy and one unhealthy instance.
var registered = []registry.Workload{
	{Name: "reviews-v3", Namespace: "default", Address: "10.0.0.14", Ports: map[string]uint32{"http": 9080},
		Labels: map[string]string{"app": "reviews", "version": "v3"}, ServiceAccount: "bookinfo-reviews",
		Locality: "us-east/zone-b", Healthy: true},
	{ID: "reviews-v3-b", Name: "reviews-v3", Namespace: "default", Address: "10.0.0.16",
		Labels: map[string]string{"app": "reviews", "version": "v3"}, ServiceAccount: "bookinfo-reviews",
		Locality: "us-east/zone-b", Healthy: false},
}

func snapshot(t *testing.T, files ...string) *model.Snapshot {
	t.Helper()
	objs := load(t, files...)
	reg := registry.New(nil)
	reg.SetConfig(objs)
	for _, w := range registered {
		if err := reg.Register(w); err != nil {
			t.Fatal(err)
		}
	}
	return model.Build(objs, reg.View(), model.Options{})
}

var (
	sidecar = &model.Proxy{
		ID: "sidecar~10.0.0.10~productpage-v1.default~default.svc.cluster.local", Type: model.SidecarProxy,
		Namespace: "default", WorkloadName: "productpage-v1", ServiceAccount: "bookinfo-productpage",
		Labels: map[string]string{"app": "productpage", "version": "v1"}, IPs: []string{"10.0.0.10"},
		Inbound: []model.PortMapping{{Port: 9080, TargetPort: 19080}}, OutboundHTTP: "127.0.0.1:15080",
	}
	router = &model.Proxy{
		ID: "router~10.0.0.2~ingressgateway.istio-system~istio-system.svc.cluster.local", Type: model.Router,
		Namespace: "istio-system", WorkloadName: "ingressgateway", Labels: map[string]string{"istio": "ingressgateway"},
		IPs: []string{"10.0.0.2"}, GatewayPorts: []model.PortMapping{{Port: 8080, TargetPort: 18080}},
	}
	grpcClient = &model.Proxy{
		ID: "sidecar~10.0.0.40~grpc-client.default~default.svc.cluster.local", Type: model.SidecarProxy,
		Namespace: "default", WorkloadName: "grpc-client", Labels: map[string]string{"app": "grpc-client"},
		IPs: []string{"10.0.0.40"}, Generator: "grpc",
	}
)

const (
	svcs = "bookinfo/services.yaml"
	drs  = "bookinfo/destination-rule-all.yaml"
	gw   = "bookinfo/bookinfo-gateway.yaml"
)

func TestGolden(t *testing.T) {
	cases := []struct {
		name  string
		files []string
		proxy *model.Proxy
	}{
		{"sidecar-no-vs", []string{svcs}, sidecar},
		{"sidecar-all-v1", []string{svcs, drs, "bookinfo/virtual-service-all-v1.yaml"}, sidecar},
		{"sidecar-reviews-80-20", []string{svcs, drs, "bookinfo/virtual-service-reviews-80-20.yaml"}, sidecar},
		{"sidecar-reviews-jason", []string{svcs, drs, "bookinfo/virtual-service-reviews-jason-v2-v3.yaml"}, sidecar},
		{"sidecar-reviews-50-v3", []string{svcs, drs, "bookinfo/virtual-service-reviews-50-v3.yaml"}, sidecar},
		{"sidecar-ratings-delay", []string{svcs, drs, "bookinfo/virtual-service-ratings-test-delay.yaml"}, sidecar},
		{"sidecar-ratings-abort", []string{svcs, drs, "bookinfo/virtual-service-ratings-test-abort.yaml"}, sidecar},
		{"sidecar-features", []string{svcs, drs, "features/features.yaml"}, sidecar},
		{"sidecar-registry-only", []string{svcs, "egress/registry-only.yaml"}, sidecar},
		{"router-bookinfo", []string{svcs, drs, gw}, router},
		{"router-tls", []string{svcs, drs, "gateway/tls.yaml"}, router},
		{"grpc-all-v1", []string{svcs, drs, "bookinfo/virtual-service-all-v1.yaml"}, grpcClient},
		{"grpc-features", []string{svcs, drs, "features/features.yaml"}, grpcClient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap := snapshot(t, tc.files...)
			res := xds.Generate(snap, tc.proxy)
			validateAll(t, res)
			again := xds.Generate(snap, tc.proxy)
			for typ, v := range res.Versions {
				if again.Versions[typ] != v {
					t.Errorf("version of %s not stable: %s then %s", typ, v, again.Versions[typ])
				}
			}
			compareGolden(t, filepath.Join("testdata", tc.name+".golden"), render(t, res))
		})
	}
}

func render(t *testing.T, res xds.Resources) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, part := range []struct {
		title string
		rs    []types.Resource
	}{{"listeners", res.Listeners}, {"routes", res.Routes}, {"clusters", res.Clusters}, {"endpoints", res.Endpoints}, {"secrets", res.Secrets}} {
		if part.title == "secrets" && len(part.rs) == 0 {
			continue // only gateways with credentials have SDS secrets
		}
		fmt.Fprintf(&buf, "# %s\n", part.title)
		for _, r := range part.rs {
			b, err := protojson.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			// Re-encode: protojson's whitespace is deliberately unstable.
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			out, _ := json.MarshalIndent(v, "", "  ")
			buf.Write(out)
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/xds/... -update)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s\n(run go test ./internal/xds/... -update)", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s differs in length: got %d lines, want %d", path, len(gl), len(wl))
	}
}

type validator interface{ ValidateAll() error }

// validateAll runs the Envoy protos' validation on every resource and on
// every message packed in an Any inside it (HCM, filters, TLS contexts).
func validateAll(t *testing.T, res xds.Resources) {
	t.Helper()
	for typ, rs := range res.ByType() {
		for _, r := range rs {
			validateMsg(t, typ, r)
		}
	}
	if len(res.Versions) != 5 {
		t.Errorf("versions: got %d types, want 5", len(res.Versions))
	}
	_ = resourcev3.ListenerType
}

func validateMsg(t *testing.T, where string, m proto.Message) {
	t.Helper()
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			t.Errorf("%s: %T: %v", where, m, err)
		}
	}
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Errorf("%s: unpack %s: %v", where, a.GetTypeUrl(), err)
			return
		}
		validateMsg(t, where+" > "+a.GetTypeUrl(), inner)
	})
}

func walkAnys(m protoreflect.Message, fn func(*anypb.Any)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		visit := func(v protoreflect.Value) {
			msg := v.Message()
			if a, ok := msg.Interface().(*anypb.Any); ok {
				fn(a)
				return
			}
			walkAnys(msg, fn)
		}
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			for i := 0; i < v.List().Len(); i++ {
				visit(v.List().Get(i))
			}
		case fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { visit(mv); return true })
		case !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.MessageKind:
			visit(v)
		}
		return true
	})
}

// TestGatewayAddress: a router that asks for an address (bowline up's
// loopback ingress) gets its Gateway listeners bound there; without one
// they bind every address, as Istio's gateways do.
func TestGatewayAddress(t *testing.T) {
	snap := snapshot(t, svcs, drs, gw)
	for _, tc := range []struct{ addr, want string }{{"", "0.0.0.0"}, {"127.0.0.1", "127.0.0.1"}} {
		p := *router
		p.GatewayAddress = tc.addr
		res := xds.Generate(snap, &p)
		if len(res.Listeners) == 0 {
			t.Fatal("no listeners for the router")
		}
		for _, r := range res.Listeners {
			l := r.(*listenerv3.Listener)
			if got := l.GetAddress().GetSocketAddress().GetAddress(); got != tc.want {
				t.Errorf("GatewayAddress %q: listener %s binds %s, want %s", tc.addr, l.GetName(), got, tc.want)
			}
		}
	}
}
