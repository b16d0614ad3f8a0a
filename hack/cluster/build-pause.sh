#!/usr/bin/env bash
# Build the pod sandbox ("pause") image locally: Kubernetes' own pause.c compiled statically
# into a FROM-scratch image, saved as a docker archive under the cache. Prints the archive path.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
. "$HERE/lib.sh"

bin_dir="$(k8s_bin_dir)"
[ -f "$bin_dir/pause.c" ] || die "missing $bin_dir/pause.c (run hack/cluster/build-k8s.sh)"
key="$( { sha256sum "$bin_dir/pause.c"; echo "$PAUSE_IMAGE"; } | sha256sum | cut -c1-12)"
archive="$ARCLIGHT_CACHE/images/pause-$key.tar"
if [ -f "$archive" ]; then echo "$archive"; exit 0; fi

mkdir -p "$ARCLIGHT_CACHE/images"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
gcc -Os -static -Wall -Werror -DVERSION="arclight-$key" -o "$tmp/pause" "$bin_dir/pause.c"
strip "$tmp/pause"

scratch_image_archive "$tmp/pause" /pause "$PAUSE_IMAGE" "$archive" \
  --entrypoint '["/pause"]' --user 65535:65535
echo "$archive"
