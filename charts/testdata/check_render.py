#!/usr/bin/env python3
"""Checks the invariants of a rendered rollout-safe chart (output of `helm template`).

Usage: check_render.py FILE --mode MODE --namespace NS --name FULLNAME [options]

Prints one line per failed check and exits 1 when any failed. Needs PyYAML and
openssl (for the helm/secret certificate checks).
"""
import argparse
import base64
import subprocess
import sys
import tempfile

import yaml

FAILURES = []


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
    return bool(cond)


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    check(len(found) == 1, f"expected exactly one {kind}{' ' + name if name else ''}, found {len(found)}")
    return found[0] if found else {}


def selector_matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True)


def check_cert_pair(ca_pem, cert_pem, dns_names, what):
    with tempfile.NamedTemporaryFile("w", suffix=".crt") as ca, tempfile.NamedTemporaryFile("w", suffix=".crt") as crt:
        ca.write(ca_pem), ca.flush()
        crt.write(cert_pem), crt.flush()
        r = openssl("verify", "-purpose", "sslserver", "-CAfile", ca.name, crt.name)
        check(r.returncode == 0, f"{what}: serving certificate does not verify against the CA: {r.stdout}{r.stderr}")
        r = openssl("x509", "-in", crt.name, "-noout", "-ext", "subjectAltName")
        for n in dns_names:
            check(f"DNS:{n}" in r.stdout, f"{what}: serving certificate lacks SAN DNS:{n}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--mode", required=True, choices=["helm", "cert-manager", "secret"])
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--name", required=True, help="the chart's full name (Service name)")
    ap.add_argument("--cluster-lookups", default="true", choices=["true", "false"])
    ap.add_argument("--kubernetes-version", default="")
    ap.add_argument("--ca-bundle", default="", help="mode=secret: the caBundle passed in")
    ap.add_argument("--existing-secret", default="", help="mode=secret: the Secret name passed in")
    ap.add_argument("--extra-excluded", default="", help="comma-separated extra excluded namespaces")
    ap.add_argument("--service-monitor", default="false", choices=["true", "false"])
    a = ap.parse_args()
    lookups = a.cluster_lookups == "true"

    with open(a.file) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for d in docs:
        ns = d["metadata"].get("namespace")
        cluster_scoped = d["kind"] in ("ClusterRole", "ClusterRoleBinding",
                                       "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
        check(cluster_scoped or ns == a.namespace, f"{d['kind']}/{d['metadata']['name']}: namespace {ns!r}, want {a.namespace!r}")

    dns_names = [a.name, f"{a.name}.{a.namespace}", f"{a.name}.{a.namespace}.svc", f"{a.name}.{a.namespace}.svc.cluster.local"]

    # --- Deployment -----------------------------------------------------------
    dep = one(docs, "Deployment", a.name)
    spec = dep.get("spec", {})
    tmpl = spec.get("template", {})
    pod = tmpl.get("spec", {})
    pod_labels = tmpl.get("metadata", {}).get("labels", {})
    check(spec.get("replicas") == 2, "Deployment: replicas != 2")
    check(spec.get("revisionHistoryLimit") == 5, "Deployment: revisionHistoryLimit != 5")
    check(spec.get("progressDeadlineSeconds") == 300, "Deployment: progressDeadlineSeconds != 300")
    check(spec.get("minReadySeconds") == 5, "Deployment: minReadySeconds != 5")
    check(spec.get("strategy") == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
          f"Deployment: strategy {spec.get('strategy')}")
    check(selector_matches(spec.get("selector", {}).get("matchLabels", {}), pod_labels), "Deployment: selector does not match pod labels")
    check("checksum/policy" in tmpl.get("metadata", {}).get("annotations", {}), "Deployment: no checksum/policy pod annotation")
    check(pod.get("terminationGracePeriodSeconds") == 30, "Deployment: terminationGracePeriodSeconds != 30")
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532, "pod securityContext: not runAsNonRoot/65532")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod securityContext: seccompProfile")
    anti = pod.get("affinity", {}).get("podAntiAffinity", {}).get("preferredDuringSchedulingIgnoredDuringExecution", [])
    check(anti, "Deployment: no preferred podAntiAffinity")
    check(pod.get("topologySpreadConstraints"), "Deployment: no topologySpreadConstraints")
    containers = pod.get("containers", [])
    check(len(containers) == 1, "Deployment: expected one container")
    c = containers[0] if containers else {}
    want_args = ["serve", "--tls-cert", "/etc/rollout-safe/tls/tls.crt", "--tls-key", "/etc/rollout-safe/tls/tls.key",
                 "--addr", "0.0.0.0:8443", "--metrics-addr", "0.0.0.0:9090",
                 "--policy", "/etc/rollout-safe/policy/policy.yaml", "--log-format", "json",
                 # 80 % of webhook.timeoutSeconds (5); grace 30 - preStop 5 - 3 s margin.
                 "--request-timeout", "4000ms", "--drain-timeout", "22s"]
    if lookups:
        want_args.append("--cluster-lookups")
    if a.kubernetes_version:
        want_args += ["--kubernetes-version", a.kubernetes_version]
    check(c.get("args") == want_args, f"container args {c.get('args')}, want {want_args}")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check(ports == {"https": 8443, "metrics": 9090}, f"container ports {ports}")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
        g = c.get(probe, {}).get("httpGet", {})
        check(g == {"path": path, "port": "https", "scheme": "HTTPS"}, f"{probe}: httpGet {g}")
    timing = lambda p: {k: v for k, v in c.get(p, {}).items() if k != "httpGet"}
    check(timing("readinessProbe") != timing("livenessProbe"), "liveness timing identical to readiness (RS103)")
    check(c.get("livenessProbe", {}).get("failureThreshold", 3) > c.get("readinessProbe", {}).get("failureThreshold", 3),
          "liveness should tolerate more failures than readiness")
    check(c.get("lifecycle", {}).get("preStop") == {"sleep": {"seconds": 5}}, f"preStop {c.get('lifecycle')}")
    res = c.get("resources", {})
    check(res.get("requests") and res.get("limits"), "container: resources requests/limits missing")
    sc = c.get("securityContext", {})
    check(sc.get("allowPrivilegeEscalation") is False, "container: allowPrivilegeEscalation not false")
    check(sc.get("readOnlyRootFilesystem") is True, "container: readOnlyRootFilesystem not true")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], "container: capabilities.drop != [ALL]")
    check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 65532, "container: runAsNonRoot/runAsUser")
    check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "container: seccompProfile")
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    check(mounts.get("tls", {}).get("mountPath") == "/etc/rollout-safe/tls" and mounts["tls"].get("readOnly"), "tls mount")
    check(mounts.get("policy", {}).get("mountPath") == "/etc/rollout-safe/policy" and mounts["policy"].get("readOnly"), "policy mount")
    check(all("subPath" not in m for m in mounts.values()), "a subPath mount would not see rotated files")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    tls_secret = vols.get("tls", {}).get("secret", {}).get("secretName")
    policy_cm = vols.get("policy", {}).get("configMap", {}).get("name")
    if a.mode == "secret":
        check(tls_secret == a.existing_secret, f"tls volume uses Secret {tls_secret}, want {a.existing_secret}")
    else:
        check(tls_secret == f"{a.name}-tls", f"tls volume uses Secret {tls_secret}")

    # --- Service, PDB, ConfigMap, ServiceAccount --------------------------------
    svc = one(docs, "Service", a.name)
    check(selector_matches(svc.get("spec", {}).get("selector", {}), pod_labels), "Service selector does not match the pod labels")
    sports = {p["name"]: (p["port"], p["targetPort"]) for p in svc.get("spec", {}).get("ports", [])}
    check(sports == {"https": (443, "https"), "metrics": (9090, "metrics")}, f"Service ports {sports}")
    pdb = one(docs, "PodDisruptionBudget", a.name)
    check(pdb.get("spec", {}).get("minAvailable") == 1, "PDB minAvailable != 1")
    check(selector_matches(pdb.get("spec", {}).get("selector", {}).get("matchLabels", {}), pod_labels), "PDB selector does not match the pods")
    cm = one(docs, "ConfigMap", policy_cm)
    policy = yaml.safe_load(cm.get("data", {}).get("policy.yaml", "")) or {}
    check(policy.get("kind") == "RolloutPolicy" and policy.get("apiVersion") == "rollout-safe.dev/v1alpha1",
          "policy.yaml is not a rollout-safe.dev/v1alpha1 RolloutPolicy")
    check(isinstance(policy.get("spec", {}).get("rules"), dict), "policy.yaml: spec.rules missing")
    sa = one(docs, "ServiceAccount", pod.get("serviceAccountName"))
    check(sa, "ServiceAccount of the pods not rendered")

    # --- RBAC -------------------------------------------------------------------
    roles = [d for d in docs if d["kind"] in ("ClusterRole", "Role")]
    if lookups:
        check(len(roles) == 1, f"expected one ClusterRole, found {len(roles)}")
        granted = set()
        for r in roles:
            for rule in r.get("rules", []):
                check(sorted(rule.get("verbs", [])) == ["list", "watch"], f"RBAC grants {rule.get('verbs')}, want list/watch")
                for g in rule.get("apiGroups", []):
                    for res_ in rule.get("resources", []):
                        granted.add(f"{g}/{res_}")
        # Exactly what webhook/src/lookups.rs watches.
        want = {"policy/poddisruptionbudgets", "autoscaling/horizontalpodautoscalers", "/pods"}
        check(granted == want, f"RBAC resources {sorted(granted)}, want {sorted(want)}")
        crb = one(docs, "ClusterRoleBinding")
        subj = crb.get("subjects", [{}])[0]
        check(subj.get("name") == sa.get("metadata", {}).get("name") and subj.get("namespace") == a.namespace,
              "ClusterRoleBinding subject is not the webhook's ServiceAccount")
    else:
        check(not roles and not any(d["kind"] == "ClusterRoleBinding" for d in docs), "RBAC rendered without clusterLookups")

    # --- webhook configurations ---------------------------------------------------
    excluded = {"kube-system", a.namespace} | {n for n in a.extra_excluded.split(",") if n}
    bundles = []
    for kind, path in (("MutatingWebhookConfiguration", "/mutate"), ("ValidatingWebhookConfiguration", "/validate")):
        wc = one(docs, kind, a.name)
        hooks = wc.get("webhooks", [])
        check(len(hooks) == 1, f"{kind}: expected one webhook")
        h = hooks[0] if hooks else {}
        check(h.get("sideEffects") == "None", f"{kind}: sideEffects")
        check(h.get("admissionReviewVersions") == ["v1"], f"{kind}: admissionReviewVersions")
        check(h.get("matchPolicy") == "Equivalent", f"{kind}: matchPolicy")
        check(h.get("timeoutSeconds") == 5, f"{kind}: timeoutSeconds")
        check(h.get("failurePolicy") == "Fail", f"{kind}: failurePolicy")
        if kind.startswith("Mutating"):
            check(h.get("reinvocationPolicy") == "IfNeeded", f"{kind}: reinvocationPolicy")
        cc = h.get("clientConfig", {})
        check(cc.get("service") == {"name": a.name, "namespace": a.namespace, "path": path, "port": 443},
              f"{kind}: clientConfig.service {cc.get('service')}")
        exprs = h.get("namespaceSelector", {}).get("matchExpressions", [])
        notin = [e for e in exprs if e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "NotIn"]
        check(notin and set(notin[0].get("values", [])) == excluded, f"{kind}: namespaceSelector NotIn {notin}, want {sorted(excluded)}")
        check({"key": "rollout-safe.dev/ignore", "operator": "DoesNotExist"} in exprs, f"{kind}: no opt-out label DoesNotExist")
        check(h.get("objectSelector") in ({}, None), f"{kind}: objectSelector {h.get('objectSelector')}")
        rules = h.get("rules", [])
        workload = {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                    "resources": ["deployments", "statefulsets", "daemonsets"], "scope": "Namespaced"}
        check(workload in rules, f"{kind}: no apps/v1 workload CREATE/UPDATE rule")
        svc_rule = [r for r in rules if r.get("resources") == ["services"]]
        if kind.startswith("Validating") and lookups:
            check(svc_rule and svc_rule[0].get("operations") == ["UPDATE"] and svc_rule[0].get("apiGroups") == [""],
                  f"{kind}: no core/v1 services UPDATE rule (RS602)")
        else:
            check(not svc_rule, f"{kind}: unexpected services rule")
        ann = wc.get("metadata", {}).get("annotations") or {}
        if a.mode == "cert-manager":
            check("caBundle" not in cc, f"{kind}: caBundle set in cert-manager mode (the CA injector owns it)")
            check(ann.get("cert-manager.io/inject-ca-from") == f"{a.namespace}/{a.name}-tls", f"{kind}: inject-ca-from {ann}")
        else:
            check("cert-manager.io/inject-ca-from" not in ann, f"{kind}: inject-ca-from outside cert-manager mode")
            check(cc.get("caBundle"), f"{kind}: no caBundle")
            bundles.append(cc.get("caBundle", ""))

    # --- certificates per mode --------------------------------------------------------
    cm_kinds = [d for d in docs if d["apiVersion"].startswith("cert-manager.io/")]
    secrets = [d for d in docs if d["kind"] == "Secret"]
    if a.mode == "helm":
        check(not cm_kinds, "cert-manager resources rendered in helm mode")
        s = one(docs, "Secret", f"{a.name}-tls")
        data = s.get("data", {})
        check(s.get("type") == "kubernetes.io/tls", "helm Secret type is not kubernetes.io/tls")
        check(len(set(bundles)) == 1, "the two webhook configurations carry different caBundles")
        check(bundles and bundles[0] == data.get("ca.crt"), "caBundle differs from the Secret's ca.crt")
        check(s.get("metadata", {}).get("annotations", {}).get("rollout-safe.dev/not-after", "").isdigit(),
              "helm Secret lacks the rollout-safe.dev/not-after annotation")
        if data.get("ca.crt") and data.get("tls.crt"):
            check_cert_pair(base64.b64decode(data["ca.crt"]).decode(), base64.b64decode(data["tls.crt"]).decode(), dns_names, "helm mode")
    elif a.mode == "secret":
        check(not cm_kinds and not secrets, "secret mode must not render a Secret or cert-manager resources")
        check(bundles == [a.ca_bundle, a.ca_bundle], "caBundle is not the one passed in certificates.caBundle")
    else:
        check(not secrets, "cert-manager mode must not render a Secret")
        serving = one(docs, "Certificate", f"{a.name}-tls")
        sspec = serving.get("spec", {})
        check(sspec.get("secretName") == tls_secret, "serving Certificate's secretName is not the mounted Secret")
        check(sspec.get("dnsNames") == dns_names, f"serving Certificate dnsNames {sspec.get('dnsNames')}, want {dns_names}")
        check("server auth" in sspec.get("usages", []), "serving Certificate lacks the server auth usage")
        check("commonName" not in sspec, "serving Certificate has a commonName (64-byte limit; dnsNames suffice)")
        ca = one(docs, "Certificate", f"{a.name}-ca")
        check(ca.get("spec", {}).get("isCA") is True, "CA Certificate is not isCA")
        ca_issuer = one(docs, "Issuer", f"{a.name}-ca")
        check(ca_issuer.get("spec", {}).get("ca", {}).get("secretName") == ca.get("spec", {}).get("secretName"),
              "CA Issuer does not use the CA Certificate's Secret")
        check(sspec.get("issuerRef", {}).get("name") == f"{a.name}-ca", "serving Certificate not issued by the CA Issuer")
        selfsigned = one(docs, "Issuer", f"{a.name}-selfsigned")
        check("selfSigned" in selfsigned.get("spec", {}), "self-signed Issuer missing")
        check(ca.get("spec", {}).get("issuerRef", {}).get("name") == f"{a.name}-selfsigned", "CA not issued by the self-signed Issuer")

    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    if a.service_monitor == "true":
        check(len(monitors) == 1 and monitors[0]["spec"]["endpoints"][0]["port"] == "metrics", "ServiceMonitor for the metrics port")
        if monitors:
            check(selector_matches(monitors[0]["spec"]["selector"]["matchLabels"], svc.get("metadata", {}).get("labels", {})),
                  "ServiceMonitor selector does not match the Service")
    else:
        check(not monitors, "ServiceMonitor rendered while disabled")

    for f in FAILURES:
        print(f"  check failed: {f}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
