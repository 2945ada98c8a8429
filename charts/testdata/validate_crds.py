#!/usr/bin/env python3
"""Validates the custom-resource kinds kubernetes-validate has no schema for.

cert-manager Certificate/Issuer and Prometheus Operator ServiceMonitor
documents are parsed with the typed models of the cloudcoil-models-cert-manager
and cloudcoil-models-prometheus-operator packages (generated from the CRDs):
a missing required field or a wrong type fails, and a field the model drops
when dumped back (a typo, an unknown field) fails too.

Usage: validate_crds.py FILE...   Exit 1 on any invalid document.
"""
import sys

import yaml
from cloudcoil.models.cert_manager import v1 as cert_manager
from cloudcoil.models.prometheus_operator import v1 as prometheus_operator

MODELS = {
    ("cert-manager.io/v1", "Certificate"): cert_manager.Certificate,
    ("cert-manager.io/v1", "Issuer"): cert_manager.Issuer,
    ("cert-manager.io/v1", "ClusterIssuer"): cert_manager.ClusterIssuer,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): prometheus_operator.ServiceMonitor,
}


def unknown_fields(given, dumped, path=""):
    out = []
    if isinstance(given, dict):
        for key, value in given.items():
            if not isinstance(dumped, dict) or key not in dumped:
                out.append(f"{path}.{key}")
            else:
                out += unknown_fields(value, dumped[key], f"{path}.{key}")
    elif isinstance(given, list) and isinstance(dumped, list):
        for i, (x, y) in enumerate(zip(given, dumped)):
            out += unknown_fields(x, y, f"{path}[{i}]")
    return out


def main():
    rc = 0
    for filename in sys.argv[1:]:
        with open(filename) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            model = MODELS.get((doc.get("apiVersion"), doc.get("kind")))
            if model is None:
                continue
            what = f"{filename}: {doc['kind'].lower()}/{doc['metadata']['name']}"
            try:
                obj = model.model_validate(doc)
            except Exception as e:  # pydantic.ValidationError
                print(f"ERROR {what}: {e}")
                rc = 1
                continue
            extra = unknown_fields(doc, obj.model_dump(by_alias=True, exclude_unset=True, mode="json"))
            if extra:
                print(f"ERROR {what}: unknown fields {', '.join(extra)}")
                rc = 1
            else:
                print(f"INFO {what} passed ({doc['apiVersion']})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
