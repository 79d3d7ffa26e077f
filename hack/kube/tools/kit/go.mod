// Module kit holds the test cluster kit's small helpers (hack/kube): packing
// static binaries into image tarballs, the cluster's certificates and
// kubeconfigs, and the pause program. Separate from Bowline's own module.
module github.com/bowline-mesh/bowline/hack/kube/tools/kit

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
