#!/usr/bin/env bash
# The main job, end to end on this machine: a local Kubernetes, the operator installed with its
# Helm chart, a math-solver agent trained with Agent Lightning + GRPO, then served.
# The credit ledger is the chart's bundled Postgres (ledger.bundled), its data on a hostPath
# volume of this node (the local cluster has no volume provisioner).
#   ARCLIGHT_DEMO_TIMEOUT   seconds to wait for training (default 1800)
#   hack/demo.sh clean      remove what the demo installed (namespace first, then the operator,
#                           then the ledger's claim, volume and data)
set -euo pipefail
cd "$(dirname "$0")/.."
LEDGER_DATA=/var/lib/arclight/ledger-bundled  # the ledger's volume on this node
if [ "${1:-}" = clean ]; then
  KUBECONFIG="${KUBECONFIG:-$(bash hack/cluster.sh kubeconfig)}"; export KUBECONFIG
  # The namespace first, while the operator runs: it releases the pods' metering finalizers.
  bash hack/cluster.sh kubectl delete namespace arclight-demo --ignore-not-found --timeout=180s
  bash hack/cluster.sh kubectl delete creditbudget demo-team --ignore-not-found 2>/dev/null || true
  bash hack/cluster.sh kubectl delete pv arclight-demo-artifacts --ignore-not-found
  .venv/bin/python hack/helm.py uninstall --namespace arclight-system
  # The StatefulSet's claim outlives the release (as it should): removed here, with the data.
  bash hack/cluster.sh kubectl -n arclight-system delete pvc data-arclight-postgres-0 \
    --ignore-not-found --timeout=120s
  bash hack/cluster.sh kubectl delete pv arclight-demo-ledger --ignore-not-found
  rm -rf "$LEDGER_DATA"
  exit 0
fi
t0=$SECONDS
NS=arclight-demo
TIMEOUT="${ARCLIGHT_DEMO_TIMEOUT:-1800}"
PHASES="$(mktemp)"; TRAINER_LOG="$(mktemp)"; trap 'rm -f "$PHASES" "$TRAINER_LOG"' EXIT
mark=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - t0))"; }
# done_phase NAME: record the time since the previous mark under NAME (the table at the end).
done_phase() { printf '%s\t%s\n' "$1" "$((SECONDS - mark))" >>"$PHASES"; mark=$SECONDS; }
report() { .venv/bin/python hack/demo/report.py "$@"; }

step "system packages";    bash hack/install-deps.sh;     done_phase "system packages"
step "python environments"; bash hack/setup-python.sh;    done_phase "python environments"
step "local cluster";      bash hack/cluster.sh up;       done_phase "local cluster"
KUBECONFIG="$(bash hack/cluster.sh kubeconfig)"; export KUBECONFIG
kubectl() { bash hack/cluster.sh kubectl "$@"; }
step "images";             tags="$(bash hack/images.sh all postgres)"; done_phase "images (build or reuse, load)"
# The content-hash tags (first of each image's two lines): a changed image rolls its pod (the
# operator, the ledger's Postgres) and is what new trainer pods run; an unchanged one leaves
# the release as it is.
operator_tag="$(printf '%s\n' "$tags" | grep -m1 '/operator:' | cut -d: -f2)"
trainer_image="$(printf '%s\n' "$tags" | grep -m1 '/trainer:')"
postgres_tag="$(printf '%s\n' "$tags" | grep -m1 '/postgres:' | cut -d: -f2)"

step "operator (Helm chart, through Helm's Go SDK)"
# (CRDs applied by a test run first have no last-applied annotation: drop that one warning)
kubectl apply -f crds/ 2>&1 >/dev/null | { grep -v 'last-applied-configuration' >&2 || true; }
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace "$NS" arclight.dev/team=demo --overwrite >/dev/null
kubectl create namespace arclight-system --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# The ledger's volume: a hostPath PersistentVolume for the StatefulSet's claim, owned by the
# Postgres image's user (uid 65432). The chart generates the password and the operator's DSN.
install -d -o 65432 -g 65432 -m 700 "$LEDGER_DATA"
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: arclight-demo-ledger}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: arclight-local
  claimRef: {namespace: arclight-system, name: data-arclight-postgres-0}
  hostPath: {path: $LEDGER_DATA, type: Directory}
EOF
# Checkpoints live on a hostPath volume owned by the trainer's user (uid 65532).
install -d -o 65532 -g 65532 /var/lib/arclight/artifacts
kubectl apply -f hack/demo/artifacts.yaml >/dev/null
.venv/bin/python hack/helm.py install --namespace arclight-system --wait 300 \
  --set image.tag="$operator_tag" --set replicaCount=1 --set crds.install=false \
  --set trainer.image="$trainer_image" --set artifacts.claim=arclight-artifacts \
  --set ledger.bundled.enabled=true --set ledger.bundled.image.tag="$postgres_tag" \
  --set ledger.bundled.storage.storageClassName=arclight-local --set ledger.meteringInterval=5
kubectl apply -f hack/demo/creditbudget.yaml >/dev/null
kubectl -n arclight-system get pods -l app.kubernetes.io/name=arclight
done_phase "operator (chart)"

