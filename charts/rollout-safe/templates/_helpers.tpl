{{/*
Chart name, truncated to 63 characters (DNS label limit).
*/}}
{{- define "rollout-safe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name used as the prefix of every resource. Kept to 52 characters so that
suffixes like "-selfsigned" still fit in 63.
*/}}
{{- define "rollout-safe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "rollout-safe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: stable across upgrades (Deployment selectors are immutable).
*/}}
{{- define "rollout-safe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollout-safe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "rollout-safe.labels" -}}
helm.sh/chart: {{ include "rollout-safe.chart" . }}
{{ include "rollout-safe.selectorLabels" . }}
app.kubernetes.io/version: {{ include "rollout-safe.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: rollout-safe
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "rollout-safe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rollout-safe.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rollout-safe.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{/*
Image reference: repository@digest when image.digest is set, else repository:tag.
*/}}
{{- /*
The chart's default image.repository is a placeholder under the reserved .invalid TLD: no cluster
can pull it, and with failurePolicy Fail an install with it rejects every Deployment, StatefulSet
and DaemonSet change outside the excluded namespaces. Refuse to render until it is set.
*/ -}}
{{- define "rollout-safe.validateImage" -}}
{{- $host := regexReplaceAll ":[0-9]+$" (first (splitList "/" (toString .Values.image.repository))) "" -}}
{{- if or (not .Values.image.repository) (hasSuffix ".invalid" $host) -}}
{{- fail (printf "image.repository is %q, the chart's placeholder or empty: no cluster can pull it, and with failurePolicy Fail every Deployment, StatefulSet and DaemonSet change would then be rejected. Build the image from the repository's Dockerfile, push it, and set image.repository (e.g. --set image.repository=registry.example.com/rollout-safe/rollout-safe-webhook), with image.tag or image.digest" (toString .Values.image.repository)) -}}
{{- end -}}
{{- end -}}

{{- define "rollout-safe.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "rollout-safe.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{- define "rollout-safe.policyConfigMapName" -}}
{{- printf "%s-policy" (include "rollout-safe.fullname" .) -}}
{{- end -}}

{{/*
DNS names of the webhook Service: the API server calls
<svc>.<ns>.svc; the others are listed for clients inside the cluster.
*/}}
{{- define "rollout-safe.dnsNames" -}}
{{- $svc := include "rollout-safe.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{/*
Validates certificates.* for the chosen mode and fails with a clear message.
Included by every template that depends on the mode, so a bad value fails the
render whichever template is rendered first (or alone, with --show-only).
*/}}
{{- define "rollout-safe.validateCertificates" -}}
{{- $c := .Values.certificates -}}
{{- $modes := list "cert-manager" "helm" "secret" -}}
{{- if not (has $c.mode $modes) -}}
{{- fail (printf "certificates.mode %q is not supported: use one of cert-manager, helm, secret" (toString $c.mode)) -}}
{{- end -}}
{{- if eq $c.mode "secret" -}}
{{- if not $c.existingSecret -}}
{{- fail "certificates.mode=secret needs certificates.existingSecret: the name of a kubernetes.io/tls Secret (tls.crt, tls.key) in the release namespace" -}}
{{- end -}}
{{- if not $c.caBundle -}}
{{- fail "certificates.mode=secret needs certificates.caBundle: the base64-encoded PEM CA that signed the serving certificate (certs/gen-dev-certs.sh prints it)" -}}
{{- end -}}
{{- $pem := $c.caBundle | b64dec -}}
{{- if not (contains "-----BEGIN CERTIFICATE-----" $pem) -}}
{{- fail "certificates.caBundle must be the base64 encoding of a PEM certificate (-----BEGIN CERTIFICATE-----)" -}}
{{- end -}}
{{- end -}}
{{- if eq $c.mode "cert-manager" -}}
{{- with $c.certManager.issuerRef -}}
{{- if not .name -}}
{{- fail "certificates.certManager.issuerRef needs a name (or leave it empty for the chart's own CA)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Name of the Secret that holds the serving certificate.
*/}}
{{- define "rollout-safe.tlsSecretName" -}}
{{- include "rollout-safe.validateCertificates" . -}}
{{- if eq .Values.certificates.mode "secret" -}}
{{- .Values.certificates.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "rollout-safe.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
Name of the cert-manager serving Certificate (mode=cert-manager).
*/}}
{{- define "rollout-safe.certificateName" -}}
{{- printf "%s-tls" (include "rollout-safe.fullname" .) -}}
{{- end -}}

{{/*
mode=helm: the CA and serving certificate, as JSON
{caCert, cert, key, notAfter}. Generated once per render and cached on the root
context, so the Secret and both webhook configurations get the same CA. An
existing Secret (found with `lookup` on install/upgrade) is reused unless
certificates.helm.regenerate is set or it expires within renewBeforeDays.
*/}}
{{- define "rollout-safe.helmCerts" -}}
{{- if not (hasKey $ "rolloutSafeHelmCerts") -}}
{{- $h := .Values.certificates.helm -}}
{{- $secretName := include "rollout-safe.tlsSecretName" . -}}
{{- $now := now | unixEpoch | int64 -}}
{{- $result := dict -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName -}}
{{- if and $existing (not $h.regenerate) -}}
{{- $data := $existing.data | default dict -}}
{{- $notAfter := dig "metadata" "annotations" "rollout-safe.dev/not-after" "0" $existing | int64 -}}
{{- $renewAt := sub $notAfter (mul (int64 $h.renewBeforeDays) 86400) -}}
{{- if and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") (lt $now $renewAt) -}}
{{- $result = dict "caCert" (index $data "ca.crt" | b64dec) "cert" (index $data "tls.crt" | b64dec) "key" (index $data "tls.key" | b64dec) "notAfter" (toString $notAfter) -}}
{{- end -}}
{{- end -}}
{{- if not $result -}}
{{- $dnsNames := include "rollout-safe.dnsNames" . | fromJsonArray -}}
{{- $ca := genCA (printf "%s-ca" (include "rollout-safe.fullname" .)) (int $h.caValidityDays) -}}
{{- $cert := genSignedCert (index $dnsNames 2) nil $dnsNames (int $h.validityDays) $ca -}}
{{- $notAfter := add $now (mul (int64 $h.validityDays) 86400) -}}
{{- $result = dict "caCert" $ca.Cert "cert" $cert.Cert "key" $cert.Key "notAfter" (toString $notAfter) -}}
{{- /* Renewal: the webhook configurations trust the old CA too, because the pods keep
serving the old leaf until they reload the Secret (up to ~90 s); the next upgrade that
reuses the new pair drops the old CA. */ -}}
{{- $oldCA := "" -}}
{{- if $existing -}}
{{- $oldCA = index ($existing.data | default dict) "ca.crt" | default "" | b64dec -}}
{{- end -}}
{{- if and $oldCA (ne (trim $oldCA) (trim $ca.Cert)) -}}
{{- $_ := set $result "caBundle" (printf "%s\n%s" (trim $oldCA) $ca.Cert) -}}
{{- end -}}
{{- end -}}
{{- if not (hasKey $result "caBundle") -}}
{{- $_ := set $result "caBundle" $result.caCert -}}
{{- end -}}
{{- $_ := set $ "rolloutSafeHelmCerts" $result -}}
{{- end -}}
{{- get $ "rolloutSafeHelmCerts" | toJson -}}
{{- end -}}

{{/*
clientConfig.caBundle line for the webhook configurations (empty for
cert-manager, whose CA injector fills it in).
*/}}
{{- define "rollout-safe.caBundle" -}}
{{- include "rollout-safe.validateCertificates" . -}}
{{- if eq .Values.certificates.mode "helm" -}}
caBundle: {{ (include "rollout-safe.helmCerts" . | fromJson).caBundle | b64enc }}
{{- else if eq .Values.certificates.mode "secret" -}}
caBundle: {{ .Values.certificates.caBundle }}
{{- end -}}
{{- end -}}

{{/*
Annotations of the webhook configurations.
*/}}
{{- define "rollout-safe.webhookAnnotations" -}}
{{- if eq .Values.certificates.mode "cert-manager" -}}
cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "rollout-safe.certificateName" .) }}
{{- end -}}
{{- end -}}

{{/*
namespaceSelector shared by both webhooks: never kube-system, never the
release namespace (the webhook must not gate its own pods), never a namespace
carrying the opt-out label.
*/}}
{{- define "rollout-safe.namespaceSelector" -}}
{{- $excluded := concat (list "kube-system" .Release.Namespace) .Values.webhook.extraExcludedNamespaces | uniq -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- range $excluded }}
        - {{ . | quote }}
        {{- end }}
    - key: {{ .Values.webhook.optOutLabel | quote }}
      operator: DoesNotExist
{{- end -}}

{{/*
Rules for workloads (both webhooks).
*/}}
{{- define "rollout-safe.workloadRule" -}}
- apiGroups: ["apps"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  scope: Namespaced
{{- end -}}

{{- define "rollout-safe.clientConfig" -}}
clientConfig:
  service:
    name: {{ include "rollout-safe.fullname" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: {{ .root.Values.service.port }}
  {{- with include "rollout-safe.caBundle" .root }}
  {{- . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/*
admission.mode, checked: "webhook" (the webhook Deployment, Service, certificates and webhook
configurations) or "policies" (ValidatingAdmissionPolicies and, where the cluster has them,
a MutatingAdmissionPolicy, built in admission-policies.yaml; no webhook pods).
*/}}
{{- define "rollout-safe.admissionMode" -}}
{{- $mode := .Values.admission.mode | default "webhook" -}}
{{- if not (has $mode (list "webhook" "policies")) -}}
{{- fail (printf "admission.mode %q is not supported: use webhook or policies" (toString $mode)) -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{/*
A CEL string literal (single quotes), as the policy crate's `cel::lit` writes it for text
without control characters.
*/}}
{{- define "rollout-safe.celLiteral" -}}
{{- printf "'%s'" (. | replace "\\" "\\\\" | replace "'" "\\'") -}}
{{- end -}}

{{/*
A CEL literal of a regular expression: raw (r'...') unless it holds a quote.
*/}}
{{- define "rollout-safe.celRegexLiteral" -}}
{{- if contains "'" . -}}
{{- include "rollout-safe.celLiteral" . -}}
{{- else -}}
{{- printf "r'%s'" . -}}
{{- end -}}
{{- end -}}

{{/*
CEL true when the namespace matches one of the globs in .globs (field: where they come from,
for the error): a plain name by equality, a glob with * or ? by an anchored regular
expression. The same text as `admission_policy::namespace_matches`.
*/}}
{{- define "rollout-safe.celNamespaceMatch" -}}
{{- $parts := list -}}
{{- range $g := .globs -}}
{{- $g = toString $g -}}
{{- if regexMatch "\\p{Cc}" $g -}}
{{- fail (printf "policy: %s: namespace glob %q contains a control character, which no namespace name has" $.field $g) -}}
{{- end -}}
{{- $g = regexReplaceAll "\\*+" $g "*" -}}
{{- if or (contains "*" $g) (contains "?" $g) -}}
{{- $re := printf "^%s$" (regexQuoteMeta $g | replace "\\*" ".*" | replace "\\?" ".") -}}
{{- $parts = append $parts (printf "namespaceObject.metadata.name.matches(%s)" (include "rollout-safe.celRegexLiteral" $re)) -}}
{{- else -}}
{{- $parts = append $parts (printf "namespaceObject.metadata.name == %s" (include "rollout-safe.celLiteral" $g)) -}}
{{- end -}}
{{- end -}}
{{- if $parts -}}
{{- printf "(%s)" (join " || " $parts) -}}
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/*
The action a policy-file entry names ("" when none): a string, false (YAML's off), or a map's
`action`.
*/}}
{{- define "rollout-safe.entryAction" -}}
{{- if kindIs "string" . -}}
{{- . -}}
{{- else if kindIs "bool" . -}}
{{- if not . }}off{{ end -}}
{{- else if kindIs "map" . -}}
{{- if hasKey . "action" }}{{ include "rollout-safe.entryAction" (get . "action") }}{{ end -}}
{{- end -}}
{{- end -}}

{{/*
A parameter value as a CEL literal.
*/}}
{{- define "rollout-safe.celValue" -}}
{{- if kindIs "bool" . -}}
{{- printf "%t" . -}}
{{- else if kindIs "string" . -}}
{{- include "rollout-safe.celLiteral" . -}}
{{- else -}}
{{- printf "%d" (int64 .) -}}
{{- end -}}
{{- end -}}
