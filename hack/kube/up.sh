#!/usr/bin/env bash
# make kube-up: a single-node Kubernetes v1.37.2 cluster on this machine for
# development and CI. Builds (once, cached) the binaries, installs containerd,
# runc and the CNI plugins from Debian, starts etcd, the control plane,
# containerd, kube-proxy, CoreDNS and the kubelet, imports the images in
# IMAGES_DIR (default bin/images) and prints, as its last line,
#   export KUBECONFIG=/abs/kubeconfig PATH=/abs/bin:$PATH
# A running, healthy cluster is reused. hack/kube/down.sh removes everything.
#
# Safety, in this order, before any component sends a packet: the node's
# address on lo, the guard (guard.sh), the cgroup every component runs in
# (its traffic to real interfaces is dropped), CoreDNS answering only the
# cluster domain (it has no forward plugin).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=guard.sh
source "$KIT_DIR/guard.sh"
need_root "make kube-up"

IMAGES_DIR="${IMAGES_DIR:-$REPO_DIR/bin/images}"
KIT="$REPO_DIR/bin/kube/kit"
start_time=$(date +%s)

healthy() {
	local c
	for c in "${COMPONENTS[@]}"; do
		pid_alive "$c" || return 1
	done
	kctl get --raw /readyz >/dev/null 2>&1 && guard_check 2>/dev/null
}

if [ -f "$STATE_DIR/up" ] && healthy; then
	say "reusing the running cluster ($STATE_DIR)"
	ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$POD_GATEWAY" # re-asserted: it keeps host->Service traffic on the bridge
	"$KIT_DIR/load.sh" "$IMAGES_DIR"/*.tar 2>/dev/null || true
	export_line
	exit 0
fi
if [ -d "$STATE_DIR" ] || [ -d "$RUN_DIR" ]; then
	say "found a stopped or broken cluster: removing it first"
	"$KIT_DIR/down.sh"
fi

# --- packages and binaries (no packet to anything but the package registries)
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
command -v conntrack >/dev/null || missing+=(conntrack)
command -v ip >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]} from Debian"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
"$KIT_DIR/build.sh" >/dev/null
mkdir -p "$(dirname "$KIT")"
(cd "$KIT_DIR/tools/kit" && CGO_ENABLED=0 go build -trimpath -o "$KIT" . && CGO_ENABLED=0 go build -trimpath -o "$KIT-pause" ./pause)

mkdir -p "$STATE_DIR" "$RUN_DIR" "$LOG_DIR"
chmod 700 "$STATE_DIR"
touch "$STATE_DIR/up" # down.sh removes what it finds from here on
# machine paths containerd, CNI and the kubelet use outside STATE_DIR: the
# ones absent now are the cluster's, and down.sh removes them
for p in /run/containerd /var/lib/cni /var/log/pods /var/log/containers; do
	[ -e "$p" ] || echo "$p" >>"$STATE_DIR/created"
done

# --- 1. the node's address on lo
ip addr replace "$NODE_IP/32" dev lo

# --- 2. the cgroup, then the guard
mkdir -p "$CGROUP2_ROOT/$CGROUP/system"
for h in /sys/fs/cgroup/*/; do
	h=${h%/}
	[ "$h" = "$CGROUP2_ROOT" ] && continue
	[ -f "$h/cgroup.procs" ] || continue
	mkdir -p "$h/$CGROUP"
	if [ -f "$h/cpuset.cpus" ]; then
		cat "$h/cpuset.cpus" >"$h/$CGROUP/cpuset.cpus"
		cat "$h/cpuset.mems" >"$h/$CGROUP/cpuset.mems"
	fi
done
guard_up || die "could not install the network guard"
guard_check || die "the network guard is not in place"

# --- 3. the bridge (pods) and the route keeping Service IPs on it
ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
sysctl -qw "net.ipv6.conf.$BRIDGE.disable_ipv6=1"
ip addr replace "$POD_GATEWAY/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
ip route replace "$SERVICE_CIDR" dev "$BRIDGE" src "$POD_GATEWAY"
for k in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
	echo "$k=$(sysctl -n "$k")" >>"$STATE_DIR/sysctl.saved"
	sysctl -qw "$k=1"
done

# --- certificates, configuration
"$KIT" pki -dir "$PKI_DIR" -node-ip "$NODE_IP" -node-name "$NODE_NAME" -service-ip "$KUBERNETES_SERVICE_IP"
cp "$PKI_DIR/admin.kubeconfig" "$KUBECONFIG_FILE"
chmod 600 "$KUBECONFIG_FILE"
"$KIT_DIR/render.sh" "$STATE_DIR"

# start NAME CMD...: runs CMD detached, inside the cluster's cgroup, logging
# to LOG_DIR/NAME.log, its pid in RUN_DIR/NAME.pid. Every descriptor above 2
# is closed first: a component must not keep the caller's files open — above
# all the lock of `flock /tmp/bowline-kube.lock make kube-up`, which an
# inherited descriptor would hold for as long as the cluster runs.
start() {
	local name=$1
	shift
	# shellcheck disable=SC2016 # expanded by the inner shell
	setsid bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
		echo $$ >"$1/cgroup.procs"; shift; exec "$@"' _ "$CGROUP2_ROOT/$CGROUP/system" "$@" \
		</dev/null >"$LOG_DIR/$name.log" 2>&1 &
	echo $! >"$RUN_DIR/$name.pid"
}

