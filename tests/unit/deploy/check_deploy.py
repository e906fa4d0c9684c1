#!/usr/bin/python3
"""Deployment files cannot rot: checks docker-compose.yml, deploy/docker/Dockerfile,
deploy/render/render.yaml, deploy/k8s/*.yaml, deploy/prometheus/prometheus.yml and the ./fraud
launcher against each other and against the flags the built binaries really accept
(`<binary> --helpfull`). There is no Docker engine here, so this is the check that runs.
tests/unit/deploy/mutations.sh checks this checker: 26 broken copies of the files must fail it.

Usage: check_deploy.py ROOT BIN_DIR   (exit 0 = consistent; otherwise one line per problem)
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import yaml

ROOT, BIN = sys.argv[1], sys.argv[2]
SERVICES = {"ingest": 50051, "storage": 50052, "inference": 50053, "training": 50054}
METRICS = {"ingest": 9101, "storage": 9102, "inference": 9103, "training": 9104}
GATEWAY_PORT = 8080
ALL = list(SERVICES) + ["gateway"]
problems = []


def problem(where, msg):
    problems.append(f"{where}: {msg}")


def read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


_flag_cache = {}


def flags_of(binary):
    """Flag names a binary accepts, from its --helpfull output."""
    if binary in _flag_cache:
        return _flag_cache[binary]
    path = os.path.join(BIN, binary)
    if not os.access(path, os.X_OK):
        problem(binary, f"binary not built at {path}")
        _flag_cache[binary] = None
        return None
    out = subprocess.run([path, "--helpfull"], capture_output=True, text=True, timeout=30)
    names = set(re.findall(r"^\s+--([A-Za-z0-9_]+)\s", out.stdout + out.stderr, re.M))
    if not names:
        problem(binary, "--helpfull listed no flags")
    _flag_cache[binary] = names
    return names


def env_flag(key):
    """FRAUD_MODEL_DIR -> model_dir; None for variables that are not ours (PG*, POSTGRES_*)."""
    return key[len("FRAUD_"):].lower() if key.startswith("FRAUD_") else None


def check_env(where, binary, env):
    flags = flags_of(binary)
    if flags is None:
        return
    for key in env:
        flag = env_flag(key)
        if flag is not None and flag not in flags:
            problem(where, f"{key} sets --{flag}, which {binary} does not have")


def service_of_target(value):
    host, _, port = str(value).rpartition(":")
    return host, int(port) if port.isdigit() else None


# ---- launcher ------------------------------------------------------------------------------------
launcher = read("fraud")
launcher_build = re.search(r"BUILD_PACKAGES=\(\n(.*?)\n\)", launcher, re.S).group(1).split()
for line in re.findall(r"^\s*start_service (\w+)(.*)$", launcher.replace("\\\n", " "), re.M):
    name, args = line
    for flag in re.findall(r"--([a-z_]+)=", args):
        f = flags_of(f"fraud-{name}")
        if f is not None and flag not in f:
            problem("fraud launcher", f"start_service {name} passes --{flag}, unknown to fraud-{name}")
for name, port in METRICS.items():
    if f":{port}/healthz" in launcher and name not in launcher:
        problem("fraud launcher", f"waits on :{port} but does not start {name}")

# ---- Dockerfile ----------------------------------------------------------------------------------
dockerfile = read("deploy/docker/Dockerfile")
stages = {}
current = None
for raw in dockerfile.replace("\\\n", " ").splitlines():
    m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", raw, re.I)
    if m:
        current = m.group(1)
        stages[current] = []
    elif current:
        stages[current].append(raw.strip())
last_stage = list(stages)[-1]
if last_stage != "all":
    problem("Dockerfile", f"the default (last) stage is {last_stage}, Render expects `all`")
# The build stage copies every directory the root CMakeLists.txt adds, or the image's configure
# step fails (it did once: clients/replay was added to CMake but not copied).
copied = set()
for line in stages.get("build", []):
    m = re.match(r"COPY\s+(?!--)(.+)\s+\S+$", line)
    if m:
        copied.update(m.group(1).split())
for sub in re.findall(r"add_subdirectory\((\S+?)\)", read("CMakeLists.txt")):
    if sub not in copied:
        problem("Dockerfile", f"the build stage does not COPY {sub}, which CMakeLists.txt adds")
build_apt = []
for line in stages.get("build", []):
    if line.startswith("RUN") and "apt-get install" in line:
        words = line.split("apt-get install", 1)[1].split("&&")[0].split()
        build_apt += [w for w in words if not w.startswith("-")]
if sorted(build_apt) != sorted(launcher_build):
    problem("Dockerfile", "build stage apt list differs from ./fraud BUILD_PACKAGES: "
            f"only in Dockerfile {sorted(set(build_apt) - set(launcher_build))}, "
            f"only in launcher {sorted(set(launcher_build) - set(build_apt))}")
for name in ALL:
    if name not in stages:
        problem("Dockerfile", f"no stage for {name}")
        continue
    body = "\n".join(stages[name])
    port = SERVICES.get(name, GATEWAY_PORT)
    if f'ENTRYPOINT ["fraud-{name}"]' not in body:
        problem(f"Dockerfile:{name}", "entrypoint is not the service binary")
    if not re.search(rf"EXPOSE .*\b{port}\b", body):
        problem(f"Dockerfile:{name}", f"does not EXPOSE {port}")
    env = dict(re.findall(r"(FRAUD_[A-Z_]+)=(\S+)", body))
    if env.get("FRAUD_PORT") != str(port):
        problem(f"Dockerfile:{name}", f"FRAUD_PORT={env.get('FRAUD_PORT')} but the port is {port}")
    if name in METRICS and env.get("FRAUD_METRICS_PORT") != str(METRICS[name]):
        problem(f"Dockerfile:{name}", "FRAUD_METRICS_PORT does not match the metrics port")
    check_env(f"Dockerfile:{name}", f"fraud-{name}", env)
    hc = re.search(r"HEALTHCHECK.*CMD (\[.*\])", body)
    if not hc:
        problem(f"Dockerfile:{name}", "no HEALTHCHECK")
    elif str(port) not in hc.group(1) or "fraud-health-probe" not in hc.group(1):
        problem(f"Dockerfile:{name}", f"HEALTHCHECK does not probe port {port} with fraud-health-probe")
    if "COPY --from=build /src/build/bin/fraud-" + name not in body and name != "all":
        problem(f"Dockerfile:{name}", "does not copy its binary from the build stage")
probe = flags_of("fraud-health-probe")

# ---- docker-compose.yml --------------------------------------------------------------------------
compose = yaml.safe_load(read("docker-compose.yml"))
csvcs = compose.get("services", {})
for name in ALL + ["postgres", "prometheus"]:
    if name not in csvcs:
        problem("docker-compose.yml", f"no service {name}")
for name in ALL:
    s = csvcs.get(name)
    if not s:
        continue
    where = f"docker-compose.yml:{name}"
    if s.get("build", {}).get("target") != name or name not in stages:
        problem(where, f"build target {s.get('build', {}).get('target')} is not a Dockerfile stage named {name}")
    env = s.get("environment", {})
    check_env(where, f"fraud-{name}", env)
    port = SERVICES.get(name, GATEWAY_PORT)
    if str(env.get("FRAUD_PORT")) != str(port):
        problem(where, f"FRAUD_PORT is {env.get('FRAUD_PORT')}, expected {port}")
    for key, value in env.items():
        if key.endswith("_TARGET") and key.startswith("FRAUD_"):
            host, p = service_of_target(value)
            if host not in SERVICES or SERVICES[host] != p:
                problem(where, f"{key}={value} does not name a compose service and its gRPC port")
    test = " ".join(s.get("healthcheck", {}).get("test", []))
    if "fraud-health-probe" not in test or str(port) not in test:
        problem(where, f"healthcheck does not probe port {port}")
    for dep, cond in (s.get("depends_on") or {}).items():
        if dep not in csvcs:
            problem(where, f"depends on unknown service {dep}")
        elif cond.get("condition") == "service_healthy" and "healthcheck" not in csvcs[dep]:
            problem(where, f"waits for {dep} to be healthy, but {dep} has no healthcheck")
    if "stop_grace_period" not in s:
        problem(where, "no stop_grace_period (must exceed --grace_period_seconds)")
# No shared disk: a named volume belongs to one service (pgdata to postgres), and a model
# directory, the ML services' cache, is never mounted read-only.
volume_users = {}
for name, s in csvcs.items():
    for v in s.get("volumes", []) or []:
        src, _, rest = str(v).partition(":")
        if not src.startswith((".", "/")):
            volume_users.setdefault(src, []).append(name)
        model_dir = str((s.get("environment") or {}).get("FRAUD_MODEL_DIR", ""))
        if model_dir and rest.startswith(model_dir) and rest.endswith(":ro"):
            problem(f"docker-compose.yml:{name}", f"model cache {model_dir} is mounted read-only")
for vol, users in volume_users.items():
    if len(users) > 1:
        problem("docker-compose.yml", f"volume {vol} is shared by {users}: model versions come "
                                      "from storage, no service needs a shared disk")
if "PGHOST" not in csvcs.get("storage", {}).get("environment", {}):
    problem("docker-compose.yml:storage", "no PGHOST: storage would not find postgres")
if (flags_of("fraud-training") or set()) and "run_once" not in flags_of("fraud-training"):
    problem("docker-compose.yml", "`docker compose run training --run_once` needs fraud-training --run_once")
for key in re.findall(r"^([A-Z_]+)=", read("deploy/compose.env.example"), re.M):
    if f"${{{key}" not in read("docker-compose.yml"):
        problem("deploy/compose.env.example", f"{key} is not used by docker-compose.yml")

# ---- prometheus ----------------------------------------------------------------------------------
prom = yaml.safe_load(read("deploy/prometheus/prometheus.yml"))
scraped = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
expected = {f"{n}:{p}" for n, p in METRICS.items()} | {f"gateway:{GATEWAY_PORT}"}
if scraped != expected:
    problem("prometheus.yml", f"scrape targets {sorted(scraped)} != {sorted(expected)}")

# Rules: valid YAML with a record or alert and an expr each, and every fraud_* series they use is
# one a service exports (promtool is not installed; this catches typos in metric names).
rules = yaml.safe_load(read("deploy/prometheus/rules.yml"))
exported_text = ""
for base, _, files in os.walk(os.path.join(ROOT, "services")):
    for name in files:
        if name.endswith((".cc", ".h")):
            with open(os.path.join(base, name)) as f:
                exported_text += f.read()
alerts = set()
for group in rules.get("groups", []):
    for rule in group.get("rules", []):
        if not (rule.get("record") or rule.get("alert")) or not rule.get("expr"):
            problem("rules.yml", f"rule without record/alert or expr: {rule}")
            continue
        if rule.get("alert"):
            alerts.add(rule["alert"])
        for series in re.findall(r"\b(fraud_[a-z_]+)", str(rule["expr"])):
            base = re.sub(r"_(bucket|sum|count)$", "", series)
            # Per-service families are named "fraud_" + service + "_rpc_..." (server_runner.cc).
            per_service = re.sub(r"^fraud_[a-z]+_", "_", base) + '"'
            if f'"{base}"' not in exported_text and per_service not in exported_text:
                problem("rules.yml", f"{rule.get('alert') or rule.get('record')}: no service exports {series}")
for needed in ("FraudRealisedPrecisionDrop", "FraudFeatureDrift"):
    if needed not in alerts:
        problem("rules.yml", f"alert {needed} missing")

# ---- render.yaml ---------------------------------------------------------------------------------
# Render facts the blueprint must respect: only `web` services get a public URL and an HTTP
# health check; private services (`pserv`) are reached at the host:port that
# `fromService: {type: pserv, property: hostport}` resolves to (the port in PORT); a disk belongs
# to one service and rules out zero-downtime deploys and scaling. Model versions live in the
# registry (storage), so no service needs a disk: a model directory is a cache in /tmp.
RENDER_PLAN_MB = {"free": 512, "starter": 512, "standard": 2048, "pro": 4096,
                  "pro plus": 8192, "pro max": 16384, "pro ultra": 32768}
RENDER_HEADROOM = 0.8  # a plan's memory must cover the measured peak RSS / 0.8
FROM_SERVICE_PROPERTIES = {"host", "port", "hostport"}
render_text = read("deploy/render/render.yaml")
render = yaml.safe_load(render_text)
rservices = {s["name"]: s for s in render["services"]}
groups = {g["name"]: {e["key"]: e for e in g.get("envVars", [])} for g in render.get("envVarGroups", [])}
# The measured-RSS table in render.yaml's header comment:
#   "#| fraud-x | idle | upload | training | plan |"
rss_table = {}
for row in re.findall(r"^#\|\s*(fraud-[a-z]+)\s*\|(.*)$", render_text, re.M):
    cells = [c.strip() for c in row[1].strip().strip("|").split("|")]
    if len(cells) != 4 or not all(c.isdigit() for c in cells[:3]):
        problem("render.yaml",
                f"measured RSS row for {row[0]} is not 'idle | upload | training | plan'")
        continue
    rss_table[row[0]] = ([int(c) for c in cells[:3]], cells[3])


def render_binary(s):
    return s.get("dockerCommand", "").split()[0] if s.get("dockerCommand") else ""


def render_env(where, s):
    """The service's variables, groups included: key -> envVars entry."""
    env = {}
    for e in s.get("envVars", []):
        if "fromGroup" in e:
            if e["fromGroup"] not in groups:
                problem(where, f"envVars refer to unknown group {e['fromGroup']}")
            env.update(groups.get(e["fromGroup"], {}))
        else:
            env[e["key"]] = e
    return env


