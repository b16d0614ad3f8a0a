#!/usr/bin/env bash
# Download (once) the Debian packages an image installs on top of the base and print their
# directory: ~/.cache/arclight/images/debs/<image>-<version>-<hash>, keyed by the package's
# candidate version in this host's apt lists, the base root file system and this script.
#   postgres  postgresql-15 and every dependency the base lacks (no Recommends)
# apt resolves against the base's own dpkg status (read from its tarball), with its cache in a
# scratch directory: exactly the .deb files `apt-get install` in the image needs, from the
# Debian mirror configured in apt (bookworm, as the base), with their SHA256SUMS. The image
# build then needs no network.
set -euo pipefail
SELF="$(realpath "$0")"
cd "$(dirname "$SELF")/../.."
image="${1:?usage: debs.sh postgres}"
CACHE="${ARCLIGHT_CACHE:-$HOME/.cache/arclight}"
log() { echo "debs: $*" >&2; }
case "$image" in
  postgres) package=postgresql-15 ;;
  *) log "unknown image $image"; exit 2 ;;
esac

candidate() { apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
version="$(candidate)"
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  apt-get -q update >&2; version="$(candidate)"
fi
[ -n "$version" ] && [ "$version" != "(none)" ] || { log "$package: no candidate in apt"; exit 1; }
base="$(bash hack/images/base-rootfs.sh)"
key="$(printf '%s\n' "$package" "$version" "$(basename "$base")" | cat - "$SELF" | sha256sum | cut -c1-12)"
dest="$CACHE/images/debs/$image-$version-$key"
if [ -d "$dest" ]; then echo "$dest"; exit 0; fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/cache/archives/partial"
tar -xOf "$base" ./var/lib/dpkg/status >"$scratch/status"
fetch() {
  apt-get -q -y --download-only --no-install-recommends -o Debug::NoLocking=1 \
    -o Dir::State::status="$scratch/status" -o Dir::Cache="$scratch/cache" \
    install "$package=$version" >&2
}
log "downloading $package $version and what the base lacks"
if ! fetch; then  # lists older than the mirror (a version gone from it): refresh them, once
  [ -z "${ARCLIGHT_DEBS_UPDATED:-}" ] || exit 1
  apt-get -q update >&2; rm -rf "$scratch"
  ARCLIGHT_DEBS_UPDATED=1 exec bash "$SELF" "$image"
fi
mkdir -p "$CACHE/images/debs"
rm -rf "$dest.tmp"; mkdir "$dest.tmp"
mv "$scratch"/cache/archives/*.deb "$dest.tmp/"
(cd "$dest.tmp" && sha256sum -- *.deb >SHA256SUMS)
mv "$dest.tmp" "$dest"
log "$dest: $(ls "$dest" | wc -l) packages, $(du -sh "$dest" | cut -f1)"
echo "$dest"
