#!/usr/bin/env bash
# A real sweep on the local cluster, after `make demo` (its cluster, operator and images):
# hack/demo/sweep.yaml (four math-solver trials on CPU, two at a time, early stopping), then
# the trials table, the promoted ModelDeployment and one answer from it. It replaces the demo's
# run and ModelDeployment math (deleted first) with math-best.
#   ARCLIGHT_SWEEP_TIMEOUT   seconds to wait for the sweep (default 3600)
set -euo pipefail
cd "$(dirname "$0")/.."
NS=arclight-demo
TIMEOUT="${ARCLIGHT_SWEEP_TIMEOUT:-3600}"
KUBECONFIG="$(bash hack/cluster.sh kubeconfig)"; export KUBECONFIG
kubectl() { bash hack/cluster.sh kubectl "$@"; }
t0=$SECONDS
kubectl delete sweep math-lr -n "$NS" --ignore-not-found --wait=true >/dev/null
kubectl delete modeldeployment math-best -n "$NS" --ignore-not-found >/dev/null
# The demo's own endpoint holds 1 of this node's 2 CPUs: the trials and the promoted endpoint
# need it. Its run goes too (its spec.deploy would bring the endpoint back).
kubectl delete trainingrun math -n "$NS" --ignore-not-found >/dev/null
kubectl delete modeldeployment math -n "$NS" --ignore-not-found >/dev/null
kubectl apply -f hack/demo/sweep.yaml
last=""
while [ $((SECONDS - t0)) -lt "$TIMEOUT" ]; do
  line="$(kubectl get sw math-lr -n "$NS" --no-headers 2>/dev/null || true)"
  [ "$line" != "$last" ] && printf '%5ss  %s\n' "$((SECONDS - t0))" "$line"
  last="$line"
  phase="$(kubectl get sw math-lr -n "$NS" -o jsonpath='{.status.phase}' 2>/dev/null || true)"
  case "$phase" in Succeeded|Failed) break ;; esac
  sleep 10
done
kubectl get sw math-lr -n "$NS"
kubectl get tr -n "$NS" -l arclight.dev/owner-name=math-lr
kubectl get sw math-lr -n "$NS" -o jsonpath='{range .status.trials[*]}{.name}{"\t"}{.state}{"\t"}{.parameters}{"\t"}objective={.objective}{"\t"}step={.step}{"\t"}credits={.credits}{"\t"}{.reason}{"\n"}{end}'
[ "$phase" = Succeeded ] || { echo "sweep-demo: the sweep ended ${phase:-unfinished}" >&2; exit 1; }
for _ in $(seq 1 60); do
  kubectl get modeldeployment math-best -n "$NS" >/dev/null 2>&1 && break
  sleep 2
done
kubectl wait --for=condition=Ready modeldeployment/math-best -n "$NS" --timeout=600s
kubectl get modeldeployment math-best -n "$NS"
ip="$(kubectl get service math-best -n "$NS" -o jsonpath='{.spec.clusterIP}')"
.venv/bin/python hack/demo/report.py ask "http://$ip" "What is 7 + 5?" 12
echo "sweep demo done in $((SECONDS - t0)) s"