def gateway_serves(path):
    """Starts the built gateway on a free loopback port (no backends) and asks whether it routes
    GET path: the path must be in its OpenAPI document and answer 200. None if it cannot run."""
    binary = os.path.join(BIN, "fraud-gateway")
    if not os.access(binary, os.X_OK):
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    proc = subprocess.Popen([binary, "--host=127.0.0.1", f"--port={port}", "--log_level=error",
                             "--rpc_timeout_seconds=1"] +
                            [f"--{n}_target=127.0.0.1:1" for n in SERVICES],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"{base}/api/v1/openapi.json", timeout=5) as r:
                    spec = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.1)
        else:
            return None
        if "get" not in spec.get("paths", {}).get(path, {}):
            return False
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.status == 200
    except OSError:
        return False
    finally:
        proc.terminate()
        proc.wait(timeout=20)


for s in render["services"]:
    where = f"render.yaml:{s['name']}"
    binary = render_binary(s)
    name = binary.replace("fraud-", "")
    if name not in ALL:
        problem(where, f"dockerCommand {binary!r} is not a service binary")
        continue
    if s.get("dockerfilePath") != "./deploy/docker/Dockerfile":
        problem(where, "dockerfilePath is not ./deploy/docker/Dockerfile")
    want_type = "web" if name == "gateway" else "pserv"
    if s.get("type") != want_type:
        problem(where, f"type is {s.get('type')}, expected {want_type} (gRPC services are private)")
    if "healthCheckPath" in s and s.get("type") != "web":
        problem(where, "healthCheckPath is for web services only")
    if s.get("type") == "pserv" and s.get("plan") == "free":
        problem(where, "private services have no free plan")
    env = render_env(where, s)
    check_env(where, binary, env)
    # Service-to-service auth: every service sends the shared token, storage requires it.
    token = env.get("FRAUD_SERVICE_TOKEN", {})
    if not (token.get("generateValue") or token.get("sync") is False):
        problem(where, "FRAUD_SERVICE_TOKEN must come from a generated or secret value (env group)")
    port = env.get("FRAUD_PORT", {}).get("value")
    if name in SERVICES and port != str(SERVICES[name]):
        problem(where, "FRAUD_PORT does not match the service's port")
    if env.get("PORT", {}).get("value") != port:
        problem(where, f"PORT ({env.get('PORT', {}).get('value')}) is not FRAUD_PORT ({port}): "
                       "Render routes to the port in PORT, and callers must get the gRPC port")
    # The same downstream services as in docker-compose.yml (inference and training reach
    # storage for model artifacts now that no disk is shared).
    targets = {k for k in env if re.fullmatch(r"FRAUD_[A-Z]+_TARGET", k)}
    compose_targets = {k for k in csvcs.get(name, {}).get("environment", {})
                       if re.fullmatch(r"FRAUD_[A-Z]+_TARGET", k)}
    if targets != compose_targets:
        problem(where, f"targets {sorted(targets)} differ from docker-compose.yml's "
                       f"{sorted(compose_targets)}")
    for e in env.values():
        ref = e.get("fromService")
        if not ref:
            continue
        target = rservices.get(ref.get("name"))
        if target is None:
            problem(where, f"{e['key']} refers to unknown service {ref.get('name')}")
            continue
        if ref.get("type") != target.get("type"):
            problem(where, f"{e['key']} refers to {ref['name']} as type {ref.get('type')}, "
                           f"but it is {target.get('type')}")
        if ref.get("property") not in FROM_SERVICE_PROPERTIES and "envVarKey" not in ref:
            problem(where, f"{e['key']}: fromService property {ref.get('property')!r} is not one "
                           f"of {sorted(FROM_SERVICE_PROPERTIES)}")
        m = re.fullmatch(r"FRAUD_([A-Z]+)_TARGET", e["key"])
        if m:
            if ref.get("property") != "hostport":
                problem(where, f"{e['key']} needs property hostport (a gRPC target is host:port)")
            if render_binary(target) != f"fraud-{m.group(1).lower()}":
                problem(where, f"{e['key']} points at {ref['name']}, which runs "
                               f"{render_binary(target)!r}")
    # No shared disk: model directories are caches; a disk, if any, only on inference and then
    # mounted where its cache is.
    disk = s.get("disk")
    model_dir = env.get("FRAUD_MODEL_DIR", {}).get("value")
    if disk and name != "inference":
        problem(where, f"has a disk ({disk.get('mountPath')}): only inference may keep its model "
                       "cache on one; training's model directory is scratch space")
    elif disk and disk.get("mountPath") != model_dir:
        problem(where,
                f"disk mounted at {disk.get('mountPath')}, not at FRAUD_MODEL_DIR {model_dir}")
    if disk and s.get("numInstances", 1) > 1:
        problem(where, "a service with a disk cannot run more than one instance")
    if name in ("inference", "training"):
        if not model_dir:
            problem(where, "no FRAUD_MODEL_DIR: the binary's default is relative to a read-only /")
        elif not disk and not model_dir.startswith("/tmp/"):
            problem(where, f"FRAUD_MODEL_DIR {model_dir} is neither on a disk nor under /tmp "
                           "(the non-root user cannot write elsewhere on the ephemeral filesystem)")
    if name == "gateway":
        path = s.get("healthCheckPath")
        if not path:
            problem(where, "the web service has no healthCheckPath")
        else:
            served = gateway_serves(path)
            if served is None:
                problem(where, "could not start fraud-gateway to check healthCheckPath")
            elif not served:
                problem(where, f"healthCheckPath {path} is not a GET route of the gateway "
                               "that answers 200 without backends")
    if name == "storage" and env.get("FRAUD_DATABASE_URL", {}).get("sync") is not False:
        problem(where, "FRAUD_DATABASE_URL must be a secret (sync: false)")
    # Memory: the plan must hold the measured peak with headroom.
    plan = s.get("plan", "starter")
    if plan not in RENDER_PLAN_MB:
        problem(where, f"unknown plan {plan!r}")
    elif s["name"] not in rss_table:
        problem(where, "no measured RSS row in render.yaml's memory table")
    else:
        measured, table_plan = rss_table[s["name"]]
        need = max(measured) / RENDER_HEADROOM
        if table_plan != plan:
            problem(where, f"plan {plan} differs from the memory table's {table_plan}")
        if RENDER_PLAN_MB[plan] < need:
            problem(where, f"plan {plan} has {RENDER_PLAN_MB[plan]} MB, the measured peak "
                           f"{max(measured)} MiB needs >= {need:.0f} MB")
