#!/usr/bin/env bash
# Build a tiny locally made test image (FROM scratch + Debian's busybox-static with its applet
# links), cached as a docker archive. Prints "ARCHIVE IMAGE".
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
. "$HERE/lib.sh"

BUSYBOX=/bin/busybox
"$BUSYBOX" --list >/dev/null 2>&1 || die "needs busybox-static (hack/install-deps.sh)"
key="$(sha256sum "$BUSYBOX" | cut -c1-12)"
image="docker.io/arclight/busybox:$key"
archive="$ARCLIGHT_CACHE/images/busybox-$key.tar"
if [ ! -f "$archive" ]; then
  mkdir -p "$ARCLIGHT_CACHE/images"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/tmp"
  install -m 0755 "$BUSYBOX" "$tmp/rootfs/bin/busybox"
  for applet in $("$BUSYBOX" --list); do [ "$applet" = busybox ] || ln -s busybox "$tmp/rootfs/bin/$applet"; done
  scratch_image_archive "$tmp/rootfs/" / "$image" "$archive" --env PATH=/bin --cmd '["/bin/sh"]'
fi
echo "$archive $image"
