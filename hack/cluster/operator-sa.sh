#!/usr/bin/env bash
# operator-sa.sh KUBECTL ADMIN_KUBECONFIG OUT_KUBECONFIG
# Create the service account arclight-system/arclight-operator with a token secret and write a
# kubeconfig that authenticates as it. No role is bound here: the operator's Helm chart brings
# its ClusterRole. The objects carry Helm ownership metadata for release "arclight" in
# "arclight-system", so that `helm install arclight` can adopt them.
set -euo pipefail
kubectl=$1 admin=$2 out=$3
k() { "$kubectl" --kubeconfig "$admin" "$@"; }

k apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata:
  name: arclight-system
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: arclight-operator
  namespace: arclight-system
  labels: {app.kubernetes.io/managed-by: Helm}
  annotations: {meta.helm.sh/release-name: arclight, meta.helm.sh/release-namespace: arclight-system}
---
apiVersion: v1
kind: Secret
metadata:
  name: arclight-operator-token
  namespace: arclight-system
  annotations: {kubernetes.io/service-account.name: arclight-operator}
type: kubernetes.io/service-account-token
YAML

token=""
for _ in $(seq 1 60); do
  token="$(k -n arclight-system get secret arclight-operator-token -o jsonpath='{.data.token}')"
  [ -z "$token" ] || break
  sleep 0.5
done
[ -n "$token" ] || { echo "cluster: error: token for arclight-operator was not issued in 30s" >&2; exit 1; }

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
- name: arclight-operator
  user: {token: "$(echo "$token" | base64 -d)"}
contexts:
- name: arclight-operator
  context: {cluster: arclight, user: arclight-operator, namespace: arclight-system}
current-context: arclight-operator
KUBECONFIG
mv "$out.part" "$out"