if {f"fraud-{n}" for n in ALL} - set(rservices):
    missing = sorted({f"fraud-{n}" for n in ALL} - set(rservices))
    problem("render.yaml", f"missing services {missing}")
for row in set(rss_table) - set(rservices):
    problem("render.yaml", f"memory table lists {row}, which is not a service")

# ---- Kubernetes ----------------------------------------------------------------------------------
docs = []
kdir = os.path.join(ROOT, "deploy/k8s")
for fn in sorted(os.listdir(kdir)):
    if fn.endswith(".yaml"):
        docs += [(fn, d) for d in yaml.safe_load_all(read(f"deploy/k8s/{fn}")) if d]
by_kind = {}
for fn, d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = (fn, d)
config = by_kind.get("ConfigMap", {}).get("fraud-config", (None, {"data": {}}))[1]["data"]
all_flags = set()
for n in ALL:
    all_flags |= flags_of(f"fraud-{n}") or set()
for key, value in config.items():
    flag = env_flag(key)
    if flag and all_flags and flag not in all_flags:
        problem("k8s ConfigMap", f"{key} is a flag of no service")
    if key.endswith("_TARGET"):
        host, p = service_of_target(value)
        svc = by_kind.get("Service", {}).get(host)
        if not svc or p not in [x["port"] for x in svc[1]["spec"]["ports"]]:
            problem("k8s ConfigMap", f"{key}={value} is not a Service and port")
