// Package registry owns the mesh's services and endpoints as the control plane
// sees them: ServiceEntry and WorkloadEntry objects from the config store,
// plus workloads registered at run time (by `bowline up`, or by hosts and VMs
// the way Istio's WorkloadGroup auto-registration adds them). Kubernetes
// Services and EndpointSlices will feed the same types later.
//
// A Registry holds the inputs and hands out immutable Views; subscribers hear
// about every change so the server can debounce and rebuild the model.
//
// It imports config only; it must not import model, xds, proxy or cli.
package registry
