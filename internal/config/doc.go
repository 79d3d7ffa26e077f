// Package config owns how Istio configuration enters Bowline: reading YAML/JSON
// from files, directories and stdin, decoding each document into the typed
// istio.io/api messages with a strict schema check (unknown fields are errors),
// keeping the source position of every field for error messages, and the
// versioned config store that later stages subscribe to.
//
// Istio's MeshConfig is an object of the store too (meshconfig.go): the
// ConfigMap `istio` in the mesh namespace (ParseOptions.MeshNamespace, the
// root namespace) read from a directory, or a --mesh-config file
// (DirSourceConfig.MeshConfigFile). Its Spec is the *meshv1alpha1.MeshConfig
// in force with Istio's defaults applied; MeshConfigOf returns it. A source
// that holds the ConfigMap itself (Kubernetes informers) calls
// ParseMeshConfig with the ConfigMap's data["mesh"], its metadata and Field
// MeshConfigField, validates the object like any other
// (validation.Objects) and publishes it with the rest of its objects.
//
// It must not import the model, xds, proxy or cli packages.
package config