for n in ALL:
    dep = by_kind.get("Deployment", {}).get(f"fraud-{n}")
    if not dep:
        problem("k8s", f"no Deployment fraud-{n}")
        continue
    fn, d = dep
    c = d["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c.get("env", [])}
    check_env(f"k8s {fn}", f"fraud-{n}", env)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    port = SERVICES.get(n, GATEWAY_PORT)
    if port not in ports.values():
        problem(f"k8s {fn}", f"container does not expose {port}")
    if env.get("FRAUD_PORT", {}).get("value") != str(port):
        problem(f"k8s {fn}", "FRAUD_PORT does not match the container port")
    rp = c.get("readinessProbe", {})
    probed = rp.get("grpc", {}).get("port") or rp.get("httpGet", {}).get("port")
    if probed != port:
        problem(f"k8s {fn}", f"readiness probe checks {probed}, not {port}")
    if "requests" not in c.get("resources", {}):
        problem(f"k8s {fn}", "no resource requests")
    limit = str(c.get("resources", {}).get("limits", {}).get("memory", ""))
    m = re.fullmatch(r"(\d+)(Mi|Gi)", limit)
    measured = rss_table.get(f"fraud-{n}", ([0], ""))[0]
    if not m:
        problem(f"k8s {fn}", f"memory limit {limit!r} is not in Mi or Gi")
    elif int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1) < max(measured) / RENDER_HEADROOM:
        problem(f"k8s {fn}", f"memory limit {limit} is below the measured peak {max(measured)} MiB "
                             "(render.yaml's table) / 0.8")
    if f"fraud-{n}" not in by_kind.get("Service", {}):
        problem("k8s", f"no Service fraud-{n}")
