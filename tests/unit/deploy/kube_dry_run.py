"""`kubectl apply --dry-run=client --validate=false` with no cluster.

Even a client-side dry run asks an API server two things: discovery (which kinds each
apiVersion serves, and whether they are namespaced) and the live object (absent = "created").
This module answers both from a loopback stub, so the manifests go through kubectl's own
decoder and REST mapping offline. The stub serves the built-in kinds of Kubernetes >= 1.25
only, so a removed API version (autoscaling/v2beta2, policy/v1beta1, batch/v1beta1 CronJob)
or a misspelt kind fails as it would on a real cluster. Field schemas are not checked
(--validate=false: kubectl would need the cluster's OpenAPI document for that).
"""
import http.server
import json
import os
import subprocess
import tempfile
import threading

# group/version -> [(kind, plural, namespaced)]: what a 1.25+ API server serves for these kinds.
SERVED = {
    "v1": [("ConfigMap", "configmaps", True), ("Secret", "secrets", True),
           ("Service", "services", True), ("ServiceAccount", "serviceaccounts", True),
           ("PersistentVolumeClaim", "persistentvolumeclaims", True),
           ("Namespace", "namespaces", False)],
    "apps/v1": [("Deployment", "deployments", True), ("StatefulSet", "statefulsets", True),
                ("DaemonSet", "daemonsets", True)],
    "batch/v1": [("Job", "jobs", True), ("CronJob", "cronjobs", True)],
    "autoscaling/v1": [("HorizontalPodAutoscaler", "horizontalpodautoscalers", True)],
    "autoscaling/v2": [("HorizontalPodAutoscaler", "horizontalpodautoscalers", True)],
    "policy/v1": [("PodDisruptionBudget", "poddisruptionbudgets", True)],
    "networking.k8s.io/v1": [("Ingress", "ingresses", True),
                             ("NetworkPolicy", "networkpolicies", True)],
}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def _discovery(path):
    """The JSON body for a discovery path, or None."""
    if path == "/version":
        return {"major": "1", "minor": "29", "gitVersion": "v1.29.0"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        groups = {}
        for gv in SERVED:
            if "/" in gv:
                group, version = gv.split("/")
                groups.setdefault(group, []).append({"groupVersion": gv, "version": version})
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{"name": g, "versions": v, "preferredVersion": v[-1]}
                           for g, v in groups.items()]}
    gv = path[len("/api/"):] if path.startswith("/api/") else path[len("/apis/"):]
    if path.startswith(("/api/", "/apis/")) and gv in SERVED:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": [{"name": plural, "singularName": kind.lower(), "kind": kind,
                               "namespaced": ns, "verbs": VERBS}
                              for kind, plural, ns in SERVED[gv]]}
    return None


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = _discovery(self.path.split("?")[0])
        code = 200
        if body is None:  # any object: not there yet, so apply would create it
            code = 404
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404, "message": "not found"}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def dry_run(kubectl, paths):
    """Runs kubectl apply --dry-run=client --validate=false -f each path against the stub.

    Returns (exit code, combined output)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = os.path.join(tmp, "kubeconfig")
            with open(config, "w") as f:
                json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "stub",
                           "clusters": [{"name": "stub", "cluster": {
                               "server": f"http://127.0.0.1:{server.server_address[1]}"}}],
                           "contexts": [{"name": "stub", "context": {
                               "cluster": "stub", "user": "stub", "namespace": "default"}}],
                           "users": [{"name": "stub", "user": {}}]}, f)
            args = [kubectl, "apply", "--dry-run=client", "--validate=false",
                    f"--kubeconfig={config}", f"--cache-dir={tmp}/cache"]
            for p in paths:
                args += ["-f", p]
            env = dict(os.environ, HOME=tmp, KUBECONFIG=config)
            out = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
            return out.returncode, out.stdout + out.stderr
    finally:
        server.shutdown()
        server.server_close()
