# shellcheck shell=bash
# Cluster PKI laid out like kubeadm's /etc/kubernetes/pki, made with openssl,
# plus one kubeconfig per component. Sourced by hack/local-up.

# _fk_key FILE: an ECDSA P-256 key (kubeadm's encryptionAlgorithm
# ECDSA-P256; RSA-2048, kubeadm's default, is FK_KEY_ALGO=rsa and slower).
_fk_key() {
  if [[ "${FK_KEY_ALGO:-ecdsa}" == rsa ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
  fi
  chmod 600 "$1"
}

# _fk_ca NAME CN: self-signed CA NAME.crt/NAME.key, 10 years like kubeadm.
_fk_ca() {
  local name=$1 cn=$2
  _fk_key "$FK_PKI/$name.key"
  openssl req -x509 -new -key "$FK_PKI/$name.key" -sha256 -days 3650 \
    -subj "/CN=$cn" -out "$FK_PKI/$name.crt" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
    -addext "subjectKeyIdentifier=hash" 2>/dev/null
}

# _fk_cert CA NAME SUBJECT USAGE [SANS]: leaf NAME.crt/NAME.key signed by CA.
# USAGE is clientAuth, serverAuth or both; SANS like "DNS:a,IP:1.2.3.4".
_fk_cert() {
  local ca=$1 name=$2 subj=$3 usage=$4 sans=${5:-} ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature$([[ ${FK_KEY_ALGO:-ecdsa} == rsa ]] && echo ,keyEncipherment)"
    echo "extendedKeyUsage=$usage"
    echo "authorityKeyIdentifier=keyid"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$ext"
  _fk_key "$FK_PKI/$name.key"
  openssl req -new -key "$FK_PKI/$name.key" -subj "$subj" -out "$FK_PKI/$name.csr" 2>/dev/null
  # 1 year like kubeadm's leaf certificates.
  openssl x509 -req -in "$FK_PKI/$name.csr" -CA "$FK_PKI/$ca.crt" -CAkey "$FK_PKI/$ca.key" \
    -CAcreateserial -sha256 -days 365 -extfile "$ext" -out "$FK_PKI/$name.crt" 2>/dev/null
  rm -f "$ext" "$FK_PKI/$name.csr"
}

# _fk_kubeconfig FILE SERVER CERTNAME USER: kubeconfig with embedded data.
_fk_kubeconfig() {
  local file=$1 server=$2 cert=$3 user=$4
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: ferrokube
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$FK_PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$FK_PKI/$cert.crt")
    client-key-data: $(base64 -w0 <"$FK_PKI/$cert.key")
contexts:
- name: $user@ferrokube
  context:
    cluster: ferrokube
    user: $user
current-context: $user@ferrokube
KC
  chmod 600 "$file"
}

# fk_pki_create NODES: the whole PKI and all kubeconfigs for NODES nodes.
fk_pki_create() {
  local nodes=$1 i node ip internal="https://$FK_CP_IP:$FK_API_PORT"
  mkdir -p "$FK_PKI" "$FK_KUBECONFIGS"
  _fk_ca ca kubernetes
  _fk_ca front-proxy-ca front-proxy-ca
  _fk_cert ca apiserver "/CN=kube-apiserver" serverAuth \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$FK_DNS_DOMAIN,DNS:localhost,DNS:${FK_NS_PREFIX}control-plane,IP:$FK_KUBERNETES_SVC_IP,IP:$FK_CP_IP,IP:127.0.0.1"
  # Bound to system:kubelet-api-admin by fk_cp_bootstrap rather than being
  # in system:masters.
  _fk_cert ca apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" clientAuth
  _fk_cert front-proxy-ca front-proxy-client "/CN=front-proxy-client" clientAuth
  openssl genrsa -out "$FK_PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$FK_PKI/sa.key" -pubout -out "$FK_PKI/sa.pub" 2>/dev/null

  _fk_cert ca admin "/O=system:masters/CN=kubernetes-admin" clientAuth
  _fk_cert ca scheduler "/CN=system:kube-scheduler" clientAuth
  _fk_cert ca controller-manager "/CN=system:kube-controller-manager" clientAuth
  _fk_cert ca kube-proxy "/CN=system:kube-proxy" clientAuth
  _fk_kubeconfig "$FK_ADMIN_KUBECONFIG" "https://$FK_HOST_API_ADDR:$FK_HOST_API_PORT" admin kubernetes-admin
  _fk_kubeconfig "$FK_KUBECONFIGS/admin-internal.kubeconfig" "$internal" admin kubernetes-admin
  _fk_kubeconfig "$FK_KUBECONFIGS/scheduler.kubeconfig" "$internal" scheduler system:kube-scheduler
  _fk_kubeconfig "$FK_KUBECONFIGS/controller-manager.kubeconfig" "$internal" controller-manager system:kube-controller-manager
  _fk_kubeconfig "$FK_KUBECONFIGS/kube-proxy.kubeconfig" "$internal" kube-proxy system:kube-proxy

  for ((i = 1; i <= nodes; i++)); do
    node=$(fk_node_name "$i")
    ip=$(fk_node_ip "$i")
    _fk_cert ca "kubelet-$node" "/O=system:nodes/CN=system:node:$node" clientAuth
    # Serving certificate signed by the cluster CA, so the apiserver can
    # verify kubelets (--kubelet-certificate-authority) for logs/exec.
    _fk_cert ca "kubelet-serving-$node" "/O=system:nodes/CN=system:node:$node" serverAuth \
      "DNS:$node,DNS:localhost,IP:$ip,IP:127.0.0.1"
    _fk_kubeconfig "$FK_KUBECONFIGS/kubelet-$node.kubeconfig" "$internal" "kubelet-$node" "system:node:$node"
  done
}
