#!/usr/bin/env bash
# make kube-load IMAGE=file.tar: imports image tarballs (docker-archive, as
# `docker save` and `make images` write them, or an OCI archive) into the
# node's containerd, like `kind load image-archive`. Pods use them with
# imagePullPolicy IfNotPresent (or a tag other than :latest); nothing is pulled.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
need_root "make kube-load"
[ $# -gt 0 ] || die "usage: load.sh IMAGE.tar..."
[ -S "$CTR_SOCK" ] || die "no cluster is running (make kube-up first)"
for f in "$@"; do
	[ -f "$f" ] || die "$f: no such image tarball"
	ctr_ images import "$f" | sed "s#^#kube: load $(basename "$f"): #" >&2 ||
		die "$f: containerd could not import it (want a docker-archive or OCI archive tarball)"
done
