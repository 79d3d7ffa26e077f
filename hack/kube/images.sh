#!/usr/bin/env bash
# make images: packs static binaries into image tarballs under IMAGES_DIR
# (default bin/images), each one layer on an empty image, no docker needed:
#   $HUB/bowline:$TAG           bowline (discovery, proxy and init in one binary),
#                               with Debian's iptables for the init container
#   registry.istio.io/release/examples-bookinfo-{details-v1,ratings-v1,
#     reviews-v1,reviews-v2,reviews-v3,productpage-v1}:1.20.3
#                               the Go Bookinfo apps under exactly the names
#                               Istio's samples/bookinfo/platform/kube/bookinfo.yaml
#                               uses, each listening on all interfaces, the
#                               reviews version's behaviour baked in
# Env: BOWLINE_BIN (the static bowline binary, default bin/bowline), HUB, TAG, GO.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
GO="${GO:-go}"
out="${IMAGES_DIR:-$repo/bin/images}"
bowline="${BOWLINE_BIN:-$repo/bin/bowline}"
HUB="${HUB:?set HUB (the Makefile does)}"
TAG="${TAG:?set TAG (the Makefile does)}"
BOOKINFO_HUB=registry.istio.io/release
BOOKINFO_TAG=1.20.3
kit="$repo/bin/kube/kit"
apps="$repo/bin/bookinfo-static"

mkdir -p "$out" "$apps" "$(dirname "$kit")"
(cd "$here/tools/kit" && CGO_ENABLED=0 "$GO" build -trimpath -o "$kit" .)
# CGO_ENABLED=0: a dynamically linked binary fails in an empty image with
# "no such file or directory" (there is no loader).
(cd "$repo" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags '-s -w' -o "$apps/" \
	./samples/bookinfo/cmd/details ./samples/bookinfo/cmd/ratings \
	./samples/bookinfo/cmd/reviews ./samples/bookinfo/cmd/productpage)
[ -x "$bowline" ] || { echo "images.sh: $bowline missing (make build)" >&2; exit 1; }

image() { # image FILE TAG BINARY [ENV...]
	local file=$1 tag=$2 binary=$3 args=()
	shift 3
	for e in "$@"; do args+=(-env "$e"); done
	"$kit" image -o "$out/$file" -tag "$tag" -file "$binary:/usr/local/bin/$(basename "$binary")" \
		"${args[@]}" -- "/usr/local/bin/$(basename "$binary")"
	echo "images.sh: $out/$file  $tag" >&2
}

# The init step (bowline iptables, the istio-init container) runs
# iptables-restore in the pod's network namespace: Debian's iptables
# (nf_tables backend, the multi-call xtables-nft-multi) goes into the bowline
# image with the shared libraries, the loader and the extensions it loads.
xt="$(command -v xtables-nft-multi || true)"
if [ -z "$xt" ] && [ "$(id -u)" = 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables >/dev/null
	xt="$(command -v xtables-nft-multi || true)"
fi
[ -n "$xt" ] || { echo "images.sh: no xtables-nft-multi: apt-get install iptables (the bowline image carries it for the init container)" >&2; exit 1; }
xt="$(readlink -f "$xt")"
iptables_files=()
for n in iptables iptables-restore iptables-save; do iptables_files+=(-file "$xt:/usr/bin/$n"); done
while read -r lib; do
	iptables_files+=(-file "$(readlink -f "$lib"):$lib")
done < <(ldd "$xt" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
# libxtables' built-in XTABLES_LIBDIR: /usr/lib/<multiarch>/xtables on Debian
xtdir="$(dirname "$(ldd "$xt" | awk '/libxtables/ {print $3}')")"
case "$xtdir" in /lib/*) xtdir="/usr$xtdir" ;; esac
xtdir="$xtdir/xtables"
for ext in "$xtdir"/*.so; do
	iptables_files+=(-file "$(readlink -f "$ext"):$ext")
done

"$kit" image -o "$out/bowline.tar" -tag "$HUB/bowline:$TAG" -file "$bowline:/usr/local/bin/bowline" \
	"${iptables_files[@]}" -- /usr/local/bin/bowline
echo "images.sh: $out/bowline.tar  $HUB/bowline:$TAG (with iptables ${#iptables_files[@]} files)" >&2
# The apps listen on all of the pod's interfaces (BIND_ADDR, default
# 127.0.0.1 for `bowline up`) on Istio's port 9080, and keep serving for 5s
# after SIGTERM (SHUTDOWN_DELAY), while the removal of their endpoint reaches
# the callers: Kubernetes sends SIGTERM as it starts that removal.
listen=(BIND_ADDR=0.0.0.0 PORT=9080 SHUTDOWN_DELAY=5s)
image bookinfo-details-v1.tar "$BOOKINFO_HUB/examples-bookinfo-details-v1:$BOOKINFO_TAG" "$apps/details" "${listen[@]}"
image bookinfo-ratings-v1.tar "$BOOKINFO_HUB/examples-bookinfo-ratings-v1:$BOOKINFO_TAG" "$apps/ratings" "${listen[@]}"
image bookinfo-productpage-v1.tar "$BOOKINFO_HUB/examples-bookinfo-productpage-v1:$BOOKINFO_TAG" "$apps/productpage" "${listen[@]}"
image bookinfo-reviews-v1.tar "$BOOKINFO_HUB/examples-bookinfo-reviews-v1:$BOOKINFO_TAG" "$apps/reviews" "${listen[@]}" \
	ENABLE_RATINGS=false
image bookinfo-reviews-v2.tar "$BOOKINFO_HUB/examples-bookinfo-reviews-v2:$BOOKINFO_TAG" "$apps/reviews" "${listen[@]}" \
	ENABLE_RATINGS=true STAR_COLOR=black
image bookinfo-reviews-v3.tar "$BOOKINFO_HUB/examples-bookinfo-reviews-v3:$BOOKINFO_TAG" "$apps/reviews" "${listen[@]}" \
	ENABLE_RATINGS=true STAR_COLOR=red
