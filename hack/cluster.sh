#!/usr/bin/env bash
# The Arclight local Kubernetes cluster.
#   hack/cluster.sh up [--control-plane-only]   start (or complete) the cluster; prints the admin kubeconfig path last
#   hack/cluster.sh down                        stop everything; no process, mount, link or rule left behind
#   hack/cluster.sh status                      what runs (exit 1 unless all of the current mode runs)
#   hack/cluster.sh kubeconfig [--operator]     admin kubeconfig path, or arclight-system/arclight-operator-dev's (a fresh token)
#   hack/cluster.sh load-image ARCHIVE          import an OCI/docker archive into the cluster's containerd (k8s.io)
#   hack/cluster.sh kubectl ARGS...             run the cluster's own kubectl (1.20) as admin
#   hack/cluster.sh restart-apiserver           stop kube-apiserver, start it with the same flags, wait for /readyz (local backend; 2: unsupported)
# Uses kind when `kind` and a working Docker engine exist (or ARCLIGHT_CLUSTER_BACKEND=kind),
# otherwise Kubernetes 1.20.2 built from Debian's source package, run as local processes
# (hack/cluster/local.sh). State: ${ARCLIGHT_CLUSTER_DIR:-~/.cache/arclight/cluster}.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)/cluster"
# shellcheck source=hack/cluster/lib.sh
. "$HERE/lib.sh"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

backend="${ARCLIGHT_CLUSTER_BACKEND:-}"
if [ -z "$backend" ]; then
  if command -v kind >/dev/null && docker info >/dev/null 2>&1; then backend=kind; else backend=local; fi
fi
case "$backend" in
  kind) . "$HERE/kind.sh" ;;
  local) . "$HERE/local.sh" ;;
  *) die "unknown ARCLIGHT_CLUSTER_BACKEND=$backend (kind|local)" ;;
esac

# Serialize up/down between concurrent callers (e.g. two pytest sessions).
lock() { mkdir -p "$(dirname "$STATE")"; exec 9>"$STATE.lock"; flock -w 1200 9 || die "timed out waiting for $STATE.lock"; }

cmd="${1:-}"; [ $# -eq 0 ] || shift
case "$cmd" in
  up)
    mode=full
    case "${1:-}" in --control-plane-only) mode=control-plane ;; "") ;; *) usage ;; esac
    [ "$EUID" -eq 0 ] || die "needs root (network setup, containerd, kubelet)"
    lock
    "${backend}_up" "$mode"
    ;;
  down) lock; "${backend}_down" ;;
  status) "${backend}_status" ;;
  kubeconfig)
    case "${1:-}" in --operator|"") ;; *) usage ;; esac
    [ -f "$STATE/admin.kubeconfig" ] || die "no cluster kubeconfig at $STATE (run hack/cluster.sh up)"
    if [ "${1:-}" = --operator ]; then
      # The development account (not the chart's, which `helm uninstall` deletes), with a
      # token minted on every call: a kubeconfig this prints is never stale.
      if [ "$backend" = local ]; then k="$(k8s_bin_dir)/kubectl"; else k="$(command -v kubectl)"; fi
      "$HERE/operator-sa.sh" "$k" "$STATE/admin.kubeconfig" "$STATE/operator.kubeconfig"
      echo "$STATE/operator.kubeconfig"
    else
      echo "$STATE/admin.kubeconfig"
    fi
    ;;
  load-image)
    if [ $# -ne 1 ] || [ ! -f "$1" ]; then die "load-image needs an existing archive file"; fi
    "${backend}_load_image" "$1"
    ;;
  restart-apiserver)
    if [ "$backend" != local ]; then
      echo "cluster: restart-apiserver is not supported on the $backend backend" >&2; exit 2
    fi
    [ "$EUID" -eq 0 ] || die "needs root (the control plane runs as root)"
    lock
    local_restart_apiserver
    ;;
  kubectl)
    if [ "$backend" = local ]; then k="$(k8s_bin_dir)/kubectl"; else k="$(command -v kubectl)"; fi
    exec "$k" --kubeconfig "$STATE/admin.kubeconfig" "$@"
    ;;
  *) usage ;;
esac