for name, (fn, d) in by_kind.get("HorizontalPodAutoscaler", {}).items():
    target = d["spec"]["scaleTargetRef"]["name"]
    if target not in by_kind.get("Deployment", {}):
        problem(f"k8s {fn}", f"HPA {name} scales unknown Deployment {target}")
hpa_targets = {d["spec"]["scaleTargetRef"]["name"] for _, d in by_kind.get("HorizontalPodAutoscaler", {}).values()}
for n in ("ingest", "inference", "gateway"):
    if f"fraud-{n}" not in hpa_targets:
        problem("k8s", f"no HorizontalPodAutoscaler for fraud-{n}")
pdbs = [d for _, d in by_kind.get("PodDisruptionBudget", {}).values()]
if not any(p["spec"]["selector"]["matchLabels"].get("app") == "fraud-inference" for p in pdbs):
    problem("k8s", "no PodDisruptionBudget for inference")
# Model artifacts live in the registry: no ReadWriteMany claim, every model directory is a
# per-pod emptyDir cache (inference) or scratch space (training).
for name, (fn, d) in by_kind.get("PersistentVolumeClaim", {}).items():
    if "ReadWriteMany" in d.get("spec", {}).get("accessModes", []):
        problem(f"k8s {fn}", f"PersistentVolumeClaim {name} is ReadWriteMany: nothing may need a "
                             "shared volume (model versions come from storage)")


