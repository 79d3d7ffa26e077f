#!/usr/bin/env bash
# make kube-down: removes everything hack/kube/up.sh made — the cluster's
# processes and containers, network namespaces, veths, the bridge, iptables
# rules (kube-proxy's and the guard), the node's address, sysctls, cgroups,
# mounts and state. Safe to run when nothing is up.
set -uo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=guard.sh
source "$KIT_DIR/guard.sh"
need_root "make kube-down"

# 1. processes: the components (TERM, then KILL after 10 s), then every
# process left in the cluster's cgroups (containerd shims, containers).
comps=()
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
	pid_alive "${COMPONENTS[i]}" && comps+=("$(cat "$RUN_DIR/${COMPONENTS[i]}.pid")")
done
if [ ${#comps[@]} -gt 0 ]; then
	kill -TERM "${comps[@]}" 2>/dev/null
	# shellcheck disable=SC2016 # expanded by the inner shell
	wait_for "the components to stop" 10 bash -c 'for p; do kill -0 "$p" 2>/dev/null && exit 1; done; exit 0' _ "${comps[@]}" ||
		kill -KILL "${comps[@]}" 2>/dev/null
fi
cgroup_pids() {
	local h
	for h in "$CGROUP2_ROOT" /sys/fs/cgroup/*; do
		[ -d "$h/$CGROUP" ] && find "$h/$CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null
	done | sort -u
}
for sig in TERM KILL KILL KILL; do
	pids=$(cgroup_pids)
	[ -z "$pids" ] && break
	# shellcheck disable=SC2086 # a list of pids
	kill -"$sig" $pids 2>/dev/null
	wait_for "the cluster's processes to exit" 5 bash -c "[ -z \"\$(find $CGROUP2_ROOT/$CGROUP -name cgroup.procs -exec cat {} + 2>/dev/null)\" ]"
done
[ -n "$(cgroup_pids)" ] && say "warning: processes still in cgroup $CGROUP: $(cgroup_pids | tr '\n' ' ')"

# 2. pod network namespaces (those holding an address of the pod range),
# their veths, the bridge.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
	if ip netns exec "$ns" ip -4 -o addr show 2>/dev/null | grep -q " ${NODE_POD_CIDR%.*/*}\."; then
		ip netns delete "$ns"
	fi
done
for veth in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
	ip link delete "$veth" 2>/dev/null
done
ip link delete "$BRIDGE" 2>/dev/null

# 3. iptables: kube-proxy's chains, then the guard.
if [ -x "$BIN_DIR/kube-proxy" ]; then
	"$BIN_DIR/kube-proxy" --cleanup >/dev/null 2>&1
fi
for ipt in iptables ip6tables; do
	for table in nat filter mangle; do
		for chain in $($ipt -w -t $table -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
			$ipt -w -t $table -S 2>/dev/null | grep -E -- "-j $chain( |$)" | grep -v "^-A $chain " |
				sed 's/^-A/-D/' | while read -r rule; do
				# shellcheck disable=SC2086 # the rule is a list of words
				$ipt -w -t $table $rule 2>/dev/null
			done
		done
		for chain in $($ipt -w -t $table -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
			$ipt -w -t $table -F "$chain" 2>/dev/null
		done
		for chain in $($ipt -w -t $table -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
			$ipt -w -t $table -X "$chain" 2>/dev/null
		done
	done
done
guard_down

# 4. the node's address, sysctls.
ip addr del "$NODE_IP/32" dev lo 2>/dev/null
if [ -f "$STATE_DIR/sysctl.saved" ]; then
	# the first value recorded for each key is the machine's own
	awk -F= '!seen[$1]++' "$STATE_DIR/sysctl.saved" | while IFS= read -r kv; do sysctl -qw "$kv"; done
fi

# 5. mounts under the state directories, then the state, then the cgroups.
for dir in "$STATE_DIR" "$RUN_DIR"; do
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null; done
done
if [ -f "$STATE_DIR/created" ]; then
	# machine paths that the cluster created (up.sh noted which were absent)
	while read -r p; do rm -rf "${p:?}"; done <"$STATE_DIR/created"
fi
rm -rf "$STATE_DIR" "$RUN_DIR"
for h in "$CGROUP2_ROOT" /sys/fs/cgroup/*; do
	[ -d "$h/$CGROUP" ] && find "$h/$CGROUP" -depth -type d -exec rmdir {} \; 2>/dev/null
done
say "cluster removed"
exit 0
