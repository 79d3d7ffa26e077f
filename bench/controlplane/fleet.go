package main

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
)

// Simulated sidecars differ as pods do: each has its own IP, app/version
// labels, workload name and service account, an inbound port and
// transparent capture (INTERCEPTION_MODE REDIRECT, as injected pods); they are
// spread over fleetNamespaces, three of which have a Sidecar resource
// (writeSidecars). With -identical every client has the node metadata of the
// benchmark before issue 11 (same labels, IP and workload; only the node id
// differs), so one generation serves them all.
var fleetNamespaces = []string{"app-0", "app-1", "app-2", "app-3", "app-4"}

// identity is one simulated sidecar's node.
type identity struct {
	id       string
	metadata map[string]any
}

// sidecarIdentity returns the node of client i.
func sidecarIdentity(i int, identical bool) identity {
	if identical {
		return identity{id: fmt.Sprintf("sidecar~10.200.%d.%d~load-%d.default~default.svc.cluster.local", i/250, 1+i%250, i),
			metadata: map[string]any{"NAMESPACE": "default", "WORKLOAD_NAME": "load-client", "INSTANCE_IPS": "10.250.0.1"}}
	}
	ns := fleetNamespaces[i%len(fleetNamespaces)]
	ip := fmt.Sprintf("10.200.%d.%d", i/250, 1+i%250)
	name := fmt.Sprintf("load-%d", i)
	version := "v1"
	if i%2 == 1 {
		version = "v2"
	}
	return identity{id: fmt.Sprintf("sidecar~%s~%s-7d9f8b-%05d.%s~%s.svc.cluster.local", ip, name, i, ns, ns),
		metadata: map[string]any{
			"NAMESPACE":       ns,
			"WORKLOAD_NAME":   name,
			"SERVICE_ACCOUNT": name,
			"INSTANCE_IPS":    ip,
			"LABELS":          map[string]any{"app": name, "version": version},
			"BOWLINE_INBOUND": "8080=8080",
			// Injected pods: iptables sends the app's traffic to the sidecar.
			"INTERCEPTION_MODE": "REDIRECT",
		}}
}

func (id identity) nodeMetadata() *structpb.Struct {
	md, err := structpb.NewStruct(id.metadata)
	if err != nil {
		panic(err) // only strings and maps of strings
	}
	return md
}

// sidecarsYAML returns the Sidecar resources of the fleet's namespaces:
// app-2 has one for its v2 workloads (everything in default), app-3 a
// namespace default seeing everything, app-4 one that sees only the routed
// services (those the edit runs change) and its own namespace.
func sidecarsYAML(spec meshSpec) string {
	var b strings.Builder
	b.WriteString(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: v2-only, namespace: app-2}
spec:
  workloadSelector: {labels: {version: v2}}
  egress: [{hosts: ["./*", "default/*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: app-3}
spec:
  egress: [{hosts: ["./*", "default/*", "istio-system/*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: app-4}
spec:
  egress:
  - hosts:
    - "./*"
`)
	for k := range spec.routed {
		fmt.Fprintf(&b, "    - default/%s\n", serviceHost(routedService(spec, k)))
	}
	return b.String()
}
