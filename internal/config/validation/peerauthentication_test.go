package validation

import (
	"strings"
	"testing"

	"github.com/bowline-mesh/bowline/internal/config"
)

// paDoc is a PeerAuthentication foo/default whose spec body starts on line 7.
func paDoc(body string) string {
	return "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: foo\nspec:\n" + body
}

func TestPeerAuthenticationProblems(t *testing.T) {
	secRunCases(t, "peer.yaml", []secCase{
		{name: "port level mtls without selector", doc: paDoc(`
  mtls:
    mode: STRICT
  portLevelMtls:
    "8080":
      mode: PERMISSIVE
`), want: []string{
			"peer.yaml:10: PeerAuthentication foo/default: spec.portLevelMtls: requires a workload selector with labels; mesh-wide and namespace-wide policies cannot set port-level mTLS",
		}},
		{name: "port level mtls with empty selector", doc: paDoc(`
  selector: {}
  portLevelMtls:
    "8080":
      mode: DISABLE
`), want: []string{
			"peer.yaml:8: warning: PeerAuthentication foo/default: spec.selector: workload selector without labels selects every workload in the namespace",
			"peer.yaml:9: PeerAuthentication foo/default: spec.portLevelMtls: requires a workload selector with labels; mesh-wide and namespace-wide policies cannot set port-level mTLS",
		}},
		{name: "port out of range", doc: paDoc(`
  selector:
    matchLabels:
      app: httpbin
  portLevelMtls:
    "0":
      mode: DISABLE
    "70000":
      mode: DISABLE
    "9080":
      mode: STRICT
`), want: []string{
			"peer.yaml:12: PeerAuthentication foo/default: spec.portLevelMtls[0]: port 0 is not in 1-65535",
			"peer.yaml:14: PeerAuthentication foo/default: spec.portLevelMtls[70000]: port 70000 is not in 1-65535",
		}},
		{name: "empty port level mtls", doc: paDoc(`
  selector:
    matchLabels:
      app: httpbin
  portLevelMtls: {}
`), want: []string{
			"peer.yaml:11: PeerAuthentication foo/default: spec.portLevelMtls: must list at least one port if set",
		}},
		{name: "selector wildcard and empty key", doc: paDoc(`
  selector:
    matchLabels:
      "": httpbin
      version: "v*"
`), want: []string{
			"peer.yaml:10: PeerAuthentication foo/default: spec.selector.matchLabels[]: empty label key is not supported in a selector",
			"peer.yaml:11: PeerAuthentication foo/default: spec.selector.matchLabels[version]: wildcard is not supported in a selector: \"version=v*\"",
		}},
		{name: "dry run annotation", doc: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: foo
  annotations:
    istio.io/dry-run: "true"
spec:
  mtls:
    mode: STRICT
`, want: []string{
			"peer.yaml:7: PeerAuthentication foo/default: metadata.annotations[istio.io/dry-run]: annotation istio.io/dry-run is only supported on AuthorizationPolicy",
		}},
	})
}

// TestPeerAuthenticationUnquotedPorts checks Istio's documented form with
// unquoted port keys (`8080:`). It runs once the loader accepts integer map
// keys.
func TestPeerAuthenticationUnquotedPorts(t *testing.T) {
	doc := paDoc(`
  selector:
    matchLabels:
      app: httpbin
  portLevelMtls:
    8080:
      mode: PERMISSIVE
    0:
      mode: DISABLE
`)
	res := config.Parse("peer.yaml", []byte(doc), config.ParseOptions{})
	if len(res.Problems) > 0 {
		t.Fatalf("document does not load:\n%s", res.Problems.Error())
	}
	got := secProblems(t, "peer.yaml", doc)
	want := "peer.yaml:14: PeerAuthentication foo/default: spec.portLevelMtls[0]: port 0 is not in 1-65535"
	if strings.Join(got, "\n") != want {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}