step "train math-solver"
kubectl delete trainingrun math -n "$NS" --ignore-not-found >/dev/null
# (foreground: the old model's servers are gone before the new run's ModelDeployment exists)
kubectl delete modeldeployment math -n "$NS" --ignore-not-found --cascade=foreground >/dev/null
kubectl apply -f hack/demo/trainingrun.yaml
deadline=$((SECONDS + TIMEOUT)); phase=""; last=""; started=""
while [ $SECONDS -lt $deadline ]; do
  status="$(kubectl get tr math -n "$NS" -o jsonpath='{.status}' 2>/dev/null || true)"
  phase="$(printf '%s' "$status" | .venv/bin/python -c 'import json,sys; print((json.loads(sys.stdin.read() or "{}")).get("phase",""))')"
  if [ -z "$started" ] && [ "$phase" = Running ]; then
    started=1; done_phase "trainer pod scheduled and started"
  fi
  line="$(report progress "$status" "$((SECONDS - t0))")"
  # one line per change (a log stays readable); a terminal gets it redrawn in place
  if [ -t 1 ]; then printf '\r\033[K  %s' "$line"; elif [ "${line% (*}" != "${last% (*}" ]; then
    printf '  %s\n' "$line"; fi
  last="$line"
  case "$phase" in Succeeded|Failed) break ;; esac
  sleep 3
done
[ -t 1 ] && echo
[ -n "$started" ] || done_phase "trainer pod scheduled and started"
kubectl get tr math -n "$NS"
kubectl get creditbudget demo-team
attempt="$(kubectl get tr math -n "$NS" -o jsonpath='{.status.attempts}')"
kubectl logs "job/math-trainer-$attempt" -n "$NS" >"$TRAINER_LOG" 2>/dev/null || true
done_phase "training (pod start to Succeeded)"
if [ "$phase" != "Succeeded" ]; then
  echo "demo: the run did not succeed (phase '${phase:-none}'):" >&2
  kubectl get tr math -n "$NS" -o jsonpath='{.status.diagnosis}{"\n"}{.status.conditions}{"\n"}' >&2
  exit 1
fi
# the trainer's closing line: validation reward before=X after=Y seed=S model=PATH
before="$(sed -nE 's/^validation reward before=(\S+) after=.*/\1/p' "$TRAINER_LOG")"
after="$(sed -nE 's/^validation reward before=\S+ after=(\S+) .*/\1/p' "$TRAINER_LOG")"
verdict="$(awk -v b="$before" -v a="$after" 'BEGIN { d = a - b;
  if (d > 0) printf "improved by %.3g", d; else printf "did NOT improve (%+.3g) in this short run", d }')"
echo "validation reward on $(grep -oE 'validation=[0-9]+' "$TRAINER_LOG" | cut -d= -f2) held-out items" \
     "never trained on: before $before, after $after: $verdict"
echo "best checkpoint: $(kubectl get tr math -n "$NS" -o jsonpath='{.status.bestCheckpoint.uri}')" \
     "(on this node under /var/lib/arclight/artifacts)"

step "serve it (ModelDeployment)"
# spec.deploy makes the operator create ModelDeployment "math" once the run has succeeded.
for _ in $(seq 1 60); do
  kubectl get modeldeployment math -n "$NS" >/dev/null 2>&1 && break
  sleep 2
done
if ! kubectl wait --for=condition=Ready "modeldeployment/math" -n "$NS" --timeout=600s; then
  kubectl get modeldeployment math -n "$NS" -o yaml >&2; exit 1
fi
kubectl get modeldeployment math -n "$NS"
done_phase "serving (ModelDeployment Ready)"

step "ask the trained agent (its calculator tool included, temperature 0)"
ip="$(kubectl get service math -n "$NS" -o jsonpath='{.spec.clusterIP}')"
report ask "http://$ip" "What is 7 + 5?" 12
done_phase "first answer"

step "what it cost (the ledger: kubectl -n arclight-system exec arclight-postgres-0 -- psql -U postgres arclight)"
# The superuser, over the pod's socket (peer authentication, no password).
ledger_psql() { kubectl -n arclight-system exec arclight-postgres-0 -- psql -U postgres -d arclight "$@"; }
uid="$(kubectl get tr math -n "$NS" -o jsonpath='{.metadata.uid}')"
for _ in $(seq 1 20); do  # the trainer pod's last slice is written within a metering round
  [ "$(ledger_psql -qAt -c "SELECT count(*) FROM usage_events WHERE owner_uid = '$uid'
    AND final")" -ge 1 ] && break
  sleep 2
done
ledger_psql -c "SELECT pod_name, count(*) AS slices, sum(seconds) AS seconds,
  round(sum(credit_seconds) / 3600, 4) AS credits FROM usage_events WHERE owner_uid = '$uid'
  GROUP BY pod_name"
kubectl get tr math -n "$NS"
kubectl get creditbudget demo-team
# the endpoint's cost and requests: each metering round reads the servers' /v1/stats
for _ in $(seq 1 20); do
  served="$(kubectl get md math -n "$NS" -o jsonpath='{.status.cost.requests}')"
  [ "${served:-0}" -ge 1 ] && break
  sleep 2
done
echo "ModelDeployment math: $(kubectl get md math -n "$NS" -o jsonpath='{.status.cost}')"

step "done in $((SECONDS - t0)) s: kubectl --kubeconfig $KUBECONFIG get arclight -A"
report table "$PHASES" "$TRAINER_LOG"
