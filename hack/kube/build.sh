#!/usr/bin/env bash
# Builds the test cluster kit's binaries from Go modules into a cache outside
# the repository and prints the bin directory on its last line:
#   Kubernetes v1.37.2 (k8s.io/kubernetes, staging modules pinned to v0.37.2):
#     kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
#   etcd v3.7.3 (go.etcd.io/etcd/server/v3)
#   coredns v1.15.0 (github.com/coredns/coredns, kubernetes plugin, no forward)
#
# Usage: hack/kube/build.sh [NAME...]   (default: all, kube-apiserver and etcd first)
# A binary that is already in the cache is not rebuilt; delete it to force.
# Env: KUBE_KIT_CACHE (default $HOME/.cache/bowline/kube/v1.37.2), GO (default go).
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
here="$(cd "$(dirname "$0")" && pwd)"
cache="${KUBE_KIT_CACHE:-$HOME/.cache/bowline/kube/$KUBE_VERSION}"
bin="$cache/bin"
GO="${GO:-go}"
mkdir -p "$bin"

all=(kube-apiserver etcd kubectl kube-controller-manager kube-scheduler kubelet kube-proxy coredns)
want=("$@")
[ ${#want[@]} -eq 0 ] && want=("${all[@]}")

# One build at a time per cache: a second caller waits and then finds the binaries.
exec 9>"$cache/.build.lock"
flock 9

# Kubernetes reports its version from these variables (kubectl version,
# /version, the Node's kubeletVersion); bowline x precheck reads them.
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=37"
	kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # build NAME MODULE_DIR PACKAGE LDFLAGS
	local name=$1 dir=$2 pkg=$3 ldflags=$4 start
	if [ -x "$bin/$name" ]; then
		return
	fi
	start=$(date +%s)
	echo "build.sh: building $name" >&2
	(cd "$dir" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$bin/.$name.tmp" "$pkg")
	mv "$bin/.$name.tmp" "$bin/$name"
	echo "build.sh: built $name in $(($(date +%s) - start))s" >&2
}

for name in "${want[@]}"; do
	case "$name" in
	kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy | kubectl)
		build "$name" "$here/tools/kubernetes" "k8s.io/kubernetes/cmd/$name" "$kube_ldflags" ;;
	etcd)
		build etcd "$here/tools/etcd" . "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" ;;
	coredns)
		build coredns "$here/tools/coredns" . "-s -w" ;;
	*)
		echo "build.sh: unknown binary $name (want one of: ${all[*]})" >&2
		exit 2 ;;
	esac
done
echo "$bin"
