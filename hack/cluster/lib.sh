# shellcheck shell=bash disable=SC2034  # sourced; the settings are used by the sourcing scripts
# Shared settings and helpers for hack/cluster.sh and hack/cluster/*.sh (sourced, not run).
ARCLIGHT_CACHE="${ARCLIGHT_CACHE:-$HOME/.cache/arclight}"
STATE="${ARCLIGHT_CLUSTER_DIR:-$ARCLIGHT_CACHE/cluster}"
K8S_VERSION=1.20.2
K8S_DEB_DSC_SHA256="19fa1da5aefcef673894ac9511986bd98a14410cf8eea0b626613c30df435257"
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
PAUSE_IMAGE="k8s.gcr.io/pause:3.2"

# Network layout (all inside this machine).
NODE_IF=arclight0          # port-less bridge carrying the node address (no dummy links here)
NODE_IP=172.31.250.2
CNI_BRIDGE=arcbr0
POD_CIDR=10.88.0.0/16
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SVC_IP=10.96.0.1
API_PORT=6443
ETCD_CLIENT_PORT=23790
ETCD_PEER_PORT=23800

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

reflect2_version() { dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev 2>/dev/null; }

# Hash of every input that changes the built binaries.
k8s_patch_hash() {
  { echo "$K8S_DEB_DSC_SHA256" "${K8S_BINARIES[*]}"; reflect2_version; go version 2>/dev/null; } \
    | sha256sum | cut -c1-12
}
k8s_bin_dir() { echo "$ARCLIGHT_CACHE/k8s-$K8S_VERSION-$(k8s_patch_hash)"; }
NODE_NAME=arclight-node
CONTAINERD_SOCK="$STATE/containerd/containerd.sock"
PIDS="$STATE/pids"
LOGS="$STATE/logs"

# A pid file holds "PID STARTTIME" (STARTTIME from /proc/PID/stat) so a reused pid never
# passes for our process.
pid_of() { cut -d' ' -f1 "$PIDS/$1.pid" 2>/dev/null || true; }
proc_start() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }

# is_running NAME: true while the recorded process of component NAME is alive.
is_running() {
  local pid start
  read -r pid start 2>/dev/null < "$PIDS/$1.pid" || return 1
  [ -n "$pid" ] && [ -n "$start" ] && [ "$(proc_start "$pid")" = "$start" ]
}

# start_proc NAME COMMAND...: start COMMAND detached (own session), logging to $LOGS/NAME.log.
start_proc() {
  local name=$1; shift
  if is_running "$name"; then return 0; fi
  mkdir -p "$PIDS" "$LOGS"
  # 9>&-: the daemon must not inherit hack/cluster.sh's lock.
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
  echo "$! $(proc_start $!)" > "$PIDS/$name.pid"
}

# stop_proc NAME: SIGTERM, up to 15 s grace, then SIGKILL.
stop_proc() {
  local name=$1 pid i
  pid="$(pid_of "$name")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDS/$name.pid"
}

fail_with_log() {
  echo "cluster: error: $1 failed to start; last lines of $LOGS/$1.log:" >&2
  tail -n 30 "$LOGS/$1.log" >&2 2>/dev/null || true
  exit 1
}

# wait_healthy NAME TIMEOUT_S COMMAND...: poll COMMAND until it succeeds; fail (with the log
# tail) if the component exits or TIMEOUT_S passes.
wait_healthy() {
  local name=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    is_running "$name" || fail_with_log "$name"
    [ "$SECONDS" -lt "$deadline" ] || fail_with_log "$name"
    sleep 0.5
  done
}

# scratch_image_archive SRC DEST IMAGE ARCHIVE [buildah config args...]
# A FROM-scratch image holding SRC at DEST, configured by the extra args, saved as a docker
# archive (written atomically). Uses a private, throwaway buildah store under $tmp (the caller's
# temporary directory), so it never touches anyone else's images.
scratch_image_archive() {
  local src=$1 dest=$2 image=$3 archive=$4; shift 4
  local bh=(buildah --root "$tmp/root" --runroot "$tmp/run" --storage-driver vfs) ctr
  ctr="$("${bh[@]}" from scratch)"
  "${bh[@]}" copy "$ctr" "$src" "$dest" >/dev/null
  "${bh[@]}" config "$@" "$ctr"
  "${bh[@]}" commit -q "$ctr" "$image" >/dev/null
  "${bh[@]}" push -q "$image" "docker-archive:$archive.part:$image"
  "${bh[@]}" rm -a >/dev/null
  "${bh[@]}" rmi -a -f >/dev/null
  mv "$archive.part" "$archive"
  log "built $image -> $archive"
}
