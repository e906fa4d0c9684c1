#!/usr/bin/python3
"""Deployment files cannot rot: checks docker-compose.yml, deploy/docker/Dockerfile,
deploy/render/render.yaml, deploy/k8s/*.yaml, deploy/prometheus/prometheus.yml and the ./fraud
launcher against each other and against the flags the built binaries really accept
(`<binary> --helpfull`). There is no Docker engine here, so this is the check that runs.

Usage: check_deploy.py ROOT BIN_DIR   (exit 0 = consistent; otherwise one line per problem)
"""
import os
import re
import subprocess
import sys

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

# ---- render.yaml ---------------------------------------------------------------------------------
render = yaml.safe_load(read("deploy/render/render.yaml"))
rnames = {s["name"] for s in render["services"]}
groups = {g["name"]: {e["key"]: e for e in g.get("envVars", [])} for g in render.get("envVarGroups", [])}
for s in render["services"]:
    where = f"render.yaml:{s['name']}"
    binary = s.get("dockerCommand", "").split()[0] if s.get("dockerCommand") else ""
    name = binary.replace("fraud-", "")
    if name not in ALL:
        problem(where, f"dockerCommand {binary!r} is not a service binary")
        continue
    if s.get("dockerfilePath") != "./deploy/docker/Dockerfile":
        problem(where, "dockerfilePath is not ./deploy/docker/Dockerfile")
    env = {}
    for e in s.get("envVars", []):
        if "fromGroup" in e:
            if e["fromGroup"] not in groups:
                problem(where, f"envVars refer to unknown group {e['fromGroup']}")
            env.update(groups.get(e["fromGroup"], {}))
        else:
            env[e["key"]] = e
    check_env(where, binary, env)
    # Service-to-service auth: every service sends the shared token, storage requires it.
    token = env.get("FRAUD_SERVICE_TOKEN", {})
    if not (token.get("generateValue") or token.get("sync") is False):
        problem(where, "FRAUD_SERVICE_TOKEN must come from a generated or secret value (env group)")
    if name in SERVICES and env.get("FRAUD_PORT", {}).get("value") != str(SERVICES[name]):
        problem(where, "FRAUD_PORT does not match the service's port")
    for e in env.values():
        ref = e.get("fromService")
        if ref and ref["name"] not in rnames:
            problem(where, f"{e['key']} refers to unknown service {ref['name']}")
    if name == "gateway" and s.get("healthCheckPath") != "/healthz":
        problem(where, "gateway healthCheckPath is not /healthz")
    if name == "storage" and env.get("FRAUD_DATABASE_URL", {}).get("sync") is not False:
        problem(where, "FRAUD_DATABASE_URL must be a secret (sync: false)")
if {f"fraud-{n}" for n in ALL} - rnames:
    problem("render.yaml", f"missing services {sorted({f'fraud-{n}' for n in ALL} - rnames)}")

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
for name, (fn, d) in by_kind.get("CronJob", {}).items():
    c = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    flags = flags_of("fraud-training") or set()
    for arg in c.get("args", []):
        m = re.match(r"--([a-z_]+)", arg)
        if m and flags and m.group(1) not in flags:
            problem(f"k8s {fn}", f"{arg} is not a fraud-training flag")

if problems:
    print("\n".join(problems))
    print(f"{len(problems)} deployment inconsistencies")
    sys.exit(1)
print("deployment files consistent with the binaries and each other")
