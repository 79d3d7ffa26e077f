#!/usr/bin/env bash
# Data-plane benchmark entry point: installs what the harness needs, builds
# bowline, then runs bench/dataplane/cmd/dpbench with the given flags.
#
#   bench/dataplane/run.sh            # full run (~15 min): 2/16/64 connections, 30 s per point
#   bench/dataplane/run.sh -short     # ~2 min: 16 connections, 5 s per point
#   BOWLINE_SRC=HEAD bench/dataplane/run.sh -short   # bowline built from the last commit, not the work tree
#
# Installs: fortio v1.68.2 into bench/.bin (Go module proxy); nginx and haproxy
# with apt-get when missing (root only; otherwise those paths are skipped).
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
BIN=bench/.bin
mkdir -p "$BIN"
FORTIO_VERSION=v1.68.2 # newer releases need a module the workplace's proxy refuses

if ! "$BIN/fortio" version 2>/dev/null | grep -q "${FORTIO_VERSION#v}"; then
  echo "installing fortio $FORTIO_VERSION into $BIN" >&2
  GOBIN="$PWD/$BIN" GOFLAGS=-mod=mod "$GO" install "fortio.org/fortio@$FORTIO_VERSION"
fi

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y "${missing[@]}" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
    # Debian's postinst may start the system nginx on :80; the benchmark runs its own instances.
    if [ -f /run/nginx.pid ]; then kill "$(cat /run/nginx.pid)" 2>/dev/null || true; fi
  else
    echo "warning: ${missing[*]} missing and cannot apt-get install as non-root; those paths are skipped" >&2
  fi
fi

# bowline from the work tree, or from a commit (BOWLINE_SRC=HEAD) when others
# are editing the tree.
src=$PWD
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
if [ -n "${BOWLINE_SRC:-}" ]; then
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  git archive "$BOWLINE_SRC" | tar -x -C "$src"
  commit=$(git rev-parse --short "$BOWLINE_SRC")
  # The harness itself always comes from this tree.
  rm -rf "$src/bench/dataplane/cmd" && cp -r bench/dataplane/cmd "$src/bench/dataplane/cmd"
fi
echo "building bowline ($commit)" >&2
(cd "$src" && CGO_ENABLED=0 "$GO" build -trimpath -o "$OLDPWD/$BIN/bowline" ./cmd/bowline \
  && "$GO" build -o "$OLDPWD/$BIN/dpbench" ./bench/dataplane/cmd/dpbench)
exec "$BIN/dpbench" -commit "$commit" "$@"
