#!/usr/bin/env bash
# Create the cluster's CA, component certificates (ECDSA P-256), service-account key pair and
# component kubeconfigs under $STATE (skips files that already exist).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/lib.sh
. "$HERE/lib.sh"
PKI="$STATE/pki"
mkdir -p "$PKI" && chmod 700 "$PKI"
cd "$PKI"

newkey() { [ -f "$1.key" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

# cert NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
cert() {
  local name=$1 subj=$2 eku=$3 san=${4:-}
  [ -f "$name.crt" ] && return 0
  newkey "$name"
  local ext=(-addext "keyUsage=critical,digitalSignature,keyEncipherment" -addext "extendedKeyUsage=$eku")
  [ -z "$san" ] || ext+=(-addext "subjectAltName=$san")
  openssl req -new -key "$name.key" -subj "$subj" "${ext[@]}" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
    -copy_extensions copyall -out "$name.crt" 2>/dev/null
  rm -f "$name.csr"
}

if [ ! -f ca.crt ]; then
  newkey ca
  openssl req -x509 -new -key ca.key -subj "/CN=arclight-local-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.crt 2>/dev/null
fi
cert apiserver "/CN=kube-apiserver" serverAuth \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$KUBERNETES_SVC_IP"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert admin "/O=system:masters/CN=kubernetes-admin" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
cert kube-proxy "/CN=system:kube-proxy" clientAuth
cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
cert kubelet "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
if [ ! -f sa.key ]; then
  newkey sa
  openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
fi
chmod 600 ./*.key

# kubeconfig FILE CERT_NAME: a client-certificate kubeconfig for the local API server.
kubeconfig() {
  local file="$STATE/$1.kubeconfig" name=$2
  [ -f "$file" ] && return 0
  umask 077
  cat > "$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: arclight
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$name.crt")
    client-key-data: $(base64 -w0 "$name.key")
contexts:
- name: arclight
  context: {cluster: arclight, user: $name}
current-context: arclight
KUBECONFIG
}
kubeconfig admin admin
kubeconfig controller-manager controller-manager
kubeconfig scheduler scheduler
kubeconfig kube-proxy kube-proxy
kubeconfig kubelet kubelet-client
