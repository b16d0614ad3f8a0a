#!/usr/bin/env bash
# The main job, end to end on this machine: a local Kubernetes, the operator installed with its
# Helm chart, a math-solver agent trained with Agent Lightning + GRPO, then served.
#   ARCLIGHT_DEMO_TIMEOUT   seconds to wait for training (default 1800)
#   hack/demo.sh clean      remove what the demo installed (namespace first, then the operator)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = clean ]; then
  KUBECONFIG="${KUBECONFIG:-$(bash hack/cluster.sh kubeconfig)}"; export KUBECONFIG
  bash hack/cluster.sh kubectl delete namespace arclight-demo --ignore-not-found --timeout=180s
  bash hack/cluster.sh kubectl delete pv arclight-demo-artifacts --ignore-not-found
  .venv/bin/python hack/helm.py uninstall --namespace arclight-system
  exit 0
fi
t0=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - t0))"; }
NS=arclight-demo
TIMEOUT="${ARCLIGHT_DEMO_TIMEOUT:-1800}"

step "system packages";    bash hack/install-deps.sh
step "python environments"; bash hack/setup-python.sh
step "local cluster";      bash hack/cluster.sh up
KUBECONFIG="$(bash hack/cluster.sh kubeconfig)"; export KUBECONFIG
kubectl() { bash hack/cluster.sh kubectl "$@"; }
step "images";             bash hack/images.sh all

step "operator (Helm chart, through Helm's Go SDK)"
# (CRDs applied by a test run first have no last-applied annotation: drop that one warning)
kubectl apply -f crds/ 2>&1 >/dev/null | { grep -v 'last-applied-configuration' >&2 || true; }
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# Checkpoints live on a hostPath volume owned by the trainer's user (uid 65532).
install -d -o 65532 -g 65532 /var/lib/arclight/artifacts
kubectl apply -f hack/demo/artifacts.yaml >/dev/null
.venv/bin/python hack/helm.py install --namespace arclight-system --wait 300 \
  --set image.tag=dev --set replicaCount=1 --set crds.install=false \
  --set trainer.image=docker.io/arclight/trainer:dev --set artifacts.claim=arclight-artifacts
kubectl -n arclight-system get pods -l app.kubernetes.io/name=arclight

step "train math-solver"
kubectl delete trainingrun math -n "$NS" --ignore-not-found >/dev/null
kubectl apply -f hack/demo/trainingrun.yaml
deadline=$((SECONDS + TIMEOUT)); phase=""
while [ $SECONDS -lt $deadline ]; do
  phase="$(kubectl get tr math -n "$NS" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
  kubectl get tr math -n "$NS" --no-headers 2>/dev/null | sed 's/^/  /'
  case "$phase" in Succeeded|Failed) break ;; esac
  sleep 10
done
kubectl get tr math -n "$NS"
if [ "$phase" != "Succeeded" ]; then
  echo "demo: the run did not succeed (phase '${phase:-none}'):" >&2
  kubectl get tr math -n "$NS" -o jsonpath='{.status.diagnosis}{"\n"}{.status.conditions}{"\n"}' >&2
  exit 1
fi
kubectl logs "job/math-trainer-$(kubectl get tr math -n "$NS" -o jsonpath='{.status.attempts}')" \
  -n "$NS" | grep -E '^validation reward' || true
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
ip="$(kubectl get service math -n "$NS" -o jsonpath='{.spec.clusterIP}')"
curl -sS --max-time 120 "http://$ip/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"math","messages":[{"role":"user","content":"What is 7 + 5?"}],"max_tokens":32}'
echo
step "done: kubectl --kubeconfig $KUBECONFIG get arclight -A"
