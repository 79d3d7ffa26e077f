package xdsconfig_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/bowline-mesh/bowline/internal/proxy/xdsconfig"
)

// goldenResource is one resource of a generator golden file.
type goldenResource struct {
	file, section string
	msg           proto.Message
}

// loadGolden reads every resource the control plane's generators emit
// (internal/xds/testdata/*.golden: "# listeners", "# routes", "# clusters",
// "# endpoints", "# secrets" sections of indented protojson objects).
func loadGolden(t testing.TB) []goldenResource {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "xds", "testdata", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no generator golden files found: %v", err)
	}
	var out []goldenResource
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sections := map[string]*bytes.Buffer{}
		var cur *bytes.Buffer
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "# ") {
				cur = &bytes.Buffer{}
				sections[strings.TrimPrefix(line, "# ")] = cur
				continue
			}
			if cur != nil {
				cur.WriteString(line + "\n")
			}
		}
		for name, buf := range sections {
			dec := json.NewDecoder(buf)
			for {
				var raw json.RawMessage
				if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("%s %s: %v", f, name, err)
				}
				var m proto.Message
				switch name {
				case "listeners":
					m = &listenerv3.Listener{}
				case "routes":
					m = &routev3.RouteConfiguration{}
				case "clusters":
					m = &clusterv3.Cluster{}
				case "endpoints":
					m = &endpointv3.ClusterLoadAssignment{}
				case "secrets":
					m = &tlsv3.Secret{}
				default:
					t.Fatalf("%s: unknown section %q", f, name)
				}
				if err := protojson.Unmarshal(raw, m); err != nil {
					t.Fatalf("%s %s: %v", f, name, err)
				}
				out = append(out, goldenResource{file: filepath.Base(f), section: name, msg: m})
			}
		}
	}
	return out
}

func convertAny(m proto.Message) (any, error) {
	switch x := m.(type) {
	case *listenerv3.Listener:
		return xdsconfig.UnmarshalListener(x)
	case *routev3.RouteConfiguration:
		return xdsconfig.UnmarshalRouteConfig(x)
	case *clusterv3.Cluster:
		return xdsconfig.UnmarshalCluster(x)
	case *endpointv3.ClusterLoadAssignment:
		return xdsconfig.UnmarshalClusterLoadAssignment(x)
	case *tlsv3.Secret:
		return xdsconfig.UnmarshalSecret(x)
	}
	return nil, errors.New("unknown resource type")
}

// TestGeneratorContract is the contract between the control plane's
// generators and the proxy: every resource in the generator golden files
// converts without a NACK.
func TestGeneratorContract(t *testing.T) {
	// knownGaps are generator features the proxy still NACKs, with the exact
	// reason; each must still occur (delete the entry when the gap closes).
	knownGaps := map[string]int{
		// DestinationRule tls files in the goldens (/etc/certs/...) exist on
		// the proxy's host only: the proxy reads them when the config arrives.
		": no such file or directory": 0,
	}
	res := loadGolden(t)
	counts := map[string]int{}
	for _, r := range res {
		counts[r.section]++
		_, err := convertAny(r.msg)
		if err == nil {
			continue
		}
		known := false
		for gap := range knownGaps {
			if strings.HasSuffix(err.Error(), gap) {
				knownGaps[gap]++
				known = true
			}
		}
		if !known {
			t.Errorf("%s (%s): NACK: %v", r.file, r.section, err)
		}
	}
	for gap, n := range knownGaps {
		if n == 0 {
			t.Errorf("known gap %q no longer occurs: remove it", gap)
		}
	}
	for _, s := range []string{"listeners", "routes", "clusters", "endpoints"} {
		if counts[s] == 0 {
			t.Errorf("no %s in the golden files", s)
		}
	}
	t.Logf("converted %v", counts)
}
