package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// meshSpec sizes the synthetic mesh.
type meshSpec struct {
	services  int // ServiceEntries
	endpoints int // endpoints per service
	routed    int // services with a VirtualService and DestinationRule (every services/routed-th)
	files     int // ServiceEntry files
}

func serviceHost(i int) string { return fmt.Sprintf("svc-%04d.default.svc.cluster.local", i) }

// writeMesh writes the ServiceEntries, DestinationRules and VirtualServices of spec into dir.
func writeMesh(dir string, spec meshSpec) error {
	per := (spec.services + spec.files - 1) / spec.files
	for f := 0; f < spec.files; f++ {
		var b strings.Builder
		for i := f * per; i < min((f+1)*per, spec.services); i++ {
			fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: svc-%04d, namespace: default}\nspec:\n  hosts: [%s]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 8080, name: http, protocol: HTTP}]\n  endpoints:\n", i, serviceHost(i))
			for e := 0; e < spec.endpoints; e++ {
				version := "v1"
				if e%2 == 1 {
					version = "v2"
				}
				fmt.Fprintf(&b, "  - {address: 10.%d.%d.%d, labels: {version: %s}}\n", 1+i/250, i%250, 1+e, version)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("services-%02d.yaml", f)), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return writeRoutingAndSidecars(dir, spec)
}

// writeRoutingAndSidecars writes the routing of every routed service and
// the fleet's Sidecar resources.
func writeRoutingAndSidecars(dir string, spec meshSpec) error {
	for i := 0; i < spec.services; i += spec.services / spec.routed {
		if err := writeRouting(dir, i, 90); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "sidecars.yaml"), []byte(sidecarsYAML(spec)), 0o644)
}

// routedService returns the index of the k-th service that has routing.
func routedService(spec meshSpec, k int) int {
	return (k % spec.routed) * (spec.services / spec.routed)
}

// writeRouting writes service i's DestinationRule and VirtualService with weight v1 to subset v1.
func writeRouting(dir string, i, v1 int) error {
	host := serviceHost(i)
	y := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-%04[1]d, namespace: default}
spec:
  host: %[2]s
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-%04[1]d, namespace: default}
spec:
  hosts: [%[2]s]
  http:
  - route:
    - {destination: {host: %[2]s, subset: v1}, weight: %[3]d}
    - {destination: {host: %[2]s, subset: v2}, weight: %[4]d}
`, i, host, v1, 100-v1)
	path := filepath.Join(dir, fmt.Sprintf("routing-%04d.yaml", i))
	tmp := filepath.Join(dir, fmt.Sprintf(".routing-%04d.tmp", i))
	if err := os.WriteFile(tmp, []byte(y), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeChurnMesh writes ServiceEntries that select registered workloads
// (app: svc-NNNN) instead of listing endpoints, with the same routing as
// writeMesh; churnWorkloads lists the workloads to register.
func writeChurnMesh(dir string, spec meshSpec) error {
	per := (spec.services + spec.files - 1) / spec.files
	for f := 0; f < spec.files; f++ {
		var b strings.Builder
		for i := f * per; i < min((f+1)*per, spec.services); i++ {
			fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: svc-%04d, namespace: default}\nspec:\n  hosts: [%s]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 8080, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: svc-%04d}}\n", i, serviceHost(i), i)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("services-%02d.yaml", f)), []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return writeRoutingAndSidecars(dir, spec)
}

// workload is one registration of the churn mesh.
type workload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Address   string            `json:"address"`
	Labels    map[string]string `json:"labels"`
	Weight    uint32            `json:"weight,omitempty"`
	Healthy   *bool             `json:"healthy,omitempty"`
}

// churnWorkloads returns spec.endpoints workloads per service.
func churnWorkloads(spec meshSpec) []workload {
	var out []workload
	for i := 0; i < spec.services; i++ {
		for e := 0; e < spec.endpoints; e++ {
			version := "v1"
			if e%2 == 1 {
				version = "v2"
			}
			out = append(out, workload{Name: fmt.Sprintf("svc-%04d-%d", i, e), Namespace: "default",
				Address: fmt.Sprintf("10.%d.%d.%d", 1+i/250, i%250, 1+e),
				Labels:  map[string]string{"app": fmt.Sprintf("svc-%04d", i), "version": version}})
		}
	}
	return out
}
