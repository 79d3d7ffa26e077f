package kube

// Log attribute keys.
const (
	attrKind      = "kind"
	attrNamespace = "namespace"
	attrName      = "name"
	attrError     = "error"
	attrServices  = "services"
	attrPods      = "pods"
	attrObjects   = "objects"
	attrProblems  = "problems"
	attrIdentity  = "identity"
	attrLease     = "lease"
)
