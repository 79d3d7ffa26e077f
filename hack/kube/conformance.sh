#!/usr/bin/env bash
# make conformance: runs the Gateway API conformance suite (module
# sigs.k8s.io/gateway-api/conformance v1.6.3, conformance/) against Bowline
# on the running test cluster ($KUBECONFIG, as make kube-up prints it).
#
# First it builds the suite's backend, echo-basic, from that module and
# imports it into the node's containerd under every name the suite's
# manifests use (registry.k8s.io/gateway-api/echo-basic:TAG), as the kit
# imports all its images: nothing is pulled. The base manifests also run a
# CoreDNS for the UDPRoute tests, which Bowline does not claim; that
# Deployment gets the kit's pause program under CoreDNS's image name, so
# that its pod is Ready and nothing forwards DNS anywhere.
#
# Env: CONFORMANCE_REPORT (default conformance/reports/v1.6.3/report.yaml),
# CONFORMANCE_RUN_TEST (one test's ShortName), CONFORMANCE_RUN_TESTS (a
# comma-separated list of them), CONFORMANCE_TIMEOUT (90m).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root "make conformance"
[ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set (make conformance sets it from make kube-up)"
GO="${GO:-go}"
out="$REPO_DIR/bin/conformance"
kit="$REPO_DIR/bin/kube/kit"
mkdir -p "$out"
(cd "$REPO_DIR/conformance" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags '-s -w' -o "$out/echo-basic" sigs.k8s.io/gateway-api/conformance/echo-basic)
[ -x "$kit-pause" ] || (cd "$KIT_DIR/tools/kit" && CGO_ENABLED=0 "$GO" build -trimpath -o "$kit" . && CGO_ENABLED=0 "$GO" build -trimpath -o "$kit-pause" ./pause)
# every echo-basic tag the v1.6.3 manifests name
tags=$(cd "$REPO_DIR/conformance" && grep -rhoE 'registry\.k8s\.io/gateway-api/echo-basic:[A-Za-z0-9.-]+' \
	"$("$GO" list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api/conformance)" | sort -u)
images=()
for ref in $tags; do
	f="$out/echo-basic-${ref##*:}.tar"
	"$kit" image -o "$f" -tag "$ref" -file "$out/echo-basic:/echo-basic" -- /echo-basic
	images+=("$f")
done
"$kit" image -o "$out/coredns.tar" -tag registry.k8s.io/coredns/coredns:v1.12.2 -file "$kit-pause:/coredns" -- /coredns
images+=("$out/coredns.tar")
"$KIT_DIR/load.sh" "${images[@]}"

report="${CONFORMANCE_REPORT:-$REPO_DIR/conformance/reports/v1.6.3/report.yaml}"
mkdir -p "$(dirname "$report")"
args=(-bowline-report "$report")
[ -n "${CONFORMANCE_RUN_TEST:-}" ] && args+=(-bowline-run-test "$CONFORMANCE_RUN_TEST")
[ -n "${CONFORMANCE_RUN_TESTS:-}" ] && args+=(-bowline-run-tests "$CONFORMANCE_RUN_TESTS")
cd "$REPO_DIR/conformance"
"$GO" test -count=1 -timeout "${CONFORMANCE_TIMEOUT:-90m}" -run '^TestConformance$' -v . -args "${args[@]}"