def pod_spec(d):
    if d["kind"] == "CronJob":
        return d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return d["spec"]["template"]["spec"]


for kind in ("Deployment", "CronJob", "Job"):
    for name, (fn, d) in by_kind.get(kind, {}).items():
        spec = pod_spec(d)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for v in volumes.values():
            claim = v.get("persistentVolumeClaim", {}).get("claimName")
            if claim and claim not in by_kind.get("PersistentVolumeClaim", {}):
                problem(f"k8s {fn}", f"volume {v['name']} uses unknown claim {claim}")
        c = spec["containers"][0]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        binary = c.get("image", "").split(":")[0]
        if binary not in ("fraud-inference", "fraud-training"):
            continue
        uses_config = any(r.get("configMapRef", {}).get("name") == "fraud-config"
                          for r in c.get("envFrom", []))
        model_dir = env.get("FRAUD_MODEL_DIR") or (
            config.get("FRAUD_MODEL_DIR") if uses_config else None)
        if not model_dir:
            problem(f"k8s {fn}", f"{name} sets no FRAUD_MODEL_DIR")
            continue
        mount = next((m for m in c.get("volumeMounts", []) if m["mountPath"] == model_dir), None)
        if mount is None:
            problem(f"k8s {fn}", f"{name}: nothing is mounted at FRAUD_MODEL_DIR {model_dir} "
                                 "(the image's root filesystem is not the place for the cache)")
        elif "emptyDir" not in volumes.get(mount["name"], {}):
            problem(f"k8s {fn}", f"{name}: FRAUD_MODEL_DIR {model_dir} is not an emptyDir "
                                 "(it is a per-pod cache; versions come from storage)")
        elif mount.get("readOnly"):
            problem(f"k8s {fn}", f"{name}: the model cache at {model_dir} is read-only")