# fail_with NAME MESSAGE: the message and the tail of the component's log.
fail_with() {
	say "$2; last lines of $LOG_DIR/$1.log:"
	tail -n 30 "$LOG_DIR/$1.log" >&2 || true
	exit 1
}

# --- 4. etcd and the control plane
start etcd "$BIN_DIR/etcd" --name default --data-dir "$STATE_DIR/etcd" \
	--listen-client-urls "$ETCD_CLIENT_URL" --advertise-client-urls "$ETCD_CLIENT_URL" \
	--listen-peer-urls "$ETCD_PEER_URL" --initial-advertise-peer-urls "$ETCD_PEER_URL" \
	--initial-cluster "default=$ETCD_PEER_URL" --unsafe-no-fsync --log-level warn
start kube-apiserver "$BIN_DIR/kube-apiserver" \
	--etcd-servers "$ETCD_CLIENT_URL" \
	--bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
	--service-cluster-ip-range "$SERVICE_CIDR" \
	--client-ca-file "$PKI_DIR/ca.crt" \
	--tls-cert-file "$PKI_DIR/apiserver.crt" --tls-private-key-file "$PKI_DIR/apiserver.key" \
	--kubelet-client-certificate "$PKI_DIR/apiserver-kubelet-client.crt" \
	--kubelet-client-key "$PKI_DIR/apiserver-kubelet-client.key" \
	--kubelet-preferred-address-types InternalIP \
	--service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
	--service-account-key-file "$PKI_DIR/sa.pub" --service-account-signing-key-file "$PKI_DIR/sa.key" \
	--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
	--allow-privileged=true --enable-aggregator-routing=true --profiling=false
wait_for "the API server" 180 kctl get --raw /readyz || fail_with kube-apiserver "the API server did not become ready in 180s"

start kube-controller-manager "$BIN_DIR/kube-controller-manager" \
	--kubeconfig "$PKI_DIR/controller-manager.kubeconfig" \
	--authentication-kubeconfig "$PKI_DIR/controller-manager.kubeconfig" \
	--authorization-kubeconfig "$PKI_DIR/controller-manager.kubeconfig" \
	--bind-address 127.0.0.1 --leader-elect=false \
	--controllers '*,-nodeipam' --root-ca-file "$PKI_DIR/ca.crt" \
	--service-account-private-key-file "$PKI_DIR/sa.key" --use-service-account-credentials=true \
	--cluster-signing-cert-file "$PKI_DIR/ca.crt" --cluster-signing-key-file "$PKI_DIR/ca.key"
start kube-scheduler "$BIN_DIR/kube-scheduler" \
	--kubeconfig "$PKI_DIR/scheduler.kubeconfig" \
	--authentication-kubeconfig "$PKI_DIR/scheduler.kubeconfig" \
	--authorization-kubeconfig "$PKI_DIR/scheduler.kubeconfig" \
	--bind-address 127.0.0.1 --leader-elect=false

# --- 5. containerd, then the pause image before the kubelet exists
start containerd containerd --config "$STATE_DIR/containerd.toml"
wait_for containerd 30 ctr_ version || fail_with containerd "containerd did not start in 30s"
"$KIT" image -o "$STATE_DIR/pause.tar" -tag "$PAUSE_IMAGE" -file "$KIT-pause:/pause" -- /pause
ctr_ images import "$STATE_DIR/pause.tar" >/dev/null

# --- 6. cluster DNS: CoreDNS on the node's address behind a selectorless kube-dns Service
kctl apply -f "$STATE_DIR/manifests/coredns.yaml" >/dev/null
start coredns "$BIN_DIR/coredns" -conf "$STATE_DIR/Corefile"
wait_for CoreDNS 30 "$KIT" httpget "http://$COREDNS_READY/ready" || fail_with coredns "CoreDNS did not become ready in 30s"

# --- 7. the kubelet (kube-proxy starts once the Node exists: it exits when the
# Node's addresses change under it)
start kubelet "$BIN_DIR/kubelet" --config "$STATE_DIR/kubelet.yaml" \
	--kubeconfig "$PKI_DIR/kubelet.kubeconfig" --root-dir "$STATE_DIR/kubelet" \
	--node-ip "$NODE_IP" --hostname-override "$NODE_NAME"
wait_for "the node" 90 kctl wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s ||
	fail_with kubelet "node $NODE_NAME did not become Ready in 90s"
guard_check || die "the network guard is not in place"

# --- 8. kube-proxy; the guard stays first after its first sync
start kube-proxy "$BIN_DIR/kube-proxy" --config "$STATE_DIR/kube-proxy.yaml"
synced() { iptables -w -t nat -S KUBE-SERVICES 2>/dev/null | grep -q 'default/kubernetes:https'; }
wait_for "kube-proxy" 30 synced || fail_with kube-proxy "kube-proxy did not sync the kubernetes Service in 30s"
guard_check || {
	say "kube-proxy's sync displaced the guard: re-asserting it"
	guard_up && guard_check
} || die "the network guard is not in place after kube-proxy's sync"

# --- 9. the images make images built
shopt -s nullglob
images=("$IMAGES_DIR"/*.tar)
if [ ${#images[@]} -gt 0 ]; then
	"$KIT_DIR/load.sh" "${images[@]}"
fi
say "cluster up in $(($(date +%s) - start_time))s (state $STATE_DIR, logs $LOG_DIR)"
export_line
