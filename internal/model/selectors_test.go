package model_test

import (
	"slices"
	"testing"
)

const selectorsYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: default}
spec:
  hosts: [b.example.com]
  ports: [{number: 81, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a, namespace: default}
spec:
  host: a.example.com
  workloadSelector: {matchLabels: {app: x}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  http:
  - match: [{sourceLabels: {app: x}}, {sourceLabels: {version: v2}}]
    route: [{destination: {host: a.example.com}}]
`

// TestSelectorMatches: one byte per distinct outbound selector; a
// DestinationRule's workloadSelector counts only in its namespace.
func TestSelectorMatches(t *testing.T) {
	snap := build(t, selectorsYAML)
	cases := []struct {
		ns     string
		labels map[string]string
		want   string
	}{
		// Selectors: DR default/{app: x}, VS {app: x} (any namespace), VS {version: v2}.
		{"default", map[string]string{"app": "x"}, "110"},
		{"other", map[string]string{"app": "x"}, "010"},
		{"default", map[string]string{"app": "y", "version": "v2"}, "001"},
		{"default", nil, "000"},
	}
	for _, tc := range cases {
		if got := snap.SelectorMatches(proxy(tc.ns, tc.labels)); got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.ns, tc.labels, got, tc.want)
		}
	}
}

// TestEndpointsAt finds a workload's endpoints by IP in service order.
func TestEndpointsAt(t *testing.T) {
	snap := build(t, selectorsYAML)
	var got []string
	for _, r := range snap.EndpointsAt([]string{"10.0.0.9", "10.0.0.2"}) {
		got = append(got, r.Service.Hostname+"/"+r.Endpoint.Address)
	}
	if want := []string{"a.example.com/10.0.0.2", "b.example.com/10.0.0.2"}; !slices.Equal(got, want) {
		t.Fatalf("EndpointsAt = %v, want %v", got, want)
	}
	if refs := snap.EndpointsAt([]string{"10.9.9.9"}); len(refs) != 0 {
		t.Fatalf("unknown IP: %v", refs)
	}
}
