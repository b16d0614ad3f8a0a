# shellcheck shell=bash
# The cluster on kind, used where `kind` and a working Docker engine exist
# (sourced by hack/cluster.sh after lib.sh).
KIND_CLUSTER=arclight

kind_exists() { kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; }

kind_up() {
  mkdir -p "$STATE"
  if kind_exists; then
    log "already running (kind cluster $KIND_CLUSTER)"
  else
    kind create cluster --name "$KIND_CLUSTER" --kubeconfig "$STATE/admin.kubeconfig" --wait 180s >&2
  fi
  kind get kubeconfig --name "$KIND_CLUSTER" > "$STATE/admin.kubeconfig"
  echo full > "$STATE/mode"
  "$HERE/operator-sa.sh" "$(command -v kubectl)" "$STATE/admin.kubeconfig" "$STATE/operator.kubeconfig"
  echo "$STATE/admin.kubeconfig"
}

kind_down() {
  kind_exists && kind delete cluster --name "$KIND_CLUSTER" >&2
  rm -f "$STATE/admin.kubeconfig" "$STATE/operator.kubeconfig" "$STATE/mode"
  log "down"
}

kind_status() {
  if kind_exists; then echo "kind cluster $KIND_CLUSTER: running"; else echo "kind cluster $KIND_CLUSTER: absent"; return 1; fi
}

kind_load_image() { kind load image-archive "$1" --name "$KIND_CLUSTER"; }
