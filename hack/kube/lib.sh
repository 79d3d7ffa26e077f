# shellcheck shell=bash disable=SC2034 # settings used by the scripts that source this file
# Shared settings and helpers of the test cluster kit (sourced by up.sh,
# down.sh, load.sh, guard.sh). Everything the kit makes is named here, so that
# down.sh can remove exactly that.

KIT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$KIT_DIR/../.." && pwd)"
KUBE_VERSION=v1.37.2
BIN_DIR="${KUBE_KIT_CACHE:-$HOME/.cache/bowline/kube/$KUBE_VERSION}/bin"
STATE_DIR="${KUBE_KIT_STATE:-/var/lib/bowline-kube}"
RUN_DIR=/run/bowline-kube
PKI_DIR="$STATE_DIR/pki"
LOG_DIR="$STATE_DIR/logs"
KUBECONFIG_FILE="$STATE_DIR/kubeconfig"
CTR_SOCK="$RUN_DIR/containerd.sock"

# Addresses. The node's address lives on lo (no dummy devices in this
# kernel), so nothing sent to it ever leaves the machine. Pods and Services
# use ranges that must never be routed out of a real interface: guard.sh
# drops them there.
NODE_NAME=bowline-node
NODE_IP=10.251.0.1
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
BRIDGE=bowkube0
ETCD_CLIENT_URL=http://127.0.0.1:12379
ETCD_PEER_URL=http://127.0.0.1:12380
COREDNS_READY=127.0.0.1:18181

# The cgroup (v2 hierarchy, also created in each v1 hierarchy for the
# kubelet's cgroupRoot) that every process of the cluster runs in; guard.sh
# drops its traffic on every real interface.
CGROUP=bowline-kube
CGROUP2_ROOT=/sys/fs/cgroup/unified
[ -f /sys/fs/cgroup/cgroup.controllers ] && CGROUP2_ROOT=/sys/fs/cgroup

# The mangle chain holding the guard; kube-proxy never touches mangle.
GUARD_CHAIN=BOWLINE-KUBE-GUARD

# The sandbox image the CRI asks for; the kit's own pause program is
# imported under this name before the kubelet starts, so nothing is pulled.
PAUSE_IMAGE=registry.k8s.io/pause:3.10.1

COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kube-proxy coredns kubelet)

say() { echo "kube: $*" >&2; }
die() {
	echo "kube: error: $*" >&2
	exit 1
}

need_root() {
	[ "$(id -u)" = 0 ] || die "$1 needs root (it configures addresses, iptables, cgroups and containerd); run it with sudo"
}

# pid_alive NAME: the component's recorded process is running.
pid_alive() {
	local f="$RUN_DIR/$1.pid"
	[ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

kctl() { "$BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
ctr_() { ctr --address "$CTR_SOCK" -n k8s.io "$@"; }

# wait_for DESC SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
wait_for() {
	local desc=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

export_line() { echo "export KUBECONFIG=$KUBECONFIG_FILE PATH=$BIN_DIR:\$PATH"; }
