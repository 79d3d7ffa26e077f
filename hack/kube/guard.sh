# shellcheck shell=bash
# The kit's network guard (sourced after lib.sh): nothing addressed to, or
# coming from, the node, pod or service ranges, and nothing sent by a process
# of the cluster's cgroup, may leave through a real interface (anything but lo
# and the kit's bridge). The rules live in the mangle table, which kube-proxy
# leaves alone, jumped to first from OUTPUT, FORWARD and POSTROUTING; the
# conntrack matches catch packets that kube-proxy's DNAT/SNAT rewrote.

# Chains and their rules, per family. GUARD is jumped to from OUTPUT, FORWARD
# and POSTROUTING; GUARD-CG (the cgroup match is valid only where a packet
# has a local socket) from OUTPUT and POSTROUTING.
guard_rules() { # guard_rules iptables|ip6tables CHAIN
	echo "-o lo -j RETURN"
	echo "-o $BRIDGE -j RETURN"
	case "$1 $2" in
	"iptables $GUARD_CHAIN")
		for cidr in "$POD_CIDR" "$SERVICE_CIDR" "$NODE_IP/32"; do
			echo "-d $cidr -j DROP"
			echo "-s $cidr -j DROP"
		done
		echo "-m conntrack --ctorigdst $SERVICE_CIDR -j DROP"
		echo "-m conntrack --ctorigsrc $POD_CIDR -j DROP"
		echo "-i $BRIDGE -j DROP" ;;
	"ip6tables $GUARD_CHAIN")
		echo "-i $BRIDGE -j DROP" ;;
	*)
		echo "-m cgroup --path $CGROUP -j DROP" ;;
	esac
}

GUARD_CG_CHAIN=$GUARD_CHAIN-CG
guard_hooks() { # guard_hooks CHAIN
	if [ "$1" = "$GUARD_CHAIN" ]; then echo OUTPUT FORWARD POSTROUTING; else echo OUTPUT POSTROUTING; fi
}

# guard_up installs the chains (fresh) and puts their jumps first in each
# hook: GUARD at 1, GUARD-CG at 2.
guard_up() {
	local ipt chain rule hook pos
	for ipt in iptables ip6tables; do
		for chain in "$GUARD_CG_CHAIN" "$GUARD_CHAIN"; do
			$ipt -w -t mangle -N "$chain" 2>/dev/null || $ipt -w -t mangle -F "$chain"
			while read -r rule; do
				# shellcheck disable=SC2086 # the rule is a list of words
				$ipt -w -t mangle -A "$chain" $rule -m comment --comment bowline-kube-kit || return 1
			done < <(guard_rules "$ipt" "$chain")
			for hook in OUTPUT FORWARD POSTROUTING; do
				while $ipt -w -t mangle -D "$hook" -j "$chain" 2>/dev/null; do :; done
			done
		done
		for chain in "$GUARD_CG_CHAIN" "$GUARD_CHAIN"; do
			for hook in $(guard_hooks "$chain"); do
				$ipt -w -t mangle -I "$hook" 1 -j "$chain" || return 1
			done
		done
	done
}

# guard_check fails unless each hook starts with the jumps to the guard
# chains and the chains hold the expected rules.
guard_check() {
	local ipt chain hook got want pos
	for ipt in iptables ip6tables; do
		for chain in "$GUARD_CHAIN" "$GUARD_CG_CHAIN"; do
			pos=2 # line 1 of -S is the policy
			[ "$chain" = "$GUARD_CG_CHAIN" ] && pos=3
			for hook in $(guard_hooks "$chain"); do
				got=$($ipt -w -t mangle -S "$hook" 2>/dev/null | sed -n ${pos}p)
				[ "$got" = "-A $hook -j $chain" ] || {
					say "guard: $ipt mangle $hook rule $((pos - 1)) is not the jump to $chain (got: $got)"
					return 1
				}
			done
			want=$(guard_rules "$ipt" "$chain" | sed 's/$/ -m comment --comment bowline-kube-kit/' | sort)
			got=$($ipt -w -t mangle -S "$chain" 2>/dev/null | sed -n "s/^-A $chain //p" |
				sed -E 's/^(.*) (-m comment --comment bowline-kube-kit) (-j [A-Z]+)$/\1 \3 \2/' | sort)
			[ "$got" = "$want" ] || {
				say "guard: $ipt mangle $chain does not hold the expected rules"
				return 1
			}
		done
	done
}

guard_down() {
	local ipt chain hook
	for ipt in iptables ip6tables; do
		for chain in "$GUARD_CHAIN" "$GUARD_CG_CHAIN"; do
			for hook in OUTPUT FORWARD POSTROUTING; do
				while $ipt -w -t mangle -D "$hook" -j "$chain" 2>/dev/null; do :; done
			done
			$ipt -w -t mangle -F "$chain" 2>/dev/null || true
			$ipt -w -t mangle -X "$chain" 2>/dev/null || true
		done
	done
}
