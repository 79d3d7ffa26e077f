# shellcheck shell=bash
# The kit's network guard (sourced after lib.sh): nothing addressed to, or
# coming from, the node, pod or service ranges, and nothing sent by a process
# of the cluster's cgroup, may leave through a real interface (anything but lo
# and the kit's bridge). The rules live in the mangle table, which kube-proxy
# leaves alone, jumped to first from OUTPUT, FORWARD and POSTROUTING; the
# conntrack matches catch packets that kube-proxy's DNAT/SNAT rewrote.

guard_rules4() {
	cat <<EOF
-o lo -j RETURN
-o $BRIDGE -j RETURN
-d $POD_CIDR -j DROP
-s $POD_CIDR -j DROP
-d $SERVICE_CIDR -j DROP
-s $SERVICE_CIDR -j DROP
-d $NODE_IP/32 -j DROP
-s $NODE_IP/32 -j DROP
-m conntrack --ctorigdst $SERVICE_CIDR -j DROP
-m conntrack --ctorigsrc $POD_CIDR -j DROP
-m cgroup --path $CGROUP -j DROP
EOF
}

guard_rules6() {
	cat <<EOF
-o lo -j RETURN
-o $BRIDGE -j RETURN
-m cgroup --path $CGROUP -j DROP
EOF
}

GUARD_HOOKS=(OUTPUT FORWARD POSTROUTING)

# guard_up installs the chain (fresh) and puts its jump first in each hook.
guard_up() {
	local ipt rules rule hook
	for ipt in iptables ip6tables; do
		rules=guard_rules4
		[ "$ipt" = ip6tables ] && rules=guard_rules6
		$ipt -w -t mangle -N "$GUARD_CHAIN" 2>/dev/null || $ipt -w -t mangle -F "$GUARD_CHAIN"
		while read -r rule; do
			# shellcheck disable=SC2086 # the rule is a list of words
			$ipt -w -t mangle -A "$GUARD_CHAIN" $rule -m comment --comment bowline-kube-kit || return 1
		done < <($rules)
		for hook in "${GUARD_HOOKS[@]}"; do
			while $ipt -w -t mangle -D "$hook" -j "$GUARD_CHAIN" 2>/dev/null; do :; done
			$ipt -w -t mangle -I "$hook" 1 -j "$GUARD_CHAIN" || return 1
		done
	done
}

# guard_check fails unless every hook's first rule jumps to the guard chain
# and the chain holds the expected rules.
guard_check() {
	local ipt hook first want got
	for ipt in iptables ip6tables; do
		for hook in "${GUARD_HOOKS[@]}"; do
			first=$($ipt -w -t mangle -S "$hook" 2>/dev/null | sed -n 2p)
			[ "$first" = "-A $hook -j $GUARD_CHAIN" ] || {
				say "guard: $ipt mangle $hook does not start with the jump to $GUARD_CHAIN (got: $first)"
				return 1
			}
		done
		want=$(guard_rules4 | wc -l)
		[ "$ipt" = ip6tables ] && want=$(guard_rules6 | wc -l)
		got=$($ipt -w -t mangle -S "$GUARD_CHAIN" 2>/dev/null | grep -c -- '-A ')
		[ "$got" = "$want" ] || {
			say "guard: $ipt mangle $GUARD_CHAIN has $got rules, want $want"
			return 1
		}
	done
}

guard_down() {
	local ipt hook
	for ipt in iptables ip6tables; do
		for hook in "${GUARD_HOOKS[@]}"; do
			while $ipt -w -t mangle -D "$hook" -j "$GUARD_CHAIN" 2>/dev/null; do :; done
		done
		$ipt -w -t mangle -F "$GUARD_CHAIN" 2>/dev/null || true
		$ipt -w -t mangle -X "$GUARD_CHAIN" 2>/dev/null || true
	done
}
