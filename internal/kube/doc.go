// Package kube connects the control plane to a Kubernetes cluster. Informers
// on Services, EndpointSlices, Pods, Namespaces and Nodes feed the service
// registry, and informers on Istio's CRDs (istio.io/client-go), the
// Gateway API kinds (once their CRDs are served), credential Secrets and
// the `istio` MeshConfig ConfigMap feed the config store, the same
// interfaces that files and local registrations feed (DESIGN.md decision
// 7). It also holds what only a cluster needs: the validation webhook, the
// TokenReview authenticator of the CA, publishing the CA root to
// namespaces, the Gateway API's automated gateway deployment and status
// (GatewayDeployer), and leader election for the writers.
//
// It imports config, registry, gatewayapi and ca; it must not import
// model, xds, proxy or cli.
package kube
