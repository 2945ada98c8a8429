#!/usr/bin/env python3
"""Checks a chart render in admission.mode=policies (output of `helm template`).

Usage: check_policies.py FILE --namespace NS --name FULLNAME [--mutating none|v1|v1beta1]
                         [--extra-excluded a,b] [--exported EXPORT.json]

Only admission policies and their bindings are rendered (no webhook, certificates or RBAC);
every policy sets failurePolicy and has a binding with the actions its name says, bound with
the webhook's namespace exclusions; the rules that need cluster lookups are absent; and, with
--exported (the output of `kubectl rollout-safe export admission-policy -o json` for the same
policy and Kubernetes version), the policies are the same objects the export makes. Prints one
line per failed check and exits 1 when any failed.
"""
import argparse
import json
import sys

import yaml

FAILURES = []
POLICY_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
                "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"}


def check(cond, msg):
    if not cond:
        FAILURES.append(msg)
    return bool(cond)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--mutating", default="none", choices=["none", "v1", "v1beta1"])
    ap.add_argument("--extra-excluded", default="")
    ap.add_argument("--exported", default="")
    a = ap.parse_args()

    with open(a.file) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    kinds = {d["kind"] for d in docs}
    check(kinds <= POLICY_KINDS, f"objects besides admission policies: {sorted(kinds - POLICY_KINDS)}")
    by_key = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    check(len(by_key) == len(docs), "two objects with the same kind and name")

    excluded = {"kube-system", a.namespace} | {n for n in a.extra_excluded.split(",") if n}
    vaps = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    check(len(vaps) >= 10, f"only {len(vaps)} ValidatingAdmissionPolicies")
    for p in vaps:
        name = p["metadata"]["name"]
        rule = p["metadata"].get("labels", {}).get("rollout-safe.dev/rule", "")
        check(name in (f"{a.name}-{rule.lower()}-enforce", f"{a.name}-{rule.lower()}-warn"),
              f"{name}: not named after its rule {rule!r}")
        check(rule not in ("RS405", "RS601", "RS602", "RS603"), f"{name}: {rule} needs cluster lookups")
        check(p["spec"].get("failurePolicy") == "Fail", f"{name}: failurePolicy {p['spec'].get('failurePolicy')}")
        check(p["spec"].get("validations"), f"{name}: no validations")
        b = by_key.get(("ValidatingAdmissionPolicyBinding", name))
        if not check(b, f"{name}: no binding"):
            continue
        want = ["Deny", "Audit"] if name.endswith("-enforce") else ["Warn", "Audit"]
        check(b["spec"].get("policyName") == name, f"{name}: binding names {b['spec'].get('policyName')}")
        check(b["spec"].get("validationActions") == want, f"{name}: binding actions {b['spec'].get('validationActions')}")
    for b in (d for d in docs if d["kind"].endswith("Binding")):
        exprs = b["spec"].get("matchResources", {}).get("namespaceSelector", {}).get("matchExpressions", [])
        notin = [e for e in exprs if e.get("key") == "kubernetes.io/metadata.name" and e.get("operator") == "NotIn"]
        check(notin and set(notin[0].get("values", [])) == excluded,
              f"{b['metadata']['name']}: namespaceSelector NotIn {notin}, want {sorted(excluded)}")
        check({"key": "rollout-safe.dev/ignore", "operator": "DoesNotExist"} in exprs,
              f"{b['metadata']['name']}: no opt-out label DoesNotExist")

    maps = [d for d in docs if d["kind"] == "MutatingAdmissionPolicy"]
    if a.mutating == "none":
        check(not maps, "a MutatingAdmissionPolicy was rendered")
    else:
        want = f"admissionregistration.k8s.io/{a.mutating}"
        check(len(maps) == 1 and maps[0]["apiVersion"] == want,
              f"MutatingAdmissionPolicy: {[m['apiVersion'] for m in maps]}, want one {want}")
        for m in maps:
            check(m["spec"].get("failurePolicy") == "Fail" and m["spec"].get("reinvocationPolicy") == "IfNeeded",
                  "MutatingAdmissionPolicy: failurePolicy/reinvocationPolicy")
            check(("MutatingAdmissionPolicyBinding", m["metadata"]["name"]) in by_key, "MutatingAdmissionPolicy: no binding")

    if a.exported:
        with open(a.exported) as f:
            exported = json.load(f)["items"]
        ex = {(d["kind"], d["metadata"]["name"]): d for d in exported}
        check(set(ex) == set(by_key),
              f"the chart and the export make different objects: chart only {sorted(set(by_key) - set(ex))}, export only {sorted(set(ex) - set(by_key))}")
        for key, e in ex.items():
            c = by_key.get(key)
            if c is None:
                continue
            check(c["apiVersion"] == e["apiVersion"], f"{key}: apiVersion {c['apiVersion']} vs {e['apiVersion']}")
            spec = dict(c["spec"])
            if key[0].endswith("Binding"):
                spec.pop("matchResources", None)
            if spec != e["spec"]:
                diff = [k for k in set(spec) | set(e["spec"]) if spec.get(k) != e["spec"].get(k)]
                check(False, f"{key}: spec differs from the export's in {sorted(diff)}")
            check(c["metadata"].get("annotations", {}) == e["metadata"].get("annotations", {}),
                  f"{key}: annotations differ from the export's")
            labels = c["metadata"].get("labels", {})
            check(all(labels.get(k) == v for k, v in e["metadata"].get("labels", {}).items()),
                  f"{key}: lacks the export's labels {e['metadata'].get('labels')}")

    for f in FAILURES:
        print(f"  check failed: {f}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
