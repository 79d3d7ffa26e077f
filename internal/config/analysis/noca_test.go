package analysis

import (
	"testing"

	"github.com/bowline-mesh/bowline/internal/config"
)

const noCAYAML = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      portLevelSettings:
      - port: {number: 9080}
        tls: {mode: ISTIO_MUTUAL}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
  portLevelMtls:
    8080: {mode: STRICT}
`

// TestNoCA: only with Options.NoCA are ISTIO_MUTUAL and STRICT reported,
// each at its field.
func TestNoCA(t *testing.T) {
	res := config.Parse("test.yaml", []byte(noCAYAML), config.ParseOptions{})
	if len(res.Problems) > 0 {
		t.Fatal(res.Problems)
	}
	in := Input{Objects: res.Objects}
	var got []string
	for _, m := range Analyze(in, Options{NoCA: true}, noCAAnalyzer{}) {
		got = append(got, m.String())
	}
	check(t, got, []string{
		"Error [BWL0001] (DestinationRule default/reviews test.yaml:9) spec.trafficPolicy.tls.mode ISTIO_MUTUAL needs workload certificates, but the mesh runs without a CA (discovery --insecure-xds without --ca-dir, up --insecure): plaintext is sent instead.",
		"Error [BWL0001] (DestinationRule default/reviews test.yaml:16) spec.subsets[0].trafficPolicy.portLevelSettings[0].tls.mode ISTIO_MUTUAL needs workload certificates, but the mesh runs without a CA (discovery --insecure-xds without --ca-dir, up --insecure): plaintext is sent instead.",
		"Error [BWL0001] (PeerAuthentication istio-system/default test.yaml:25) spec.mtls.mode STRICT needs workload certificates, but the mesh runs without a CA (discovery --insecure-xds without --ca-dir, up --insecure): plaintext is accepted instead.",
		"Error [BWL0001] (PeerAuthentication istio-system/default test.yaml:27) spec.portLevelMtls[8080].mode STRICT needs workload certificates, but the mesh runs without a CA (discovery --insecure-xds without --ca-dir, up --insecure): plaintext is accepted instead.",
	})
	if msgs := Analyze(in, Options{}, noCAAnalyzer{}); len(msgs) != 0 {
		t.Errorf("without NoCA: %v", msgs)
	}
	if u := MTLSWithoutCA.DocumentationURL(); u != MTLSWithoutCA.Docs {
		t.Errorf("BWL0001 documentation at %s, want Bowline's docs", u)
	}
}
