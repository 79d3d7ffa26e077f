package analysis

import (
	"strings"
	"testing"

	"github.com/bowline-mesh/bowline/internal/config"
)

// TestLiveServices checks that services of a live registry (a cluster's)
// count as defined, with their ports, as Istio's in-cluster analysis reads
// the cluster's Services.
func TestLiveServices(t *testing.T) {
	const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, port: {number: 9080}}
`
	res := config.Parse("vs.yaml", []byte(vs), config.ParseOptions{})
	codes := func(in Input) string {
		var out []string
		for _, m := range Analyze(in, Options{}, destinationHostAnalyzer{}) {
			out = append(out, m.Type.Code)
		}
		return strings.Join(out, ",")
	}
	if got := codes(Input{Objects: res.Objects}); got != "IST0101" {
		t.Errorf("without the Service: codes %q, want IST0101 (reviews not found)", got)
	}
	live := []Service{{Host: "reviews.bookinfo.svc.cluster.local", Namespace: "bookinfo", Ports: []uint32{9080}}}
	if got := codes(Input{Objects: res.Objects, Services: live}); got != "" {
		t.Errorf("with the cluster's Service reviews: codes %q, want none", got)
	}
	other := []Service{{Host: "reviews.bookinfo.svc.cluster.local", Namespace: "bookinfo", Ports: []uint32{9081}}}
	if got := codes(Input{Objects: res.Objects, Services: other}); got != "IST0101" {
		t.Errorf("the Service without port 9080: codes %q, want IST0101 (port not found)", got)
	}
	hidden := []Service{{Host: "reviews.bookinfo.svc.cluster.local", Namespace: "bookinfo", Ports: []uint32{9080}, ExportTo: []string{"elsewhere"}}}
	if got := codes(Input{Objects: res.Objects, Services: hidden}); got != "IST0101" {
		t.Errorf("the Service exported only to another namespace: codes %q, want IST0101", got)
	}
}
