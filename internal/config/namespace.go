package config

// KindNamespace is core/v1 Namespace. On Kubernetes the controller adds
// one object per namespace (labels only, no spec), so that a Gateway
// listener's allowedRoutes namespace selector sees the namespace's real
// labels; local mode has none (a namespace's only label is then its
// kubernetes.io/metadata.name).
const KindNamespace = "Namespace"

// NamespaceObject returns the KindNamespace object of namespace name.
func NamespaceObject(name string, labels map[string]string) *Object {
	return &Object{GVK: GroupVersionKind{Version: "v1", Kind: KindNamespace}, Meta: Meta{Name: name, Labels: labels}}
}
