#!/usr/bin/env bash
# Make a development CA and a serving certificate for the rollout-safe webhook.
#
# Writes ca.crt, ca.key, tls.crt, tls.key to the output directory and prints
# the caBundle (base64 of ca.crt, one line) on stdout; everything else goes to
# stderr, so this works:
#
#   CA_BUNDLE=$(certs/gen-dev-certs.sh --namespace rollout-safe)
#
# An existing CA in the output directory is reused (so clusters that already
# trust it keep working); pass --new-ca to replace it. openssl is the only
# dependency. These are development certificates: in production use the
# chart's cert-manager or helm certificate mode.
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
Usage: gen-dev-certs.sh [options]

  -s, --service NAME     webhook Service name      (env ROLLOUT_SAFE_SERVICE,   default rollout-safe)
  -n, --namespace NS     its namespace             (env ROLLOUT_SAFE_NAMESPACE, default rollout-safe)
  -o, --out DIR          output directory          (env ROLLOUT_SAFE_CERTS_DIR, default certs/out next to this script)
      --localhost        also valid for localhost, 127.0.0.1 and ::1 (webhook run outside the cluster)
      --san NAME         extra subjectAltName, DNS name or IP address (repeatable)
      --days N           serving certificate validity in days (default 365)
      --ca-days N        CA validity in days (default 3650)
      --key-type TYPE    ecdsa (P-256, default) or rsa (2048 bits)
      --new-ca           replace an existing CA in the output directory
  -h, --help             this help

Writes ca.crt ca.key tls.crt tls.key; prints the base64 caBundle on stdout.
SANs: NAME, NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local (+ the extras).
EOF
}

log() { printf 'gen-dev-certs: %s\n' "$*" >&2; }
die() { printf 'gen-dev-certs: error: %s\n' "$*" >&2; exit 2; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
service=${ROLLOUT_SAFE_SERVICE:-rollout-safe}
namespace=${ROLLOUT_SAFE_NAMESPACE:-rollout-safe}
out=${ROLLOUT_SAFE_CERTS_DIR:-$script_dir/out}
localhost=false
days=365
ca_days=3650
key_type=ecdsa
new_ca=false
extra_sans=()

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    -s|--service)   need_arg "$@"; service=$2; shift 2 ;;
    -n|--namespace) need_arg "$@"; namespace=$2; shift 2 ;;
    -o|--out)       need_arg "$@"; out=$2; shift 2 ;;
    --localhost)    localhost=true; shift ;;
    --san)          need_arg "$@"; extra_sans+=("$2"); shift 2 ;;
    --days)         need_arg "$@"; days=$2; shift 2 ;;
    --ca-days)      need_arg "$@"; ca_days=$2; shift 2 ;;
    --key-type)     need_arg "$@"; key_type=$2; shift 2 ;;
    --new-ca)       new_ca=true; shift ;;
    -h|--help)      usage; exit 0 ;;
    *)              usage; die "unknown argument: $1" ;;
  esac
done

dns_label='^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
[[ $service =~ $dns_label && ${#service} -le 63 ]] || die "service name '$service' is not a DNS label"
[[ $namespace =~ $dns_label && ${#namespace} -le 63 ]] || die "namespace '$namespace' is not a DNS label"
[[ $days =~ ^[1-9][0-9]*$ ]] || die "--days must be a positive integer"
[[ $ca_days =~ ^[1-9][0-9]*$ ]] || die "--ca-days must be a positive integer"
case $key_type in ecdsa|rsa) ;; *) die "--key-type must be ecdsa or rsa" ;; esac
command -v openssl >/dev/null || die "openssl not found on PATH"

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Runs openssl quietly; shows its output only when it fails.
ossl() {
  if ! openssl "$@" >"$tmp/openssl.log" 2>&1; then
    cat "$tmp/openssl.log" >&2
    die "openssl $1 failed"
  fi
}
genkey() { # $1: output file
  (umask 077
   if [[ $key_type == ecdsa ]]; then
     ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
   else
     ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1"
   fi)
}
serial() { printf '0x%s' "$(openssl rand -hex 16)"; }

# --- CA ---------------------------------------------------------------------
if [[ $new_ca == false && -s $out/ca.crt && -s $out/ca.key ]]; then
  log "reusing the CA in $out (pass --new-ca to replace it)"
else
  cat >"$tmp/ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = rollout-safe development CA
O = rollout-safe
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  genkey "$tmp/ca.key"
  ossl req -x509 -new -key "$tmp/ca.key" -config "$tmp/ca.cnf" -extensions v3_ca \
    -sha256 -days "$ca_days" -set_serial "$(serial)" -out "$tmp/ca.crt"
  mv "$tmp/ca.key" "$out/ca.key"
  mv "$tmp/ca.crt" "$out/ca.crt"
  log "created CA $out/ca.crt (valid $ca_days days)"
fi

# --- serving certificate -----------------------------------------------------
sans=("DNS:$service" "DNS:$service.$namespace" "DNS:$service.$namespace.svc" "DNS:$service.$namespace.svc.cluster.local")
if [[ $localhost == true ]]; then
  sans+=("DNS:localhost" "IP:127.0.0.1" "IP:::1")
fi
for san in "${extra_sans[@]+"${extra_sans[@]}"}"; do
  if [[ $san =~ ^[0-9.]+$ || $san == *:* ]]; then
    sans+=("IP:$san")
  else
    sans+=("DNS:$san")
  fi
done
san_line=$(IFS=,; printf '%s' "${sans[*]}")

if [[ $key_type == ecdsa ]]; then key_usage="critical, digitalSignature"; else key_usage="critical, digitalSignature, keyEncipherment"; fi
cat >"$tmp/tls.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = $service.$namespace.svc
O = rollout-safe
[v3_req]
basicConstraints = critical, CA:FALSE
keyUsage = $key_usage
extendedKeyUsage = serverAuth
subjectAltName = $san_line
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

genkey "$tmp/tls.key"
ossl req -new -key "$tmp/tls.key" -config "$tmp/tls.cnf" -out "$tmp/tls.csr"
ossl x509 -req -in "$tmp/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
  -set_serial "$(serial)" -sha256 -days "$days" \
  -extfile "$tmp/tls.cnf" -extensions v3_req -out "$tmp/tls.crt"
ossl verify -purpose sslserver -CAfile "$out/ca.crt" "$tmp/tls.crt"
mv "$tmp/tls.key" "$out/tls.key"
mv "$tmp/tls.crt" "$out/tls.crt"

log "created serving certificate $out/tls.crt (valid $days days, $key_type)"
log "  subjectAltName: $san_line"
log "Create the Secret and install the chart with it:"
log "  kubectl -n $namespace create secret tls $service-tls --cert=$out/tls.crt --key=$out/tls.key"
log "  helm install rollout-safe charts/rollout-safe -n $namespace --set fullnameOverride=$service \\"
log "    --set certificates.mode=secret --set certificates.existingSecret=$service-tls \\"
log "    --set certificates.caBundle=\$(openssl base64 -A -in $out/ca.crt)"
log "caBundle (base64 of ca.crt) follows on stdout."

openssl base64 -A -in "$out/ca.crt"
echo
