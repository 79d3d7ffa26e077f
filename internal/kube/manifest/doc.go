// Package manifest holds what `bowline install` puts on a cluster: Istio's
// CRDs (generated from the istio.io/api module), and templates for the
// istio-system namespace, RBAC, the discovery Deployment and Service, the
// webhook configurations and the ingress gateway, rendered from Values. The
// Helm chart in manifests/charts/bowline renders the same objects.
//
// It imports only the Kubernetes API machinery; it must not import model,
// xds, proxy or cli.
package manifest