for name, (fn, d) in by_kind.get("CronJob", {}).items():
    c = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    flags = flags_of("fraud-training") or set()
    for arg in c.get("args", []):
        m = re.match(r"--([a-z_]+)", arg)
        if m and flags and m.group(1) not in flags:
            problem(f"k8s {fn}", f"{arg} is not a fraud-training flag")

# kubectl's own view of the manifests (decoding, apiVersion/kind mapping), offline.
KUBECTL = os.environ.get("KUBECTL") or shutil.which("kubectl")
if KUBECTL:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import kube_dry_run  # noqa: E402 (beside this script)
    rc, out = kube_dry_run.dry_run(KUBECTL, [kdir])
    created = [line for line in out.splitlines() if line.endswith("(dry run)")]
    if rc != 0 or len(created) != len(docs):
        problem("k8s", f"kubectl apply --dry-run=client --validate=false failed (exit {rc}, "
                       f"{len(created)} of {len(docs)} objects):\n{out.strip()}")
    else:
        print(f"kubectl apply --dry-run=client --validate=false: {len(created)} objects OK")
else:
    print("SKIPPED kubectl dry run: no kubectl on PATH (apt-get install kubernetes-client; "
          "./fraud installs it)")

if problems:
    print("\n".join(problems))
    print(f"{len(problems)} deployment inconsistencies")
    sys.exit(1)
print("deployment files consistent with the binaries and each other")
