#!/usr/bin/env bash
# Install (idempotently) the Debian packages the local cluster and the image builds need,
# and make sure a bookworm deb-src entry exists so `apt-get source kubernetes` works.
# Safe to run repeatedly: it only calls apt when something is missing.
set -euo pipefail

PACKAGES=(
  # cluster runtime
  etcd-server etcd-client containerd runc containernetworking-plugins
  iptables conntrack socat ebtables ethtool iproute2 kmod util-linux procps psmisc
  # kubernetes build from the Debian source package
  golang-go golang-github-modern-go-reflect2-dev build-essential dpkg-dev rsync
  # certificates, image builds
  openssl buildah debootstrap busybox-static skopeo jq curl ca-certificates gettext-base
  # ledger tests: a real Postgres server
  postgresql
)

APT=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
SOURCES=/etc/apt/sources.list.d/debian.sources
SRC_LIST=/etc/apt/sources.list.d/arclight-debian-src.sources

log() { echo "install-deps: $*" >&2; }

# Writes a deb-src stanza mirroring the first bookworm "deb" stanza of debian.sources.
ensure_deb_src() {
  if grep -rqsE '^(Types:.*deb-src|deb-src .*bookworm)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 1
  fi
  [ -f "$SOURCES" ] || { log "no $SOURCES to copy deb-src settings from"; exit 1; }
  awk 'BEGIN{RS=""; FS="\n"} /Suites:[^\n]*bookworm([ \n]|$)/ && !done {
         for (i = 1; i <= NF; i++) {
           if ($i ~ /^Types:/) print "Types: deb-src";
           else if ($i ~ /^(URIs|Suites|Components|Signed-By):/) print $i;
         }
         done = 1 }' "$SOURCES" > "$SRC_LIST"
  grep -q '^URIs:' "$SRC_LIST" || { rm -f "$SRC_LIST"; log "could not derive deb-src entry"; exit 1; }
  log "added $SRC_LIST"
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

updated=0
if ensure_deb_src; then "${APT[@]}" update; updated=1; fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  [ "$updated" = 1 ] || "${APT[@]}" update
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install --no-install-recommends "${missing[@]}"
fi
# The packaged containerd service would compete with ours for the default socket; keep it off.
if command -v systemctl >/dev/null && systemctl is-active -q containerd 2>/dev/null; then
  systemctl disable --now containerd >/dev/null 2>&1 || true
fi
log "all dependencies present"
