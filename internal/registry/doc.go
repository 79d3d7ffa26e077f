// Package registry owns the mesh's services and endpoints as the control plane
// sees them: ServiceEntry and WorkloadEntry objects from the config store,
// plus workloads registered at run time (by `bowline up`, or by hosts and VMs
// the way Istio's WorkloadGroup auto-registration adds them), plus what a
// Kubernetes cluster gives (internal/kube turns Services and EndpointSlices
// into Services, pods into Workloads that ServiceEntries can select).
//
// A Registry holds the inputs and hands out immutable Views; subscribers hear
// about every change so the server can debounce and rebuild the model.
//
// It imports config only; it must not import model, xds, proxy or cli.
package registry
