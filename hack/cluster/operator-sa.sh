#!/usr/bin/env bash
# operator-sa.sh KUBECTL ADMIN_KUBECONFIG OUT_KUBECONFIG
# Write a kubeconfig for running the operator from source under a service account of its own:
# arclight-system/arclight-operator-dev. That account belongs to the development tooling, not
# to the Helm chart (whose arclight-system/arclight-operator a `helm uninstall` deletes), and no
# role is bound here: a test binds exactly the chart's ClusterRole to it. The token comes from
# the TokenRequest API (no legacy token Secret), valid for a day, minted again on every call.
set -euo pipefail
kubectl=$1 admin=$2 out=$3
k() { "$kubectl" --kubeconfig "$admin" "$@"; }
NS=arclight-system SA=arclight-operator-dev

k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
k -n "$NS" create serviceaccount "$SA" --dry-run=client -o yaml | k apply -f - >/dev/null
request='{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":86400}}'
token="$(printf '%s' "$request" | k create --raw "/api/v1/namespaces/$NS/serviceaccounts/$SA/token" -f - |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["token"])')"
[ -n "$token" ] || { echo "cluster: error: no token issued for $NS/$SA" >&2; exit 1; }

server="$(k config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')"
ca="$(k config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
umask 077
cat > "$out.part" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: arclight
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: $SA
  user: {token: "$token"}
contexts:
- name: $SA
  context: {cluster: arclight, user: $SA, namespace: $NS}
current-context: $SA
KUBECONFIG
mv "$out.part" "$out"
