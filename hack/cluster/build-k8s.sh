#!/usr/bin/env bash
# Build the Kubernetes 1.20.2 binaries from Debian bookworm's `kubernetes` source package
# (pinned version, .dsc checksum verified) with the vendored modern-go/reflect2 replaced by
# Debian's 1.0.2 (the vendored 1.0.1 crashes under Go 1.18+), and cache them under
# ~/.cache/arclight/k8s-1.20.2-<patchhash>/. Prints the cache directory on stdout.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
. "$HERE/lib.sh"

DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
REFLECT2_DIR=/usr/share/gocode/src/github.com/modern-go/reflect2

out="$(k8s_bin_dir)"
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi

[ -d "$REFLECT2_DIR" ] || die "missing $REFLECT2_DIR (run hack/install-deps.sh)"
work="$ARCLIGHT_CACHE/build/kubernetes-$DEB_VERSION"
rm -rf "$work" && mkdir -p "$work"
cd "$work"
log "fetching kubernetes $DEB_VERSION source"
apt-get source --download-only "kubernetes=$DEB_VERSION" >/dev/null 2>&1 \
  || die "apt-get source kubernetes=$DEB_VERSION failed (deb-src entry? run hack/install-deps.sh)"
echo "$K8S_DEB_DSC_SHA256  kubernetes_${DEB_VERSION}.dsc" | sha256sum -c --quiet - \
  || die "checksum mismatch for kubernetes_${DEB_VERSION}.dsc"
# dpkg-source verifies the tarballs against the checksums in the (verified) .dsc.
dpkg-source --require-strong-checksums -x "kubernetes_${DEB_VERSION}.dsc" src >/dev/null 2>&1 \
  || die "dpkg-source could not unpack or verify kubernetes_${DEB_VERSION}"

log "replacing vendored github.com/modern-go/reflect2 with Debian's $(reflect2_version)"
rm -rf src/vendor/github.com/modern-go/reflect2
cp -r "$REFLECT2_DIR" src/vendor/github.com/modern-go/reflect2
rm -f src/vendor/github.com/modern-go/reflect2/go.mod

log "building ${K8S_BINARIES[*]} (several minutes)"
start=$SECONDS
(
  cd src
  export GOPATH="$work/src/.go" GOCACHE="$ARCLIGHT_CACHE/go-build" CGO_ENABLED=0 GOFLAGS=-mod=vendor
  mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
  make WHAT="${K8S_BINARIES[*]/#/cmd/}" >"$work/build.log" 2>&1
) || { tail -n 40 "$work/build.log" >&2; die "kubernetes build failed (log: $work/build.log)"; }

mkdir -p "$out"
for b in "${K8S_BINARIES[@]}"; do install -m 0755 "src/_output/bin/$b" "$out/$b"; done
# Kubernetes' own pause.c, kept for build-pause.sh.
install -m 0644 src/build/pause/linux/pause.c "$out/pause.c"
touch "$out/.complete"
log "built in $((SECONDS - start))s -> $out"
cd / && rm -rf "$work"
echo "$out"
