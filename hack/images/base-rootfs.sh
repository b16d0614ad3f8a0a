#!/usr/bin/env bash
# Build (once) a minimal Debian bookworm root filesystem with Debian's Python 3.11 and print the
# path of its tarball: ~/.cache/arclight/base/bookworm-<hash>.tar. The hash covers the mirror, the
# package list and this script, so an unchanged base is reused. Needs root and debootstrap; the
# packages come from the Debian mirror configured in apt (no registry, no Docker Hub).
set -euo pipefail
CACHE="${ARCLIGHT_CACHE:-$HOME/.cache/arclight}/base"
SUITE=bookworm
# python3-venv: ensurepip for the image venvs; libgomp1: OpenMP for torch CPU kernels;
# the shared libraries below are what the relocated CPython 3.12 extension modules link to.
PACKAGES=python3,python3-venv,ca-certificates,libgomp1,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,libuuid1,libreadline8,libncursesw6,zlib1g

log() { echo "base-rootfs: $*" >&2; }

# The first http(s) mirror that apt uses for the bookworm suite (deb822 or one-line format).
apt_mirror() {
  local uri
  uri="$(awk 'BEGIN{RS=""; FS="\n"} /Types:[^\n]*deb([ \n]|$)/ && /Suites:[^\n]*bookworm([ \n]|$)/ {
           for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, a, " "); print a[2]; exit } }' \
           /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)"
  [ -n "$uri" ] || uri="$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' \
           /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)"
  [ -n "$uri" ] || { log "no bookworm mirror configured in apt"; exit 1; }
  echo "$uri"
}

mirror="$(apt_mirror)"
key="$(printf '%s\n' "$mirror" "$SUITE" "$PACKAGES" | cat - "$0" | sha256sum | cut -c1-12)"
tarball="$CACHE/$SUITE-$key.tar"
if [ -s "$tarball" ]; then echo "$tarball"; exit 0; fi

command -v debootstrap >/dev/null || { log "debootstrap missing (apt-get install debootstrap)"; exit 1; }
[ "$(id -u)" = 0 ] || { log "debootstrap needs root"; exit 1; }
mkdir -p "$CACHE"
root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
cleanup() {
  for m in proc sys dev/pts dev; do mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"; done
  rm -rf "$root"
}
trap cleanup EXIT

log "debootstrap --variant=minbase $SUITE from $mirror"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$mirror" >&2
for m in proc sys dev/pts dev; do mountpoint -q "$root/$m" && umount -l "$root/$m"; done

# Slim: package caches and lists, documentation, logs.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old "$root"/var/log/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
       "$root"/usr/share/locale/* "$root"/tmp/* "$root"/dev/*

tar --create --file "$tarball.tmp" --directory "$root" --numeric-owner --sort=name \
    --mtime='2000-01-01 00:00Z' --exclude=./proc/* --exclude=./sys/* --exclude=./run/* .
mv "$tarball.tmp" "$tarball"
log "wrote $tarball ($(du -h "$tarball" | cut -f1))"
echo "$tarball"
