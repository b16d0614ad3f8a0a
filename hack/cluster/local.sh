# shellcheck shell=bash
# The kind-less local cluster: etcd, control plane, containerd, kubelet and kube-proxy as
# plain processes on this machine (sourced by hack/cluster.sh after lib.sh).
CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager)
NODE_COMPONENTS=(kube-scheduler containerd kubelet kube-proxy)
PKI="$STATE/pki"
export STATE PKI CONTAINERD_SOCK PAUSE_IMAGE CNI_BRIDGE POD_CIDR NODE_IP NODE_NAME

ctr_() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }
kubectl_() { "$BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" "$@"; }
# shellcheck disable=SC2016  # envsubst takes the variable names literally
render() { envsubst '${STATE} ${PKI} ${CONTAINERD_SOCK} ${PAUSE_IMAGE} ${CNI_BRIDGE} ${POD_CIDR} ${NODE_IP} ${NODE_NAME}' < "$HERE/templates/$1" > "$2"; }
https_ok() { curl -sf --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$1"; }
node_ready() {
  [ "$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

local_components() { if [ "$1" = full ]; then echo "${CONTROL_PLANE[@]}" "${NODE_COMPONENTS[@]}"; else echo "${CONTROL_PLANE[@]}"; fi; }

all_running() {
  local c
  for c in $(local_components "$1"); do is_running "$c" || return 1; done
}

# The node address lives on a port-less bridge: a non-loopback address owned by this machine
# (this kernel has no `dummy` link type). The link's alias records which state dir owns the
# host network, so a second state dir can neither take it over nor tear it down.
network_owner() { cat "/sys/class/net/$NODE_IF/ifalias" 2>/dev/null || true; }

setup_host_network() {
  local owner; owner="$(network_owner)"
  if [ -n "$owner" ] && [ "$owner" != "$STATE" ]; then
    die "the node network ($NODE_IF, $NODE_IP) belongs to the cluster in $owner"
  fi
  sysctl -qw net.ipv4.ip_forward=1
  [ ! -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || sysctl -qw net.bridge.bridge-nf-call-iptables=1
  ip link show "$NODE_IF" >/dev/null 2>&1 || ip link add "$NODE_IF" type bridge
  ip link set "$NODE_IF" alias "$STATE"
  ip addr replace "$NODE_IP/32" dev "$NODE_IF"
  ip link set "$NODE_IF" up
}

# The API server (the same flags on `up` and `restart-apiserver`); waits until /readyz.
start_apiserver() {
  start_proc kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address 0.0.0.0 --secure-port "$API_PORT" --advertise-address "$NODE_IP" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false \
    --client-ca-file "$PKI/ca.crt" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --api-audiences https://kubernetes.default.svc.cluster.local
  wait_healthy kube-apiserver 90 https_ok "https://127.0.0.1:$API_PORT/readyz"
}

start_control_plane() {
  start_proc etcd etcd --name arclight --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "arclight=http://127.0.0.1:$ETCD_PEER_PORT"
  wait_healthy etcd 30 curl -sf --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

  start_apiserver

  start_proc kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --port 0 --leader-elect=false --profiling=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --cluster-name arclight
  wait_healthy kube-controller-manager 60 curl -sfk --max-time 2 https://127.0.0.1:10257/healthz
}

start_node() {
  start_proc kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --port 0 --leader-elect=false --profiling=false
  wait_healthy kube-scheduler 60 curl -sfk --max-time 2 https://127.0.0.1:10259/healthz

  mkdir -p "$STATE/containerd" "$STATE/cni/net.d" "$STATE/kubelet"
  render containerd.toml "$STATE/containerd/config.toml"
  render 10-arclight.conflist "$STATE/cni/net.d/10-arclight.conflist"
  start_proc containerd containerd --config "$STATE/containerd/config.toml"
  wait_healthy containerd 30 ctr --address "$CONTAINERD_SOCK" version
  ctr_ images ls -q | grep -qx "$PAUSE_IMAGE" \
    || ctr_ images import "$("$HERE/build-pause.sh")" >/dev/null

  render kubelet.yaml "$STATE/kubelet/config.yaml"
  start_proc kubelet "$BIN/kubelet" --config "$STATE/kubelet/config.yaml" \
    --kubeconfig "$STATE/kubelet.kubeconfig" --root-dir "$STATE/kubelet" \
    --cert-dir "$STATE/kubelet/pki" --volume-plugin-dir "$STATE/kubelet/volume-plugins" \
    --container-runtime remote --container-runtime-endpoint "unix://$CONTAINERD_SOCK" \
    --pod-infra-container-image "$PAUSE_IMAGE" \
    --node-ip "$NODE_IP" --hostname-override "$NODE_NAME"
  wait_healthy kubelet 60 curl -sf --max-time 2 http://127.0.0.1:10248/healthz

  render kube-proxy.yaml "$STATE/kube-proxy.yaml"
  start_proc kube-proxy "$BIN/kube-proxy" --config "$STATE/kube-proxy.yaml"
  wait_healthy kube-proxy 60 curl -sf --max-time 2 http://127.0.0.1:10256/healthz
  wait_healthy kubelet 90 node_ready
}

local_up() {
  local mode=$1 current
  current="$(cat "$STATE/mode" 2>/dev/null || true)"
  [ "$current" != full ] || mode=full  # never downgrade: restart what died instead
  if [ -n "$current" ] && all_running "$mode"; then
    log "already running ($current)"
    echo "$STATE/admin.kubeconfig"
    return 0
  fi
  BIN="$("$HERE/build-k8s.sh")"
  mkdir -p "$STATE" "$LOGS"
  "$HERE/pki.sh"
  setup_host_network
  start_control_plane
  [ "$mode" = control-plane ] || start_node
  echo "$mode" > "$STATE/mode"
  "$HERE/operator-sa.sh" "$BIN/kubectl" "$STATE/admin.kubeconfig" "$STATE/operator.kubeconfig"
  log "up ($mode)"
  echo "$STATE/admin.kubeconfig"
}

# Kill every container of our containerd, then the daemon and any shim left behind.
stop_containers() {
  local ids id pid
  if is_running containerd; then
    ids="$(ctr_ tasks ls -q 2>/dev/null || true)"
    for id in $ids; do ctr_ tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    for _ in $(seq 1 40); do
      { ctr_ tasks ls 2>/dev/null || true; } | awk 'NR > 1 && $3 != "STOPPED" {f = 1} END {exit !f}' || break
      sleep 0.25
    done
    for id in $ids; do ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true; done
  fi
  stop_proc containerd
  for pid in $(pgrep -f -- "-address $CONTAINERD_SOCK" || true); do kill -KILL "$pid" 2>/dev/null || true; done
}

# Remove the iptables rules and chains kube-proxy, the kubelet and CNI portmap created.
clean_iptables() {
  local t rule chain
  for t in filter nat mangle; do
    { iptables -t "$t" -S 2>/dev/null || true; } | awk '/^-A [A-Z]+ .*-j (KUBE-|CNI-)/ && !/^-A (KUBE-|CNI-)/' \
      | while read -r rule; do eval "iptables -t $t ${rule/#-A/-D}" 2>/dev/null || true; done
    for chain in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N (KUBE-|CNI-)/ {print $2}'); do
      iptables -t "$t" -F "$chain" 2>/dev/null || true
    done
    for chain in $(iptables -t "$t" -S 2>/dev/null | awk '/^-N (KUBE-|CNI-)/ {print $2}'); do
      iptables -t "$t" -X "$chain" 2>/dev/null || true
    done
  done
}

unmount_state() {
  local m
  for m in $(awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

local_down() {
  local c
  for c in kube-proxy kubelet kube-scheduler; do stop_proc "$c"; done
  stop_containers
  for c in kube-controller-manager kube-apiserver etcd; do stop_proc "$c"; done
  unmount_state
  if [ "$(network_owner)" = "$STATE" ]; then
    clean_iptables
    ip link del "$CNI_BRIDGE" 2>/dev/null || true
    ip link del "$NODE_IF" 2>/dev/null || true
    rm -rf /var/log/pods /var/log/containers
  fi
  # Everything but the logs goes: the next `up` starts a fresh cluster.
  find "$STATE" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null || true
  log "down"
}

local_status() {
  local mode c rc=0
  mode="$(cat "$STATE/mode" 2>/dev/null || echo none)"
  echo "mode: $mode   state: $STATE"
  for c in "${CONTROL_PLANE[@]}" "${NODE_COMPONENTS[@]}"; do
    if is_running "$c"; then printf '  %-24s running (pid %s)\n' "$c" "$(pid_of "$c")"
    else printf '  %-24s stopped\n' "$c"; fi
  done
  [ "$mode" != none ] && all_running "$mode" || rc=1
  return $rc
}

# Import an image archive, unless containerd still holds exactly what it imported last time:
# a stamp per archive (named by its content hash) lists each tag it carries with the digest the
# import gave it; every tag must still resolve to that digest (a later archive may have moved
# `:dev`), else the archive is imported again.
local_load_image() {
  is_running containerd || die "containerd is not running (hack/cluster.sh up)"
  local stamp ref digest fresh=1
  stamp="$STATE/images/$(basename "$1").loaded"
  if [ -s "$stamp" ]; then
    while read -r ref digest; do
      [ "$(image_digest "$ref")" = "$digest" ] || fresh=0
    done <"$stamp"
    if [ "$fresh" = 1 ]; then log "$(basename "$1"): already in containerd, not imported again"; return 0; fi
  fi
  ctr_ images import "$1"
  mkdir -p "$STATE/images"
  tar -xOf "$1" manifest.json | python3 -c 'import json,sys; [print(t) for m in json.load(sys.stdin) for t in m.get("RepoTags") or []]' |
    while read -r ref; do
      case "$ref" in */*/*) ;; */*) ref="docker.io/$ref" ;; *) ref="docker.io/library/$ref" ;; esac
      printf '%s %s\n' "$ref" "$(image_digest "$ref")"
    done >"$stamp.tmp"
  mv "$stamp.tmp" "$stamp"
}

image_digest() { ctr_ images ls "name==$1" 2>/dev/null | awk 'NR == 2 { print $3 }'; }

# Stop the API server (SIGTERM, as stop_proc does) and start it again with the same flags;
# returns once /readyz answers. Everything else (etcd, controllers, node) keeps running.
local_restart_apiserver() {
  local t0=$SECONDS
  is_running etcd && is_running kube-apiserver || die "the control plane is not running (hack/cluster.sh up)"
  BIN="$(k8s_bin_dir)"
  [ -x "$BIN/kube-apiserver" ] || die "no kube-apiserver binary in $BIN"
  stop_proc kube-apiserver
  log "kube-apiserver stopped; starting it again"
  start_apiserver
  log "kube-apiserver restarted (pid $(pid_of kube-apiserver)) and ready in $((SECONDS - t0))s"
}
