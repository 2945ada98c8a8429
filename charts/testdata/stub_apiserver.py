#!/usr/bin/env python3
"""A stub Kubernetes API server on 127.0.0.1, just enough for
`helm template --dry-run=server` so that the chart's `lookup` calls can be
tested without a cluster.

Usage: stub_apiserver.py PORT_FILE [OBJECTS_FILE]

Binds an ephemeral loopback port, writes it to PORT_FILE, and serves
discovery for the kinds the chart renders, plus GET of each object in
OBJECTS_FILE (a JSON list, re-read on every request); any other object is 404.
Stops by itself after 10 minutes.
"""
import http.server
import json
import os
import sys
import threading

RESOURCES = {  # groupVersion -> [(plural, kind, namespaced)]
    "v1": [("secrets", "Secret", True), ("configmaps", "ConfigMap", True), ("services", "Service", True),
           ("serviceaccounts", "ServiceAccount", True), ("pods", "Pod", True), ("namespaces", "Namespace", False)],
    "apps/v1": [("deployments", "Deployment", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                     ("clusterrolebindings", "ClusterRoleBinding", False)],
    "admissionregistration.k8s.io/v1": [("mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
                                        ("validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False)],
}
OBJECTS_FILE = sys.argv[2] if len(sys.argv) > 2 else None


def object_path(obj):
    gv = obj["apiVersion"]
    plural = next(p for p, k, _ in RESOURCES[gv] if k == obj["kind"])
    prefix = "/api/v1" if gv == "v1" else f"/apis/{gv}"
    ns = obj["metadata"].get("namespace")
    return f"{prefix}/namespaces/{ns}/{plural}/{obj['metadata']['name']}" if ns else f"{prefix}/{plural}/{obj['metadata']['name']}"


class Handler(http.server.BaseHTTPRequestHandler):
    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/version":
            return self.send_json(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"})
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = [{"name": gv.split("/")[0],
                       "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                       "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}}
                      for gv in RESOURCES if "/" in gv]
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        gv = path[len("/api/"):] if path.startswith("/api/") else path[len("/apis/"):]
        if gv in RESOURCES:
            return self.send_json(200, {
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": [{"name": p, "singularName": k.lower(), "namespaced": ns, "kind": k,
                               "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}
                              for p, k, ns in RESOURCES[gv]]})
        if OBJECTS_FILE and os.path.exists(OBJECTS_FILE):
            with open(OBJECTS_FILE) as f:
                for obj in json.load(f):
                    if object_path(obj) == path:
                        return self.send_json(200, obj)
        return self.send_json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "reason": "NotFound", "code": 404, "message": f"{path} not found"})

    def do_POST(self):  # nothing is ever written
        self.send_json(405, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 405,
                             "message": "stub API server is read-only"})

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Timer(600, server.shutdown).start()
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, sys.argv[1])
    server.serve_forever()
    os._exit(0)  # the Timer thread is not a daemon


if __name__ == "__main__":
    main()
