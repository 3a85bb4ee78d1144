#!/usr/bin/env python3
"""Offline checks of deploy/Dockerfile, the Helm chart and deploy/k8s (called by deploy/check.sh).

No Docker engine and no helm binary here, so this checks what can be checked statically:
  * Dockerfile: every COPY source exists and survives .dockerignore, the restore layer has every
    project file and build input the published projects need, base images / user / exec forms.
  * docker-compose.yml: the conventions docker-compose config cannot see (read-only, user, exec-form
    healthcheck, shared socket volume, service_healthy ordering).
  * Helm chart: Chart.yaml, values.yaml vs values.schema.json (and bad values files that must be
    rejected), helm-docs comments, and the Go templates: {{ }} balance, block nesting, include
    targets, every .Values path exists (and every value is used), no root-context use where the dot
    is rebound.
  * deploy/k8s: valid Kubernetes objects, restricted security, gRPC probes on 5001, and consistency
    with what the chart renders for the sidecar example with default values.
Prints one line per check; exit status = number of failed checks (capped at 100).
"""
from __future__ import annotations

import copy
import glob
import json
import os
import re
import shlex
import sys
import xml.etree.ElementTree as ET

import jsonschema
import yaml

ROOT = CHART = DOCKERFILE = TESTDATA = K8S_DIR = ""


def set_root(root: str) -> None:
    """Point the checks at a repository tree (deploy/check_selftest.py uses copies with defects)."""
    global ROOT, CHART, DOCKERFILE, TESTDATA, K8S_DIR
    ROOT = os.path.abspath(root)
    CHART = os.path.join(ROOT, "helm", "pmem-service")
    DOCKERFILE = os.path.join(ROOT, "deploy", "Dockerfile")
    TESTDATA = os.path.join(ROOT, "deploy", "testdata")
    K8S_DIR = os.path.join(ROOT, "deploy", "k8s")


set_root(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
GRPC_PORT = 5001
APP_UID = 1654

failures = 0


def report(name: str, problems: list[str]) -> None:
    global failures
    if problems:
        failures += 1
        print(f"FAIL {name}")
        for p in problems:
            print(f"       - {p}")
    else:
        print(f"ok   {name}")


def rel(path: str) -> str:
    return os.path.relpath(path, ROOT)


# libyaml's loader when present (Debian's python3-yaml has it): the self-test parses a lot.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=LOADER)


def load_yaml_all(path: str) -> list:
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.load_all(f, Loader=LOADER) if d is not None]


# =============================================================================================
# .dockerignore (moby patternmatcher semantics, enough for our patterns)
# =============================================================================================
def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    path = os.path.join(ROOT, ".dockerignore")
    pats = []
    if not os.path.exists(path):
        return pats
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        if neg:
            line = line[1:].strip()
        line = os.path.normpath(line.lstrip("/")).replace(os.sep, "/")
        rx = ""
        i = 0
        while i < len(line):
            if line.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif line.startswith("**", i):
                rx += ".*"
                i += 2
            elif line[i] == "*":
                rx += "[^/]*"
                i += 1
            elif line[i] == "?":
                rx += "[^/]"
                i += 1
            else:
                rx += re.escape(line[i])
                i += 1
        pats.append((neg, re.compile(rx + r"\Z")))
    return pats


def dockerignored(relpath: str, pats) -> bool:
    """True when relpath (or a parent directory of it) is excluded from the build context."""
    parts = relpath.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for neg, rx in pats:
        if any(rx.match(c) for c in candidates):
            excluded = not neg
    return excluded


def context_files(src: str, pats) -> list[str]:
    """Files under a COPY source (file, directory or glob) that reach the build context."""
    out = []
    for match in glob.glob(os.path.join(ROOT, src)):
        if os.path.isdir(match):
            for dirpath, _, files in os.walk(match):
                for fn in files:
                    r = rel(os.path.join(dirpath, fn)).replace(os.sep, "/")
                    if not dockerignored(r, pats):
                        out.append(r)
        else:
            r = rel(match).replace(os.sep, "/")
            if not dockerignored(r, pats):
                out.append(r)
    return out


# =============================================================================================
# Dockerfile
# =============================================================================================
def dockerfile_instructions() -> list[tuple[str, str]]:
    text = open(DOCKERFILE, encoding="utf-8").read()
    instrs, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue  # comment lines inside a continued instruction
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        word, _, rest = cur.partition(" ")
        instrs.append((word.upper(), rest.strip()))
        cur = ""
    return instrs


def split_args(rest: str) -> list[str]:
    if rest.startswith("["):
        return json.loads(rest)
    return shlex.split(rest)


def csproj_closure(start: list[str]) -> tuple[list[str], list[str]]:
    """ProjectReference closure of the given csproj paths (repo-relative) and the files outside
    each project's directory that those projects include (e.g. ../../proto/**)."""
    seen, external, todo = [], [], list(start)
    while todo:
        p = os.path.normpath(todo.pop())
        if p in seen:
            continue
        seen.append(p)
        full = os.path.join(ROOT, p)
        if not os.path.exists(full):
            continue
        d = os.path.dirname(p)
        for el in ET.parse(full).getroot().iter():
            inc = el.get("Include")
            if not inc or "$(" in inc:
                continue
            target = os.path.normpath(os.path.join(d, inc.replace("\\", "/")))
            if el.tag.endswith("ProjectReference"):
                todo.append(target)
            elif inc.startswith(".."):
                external.append(target)
    return seen, external


def check_dockerfile() -> None:
    instrs = dockerfile_instructions()
    pats = dockerignore_patterns()

    # Stages and COPY sources.
    stages: list[dict] = []
    problems = []
    copies = []  # (stage index, sources, dest, position)
    for pos, (word, rest) in enumerate(instrs):
        if word == "FROM":
            toks = rest.split()
            name = toks[toks.index("AS") + 1] if "AS" in toks else (toks[toks.index("as") + 1] if "as" in toks else "")
            image = [t for t in toks if not t.startswith("--")][0]
            stages.append({"name": name, "image": image, "flags": rest, "instrs": []})
        elif stages:
            stages[-1]["instrs"].append((word, rest, pos))
        if word in ("COPY", "ADD"):
            args = split_args(rest) if rest.startswith("[") else shlex.split(rest)
            flags = [a for a in args if a.startswith("--")]
            paths = [a for a in args if not a.startswith("--")]
            if any(f.startswith("--from") for f in flags):
                continue
            copies.append((len(stages) - 1, paths[:-1], paths[-1], pos))
    for _, srcs, _, _ in copies:
        for s in srcs:
            if not glob.glob(os.path.join(ROOT, s)):
                problems.append(f"COPY source {s} does not exist")
            elif not context_files(s, pats):
                problems.append(f"COPY source {s} is excluded by .dockerignore")
    n = sum(len(c[1]) for c in copies)
    report(f"Dockerfile: all {n} COPY sources exist and are in the build context (.dockerignore)", problems)

    # The restore layer: copied before the first `dotnet restore`.
    problems = []
    restore_pos = next((pos for w, r, pos in ((w, r, i) for i, (w, r) in enumerate(instrs))
                        if w == "RUN" and "dotnet restore" in r), None)
    runs = " ".join(r for w, r in instrs if w == "RUN")
    restored = re.findall(r"dotnet restore\s+(\S+\.csproj)", runs)
    published = re.findall(r"dotnet publish\s+(\S+\.csproj)", runs)
    if restore_pos is None or not restored:
        problems.append("no `dotnet restore <project>` RUN")
    for p in published:
        if p not in restored:
            problems.append(f"{p} is published but not restored (publish uses --no-restore)")
    if "--no-restore" not in runs:
        problems.append("dotnet publish without --no-restore (restore layer not reused)")
    early = set()
    for _, srcs, dest, pos in copies:
        if restore_pos is not None and pos < restore_pos:
            for s in srcs:
                for f in context_files(s, pats):
                    early.add(f)
    closure, external = csproj_closure(published or restored)
    for p in closure:
        if p.replace(os.sep, "/") not in early:
            problems.append(f"{p} (ProjectReference closure) is not copied before dotnet restore")
    for e in external:
        e = e.replace(os.sep, "/")
        base = e.split("*")[0].rstrip("/")
        if not any(f == base or f.startswith(base + "/") or (("*" in e) and f.startswith(base)) for f in early):
            problems.append(f"{e} (included by a published project) is not copied before dotnet restore")
    for f in ("Directory.Build.props", "Directory.Build.targets", "Directory.Packages.props",
              "global.json", "NuGet.config", "nuget.config", ".editorconfig"):
        if os.path.exists(os.path.join(ROOT, f)) and f not in early:
            problems.append(f"{f} exists but is not copied before dotnet restore")
    src_projects = sorted(rel(p).replace(os.sep, "/") for p in glob.glob(os.path.join(ROOT, "src", "*", "*.csproj")))
    for p in src_projects:
        if p not in early:
            problems.append(f"{p} (a src/ project) is not copied before dotnet restore")
    report(f"Dockerfile: restore layer has the {len(closure)}-project closure of {', '.join(published)} "
           f"and the build plumbing", problems)

    # Stages, images, user, exec forms.
    problems = []
    build = stages[0] if stages else None
    if not build or "--platform=$BUILDPLATFORM" not in build["flags"] or not re.search(r"dotnet/sdk:\S*10\.0\S*-noble|dotnet/sdk:\$\{DOTNET_VERSION\}-noble", build["image"]):
        problems.append("first stage must be FROM --platform=$BUILDPLATFORM mcr.microsoft.com/dotnet/sdk:10.0-noble")
    if build and not any(w == "ARG" and r.startswith("TARGETARCH") for w, r, _ in build["instrs"]):
        problems.append("build stage lacks ARG TARGETARCH")
    if not re.search(r"dotnet publish .*-a \"?\$TARGETARCH", runs):
        problems.append("dotnet publish is not cross-publishing with -a $TARGETARCH")
    final = {s["name"]: s for s in stages[1:]}
    for name, base in (("service", "aspnet"), ("client", "runtime")):
        st = final.get(name)
        if not st:
            problems.append(f"no stage '{name}'")
            continue
        if not re.search(rf"dotnet/{base}:\S*-noble-chiseled", st["image"]):
            problems.append(f"stage {name} is not based on {base}:10.0-noble-chiseled ({st['image']})")
        words = {w: r for w, r, _ in st["instrs"]}
        user = words.get("USER", "")
        if user not in ("$APP_UID", "${APP_UID}", str(APP_UID), "app"):
            problems.append(f"stage {name}: USER is {user!r}, expected $APP_UID")
        ep = words.get("ENTRYPOINT", "")
        if not ep.startswith("["):
            problems.append(f"stage {name}: ENTRYPOINT is not in exec form")
    if stages and stages[-1]["name"] != "service":
        problems.append("the last (default) stage should be the service")
    svc = final.get("service")
    if svc:
        words = {w: r for w, r, _ in svc["instrs"]}
        if split_args(words.get("ENTRYPOINT", "[]")) != ["./PmemService"]:
            problems.append('service ENTRYPOINT is not ["./PmemService"]')
        if str(GRPC_PORT) not in words.get("EXPOSE", ""):
            problems.append(f"service does not EXPOSE {GRPC_PORT}")
        hc = words.get("HEALTHCHECK", "")
        m = re.search(r"CMD\s+(\[.*\])", hc)
        if not m:
            problems.append("service HEALTHCHECK is not CMD [exec form]")
        else:
            cmd = json.loads(m.group(1))
            if not (cmd[0].endswith("PmemService") and cmd[1] == "health"):
                problems.append(f"HEALTHCHECK does not run the health subcommand: {cmd}")
        env = words.get("ENV", "")
        for key in ("PmemService__PoolPath=/pmem", "PmemService__UnixSocketPath=/run/pmem/pmem.sock",
                    f"PmemService__TcpEndpoint=0.0.0.0:{GRPC_PORT}"):
            if key not in env:
                problems.append(f"service ENV lacks {key}")
    report("Dockerfile: sdk:10.0-noble build for $TARGETARCH, chiseled service/client stages, "
           "USER $APP_UID, exec-form ENTRYPOINT/HEALTHCHECK, EXPOSE 5001", problems)


# =============================================================================================
# docker-compose.yml conventions
# =============================================================================================
def check_compose() -> None:
    doc = load_yaml(os.path.join(ROOT, "docker-compose.yml"))
    problems = []
    services = doc.get("services", {})
    svc = services.get("pmem-service")
    if not svc:
        report("docker-compose.yml: pmem-service conventions", ["no service pmem-service"])
        return
    if svc.get("build", {}).get("dockerfile") != "deploy/Dockerfile":
        problems.append("pmem-service is not built from deploy/Dockerfile")
    if svc.get("read_only") is not True:
        problems.append("pmem-service is not read_only")
    if not any(str(t).split(":")[0] == "/tmp" for t in svc.get("tmpfs", [])):
        problems.append("no tmpfs /tmp")
    if not re.match(r"^\$\{PMEM_UID:-1654\}:\$\{PMEM_GID:-1654\}$|^1654(:1654)?$", str(svc.get("user", ""))):
        problems.append(f"user is {svc.get('user')!r}, expected 1654 (overridable)")
    vols = [str(v) for v in svc.get("volumes", [])]
    if not any(v.endswith(":/pmem") and "PMEM_DIR" in v for v in vols):
        problems.append("the PMEM directory is not a ${PMEM_DIR:-...}:/pmem bind mount")
    if "pmem-sock:/run/pmem" not in vols:
        problems.append("the socket volume pmem-sock:/run/pmem is not mounted")
    if not any(str(p).startswith("127.0.0.1:") and str(p).endswith(f":{GRPC_PORT}") for p in svc.get("ports", [])):
        problems.append(f"TCP {GRPC_PORT} is not published on 127.0.0.1")
    test = svc.get("healthcheck", {}).get("test", [])
    if not (isinstance(test, list) and test[:1] == ["CMD"] and "health" in test):
        problems.append(f"healthcheck is not exec form with the health subcommand: {test}")
    env = svc.get("environment", {})
    for k, v in (("PmemService__PoolPath", "/pmem"), ("PmemService__UnixSocketPath", "/run/pmem/pmem.sock"),
                 ("PmemService__TcpEndpoint", f"0.0.0.0:{GRPC_PORT}")):
        if env.get(k) != v:
            problems.append(f"environment {k} is {env.get(k)!r}, expected {v!r}")
    clients = {n: s for n, s in services.items() if n != "pmem-service"}
    cmds = " ".join(" ".join(map(str, s.get("command", []))) for s in clients.values())
    for verb in ("map", "write", "read"):
        if not re.search(rf"(^|\s){verb}\s", cmds):
            problems.append(f"no client runs pmemctl {verb}")
    for n, s in clients.items():
        if "pmem-sock:/run/pmem" not in [str(v) for v in s.get("volumes", [])]:
            problems.append(f"client {n} does not mount the socket volume")
        if "./pmemctl" not in s.get("entrypoint", []) and "pmemctl" not in str(s.get("entrypoint")):
            problems.append(f"client {n} does not run pmemctl")
    first = [s for s in clients.values() if s.get("depends_on", {}).get("pmem-service", {}).get("condition") == "service_healthy"]
    if not first:
        problems.append("no client depends_on pmem-service with condition service_healthy")
    sock = doc.get("volumes", {}).get("pmem-sock")
    if sock is None:
        problems.append("named volume pmem-sock is not declared")
    report("docker-compose.yml: read-only non-root service, /pmem bind mount, shared socket volume, "
           "exec-form healthcheck, pmemctl client after service_healthy", problems)


# =============================================================================================
# Helm chart
# =============================================================================================
def deep_merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(over)


def check_chart_metadata() -> None:
    problems = []
    chart = load_yaml(os.path.join(CHART, "Chart.yaml"))
    if chart.get("apiVersion") != "v2":
        problems.append("apiVersion is not v2")
    if chart.get("name") != os.path.basename(CHART):
        problems.append("name differs from the chart directory")
    if chart.get("type") != "application":
        problems.append("type is not application")
    if not re.match(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$", str(chart.get("version", ""))):
        problems.append(f"version {chart.get('version')!r} is not SemVer")
    if not isinstance(chart.get("appVersion"), str) or not chart["appVersion"]:
        problems.append("appVersion missing or not a string")
    if chart.get("kubeVersion") != ">=1.29.0-0":
        problems.append("kubeVersion is not >=1.29.0-0 (native sidecars)")
    for f in ("values.yaml", "values.schema.json", "templates/_helpers.tpl", "templates/NOTES.txt"):
        if not os.path.exists(os.path.join(CHART, f)):
            problems.append(f"{f} missing")
    if not glob.glob(os.path.join(CHART, "templates", "tests", "*.yaml")):
        problems.append("no helm test under templates/tests/")
    report(f"helm: Chart.yaml (v2 application {chart.get('version')} / app {chart.get('appVersion')}, kubeVersion) "
           "and chart layout", problems)


def schema_validator():
    schema = json.load(open(os.path.join(CHART, "values.schema.json"), encoding="utf-8"))
    return schema, jsonschema.Draft7Validator(schema)


def check_values_schema() -> None:
    values = load_yaml(os.path.join(CHART, "values.yaml"))
    schema, validator = schema_validator()
    problems = []
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        problems.append(f"values.schema.json is not a valid draft-07 schema: {e.message}")
    if "draft-07" not in schema.get("$schema", ""):
        problems.append("$schema is not draft-07")
    errs = sorted(validator.iter_errors(values), key=lambda e: list(e.path))
    problems += [f"values.yaml: {'.'.join(map(str, e.path))}: {e.message}" for e in errs]

    # Strictness: additionalProperties false at the top and in the key objects; enums.
    def sub(path):
        node = schema
        for k in path:
            node = node.get("properties", {}).get(k, {})
        return node
    for path in ([], ["image"], ["config"], ["pmem"], ["pmem", "volume"], ["socket"], ["service"], ["probes"],
                 ["sidecarExample"], ["serviceAccount"], ["pmem", "volume", "localPV"]):
        if sub(path).get("additionalProperties") is not False:
            problems.append(f"schema {'.'.join(path) or '(top)'} allows unknown keys")
    if set(sub(["mode"]).get("enum", [])) != {"sidecarExample", "daemonset"}:
        problems.append("schema mode enum is not {sidecarExample, daemonset}")
    if set(sub(["pmem", "volume", "type"]).get("enum", [])) != {"pvc", "csiEphemeral", "hostPath", "localPV"}:
        problems.append("schema pmem.volume.type enum is not {pvc, csiEphemeral, hostPath, localPV}")

    # Schema and values.yaml describe the same keys wherever the schema is closed.
    def walk(snode, vnode, path):
        if not isinstance(vnode, dict) or snode.get("type") != "object" or "properties" not in snode:
            return
        sprops = set(snode["properties"]) - {"global"}
        if snode.get("additionalProperties") is False:
            for k in sorted(sprops - set(vnode)):
                problems.append(f"schema property {'.'.join(path + [k])} has no default in values.yaml")
        for k, v in vnode.items():
            if k in snode["properties"]:
                walk(snode["properties"][k], v, path + [k])
    walk(schema, values, [])
    report("helm: values.yaml validates against values.schema.json (draft-07, closed objects, enums)", problems)

    # Override files: good ones must pass, bad ones must fail with the expected message.
    problems = []
    goods = sorted(glob.glob(os.path.join(TESTDATA, "values-good-*.yaml")))
    bads = sorted(glob.glob(os.path.join(TESTDATA, "values-bad-*.yaml")))
    for path in goods:
        merged = deep_merge(values, load_yaml(path) or {})
        errs = list(validator.iter_errors(merged))
        if errs:
            problems.append(f"{rel(path)} rejected: {errs[0].message}")
    for path in bads:
        text = open(path, encoding="utf-8").read()
        m = re.search(r"^# expect: (.+)$", text, re.M)
        if not m:
            problems.append(f"{rel(path)} has no '# expect: <message part>' line")
            continue
        merged = deep_merge(values, yaml.load(text, Loader=LOADER) or {})
        msgs = [e.message for e in validator.iter_errors(merged)]
        if not msgs:
            problems.append(f"{rel(path)} was accepted")
        elif not any(m.group(1).strip() in msg for msg in msgs):
            problems.append(f"{rel(path)} rejected for another reason: {msgs}")
    if len(bads) < 5:
        problems.append(f"only {len(bads)} bad values files")
    report(f"helm: schema accepts {len(goods)} good and rejects {len(bads)} bad values overrides (deploy/testdata)", problems)


def values_doc_entries() -> list[dict]:
    """values.yaml keys in order, with helm-docs '# --' descriptions (description on the key itself,
    or inherited from a documented ancestor) and whether the key is a leaf."""
    lines = open(os.path.join(CHART, "values.yaml"), encoding="utf-8").read().splitlines()
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    comment_block: list[str] = []
    entries = []
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith("#"):
            comment_block.append(s)
            continue
        if not s:
            comment_block = []
            continue
        m = re.match(r"^(\s*)([A-Za-z0-9_.-]+):(.*)$", line)
        if not m or s.startswith("- "):
            comment_block = []
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        desc, in_desc = [], False
        for c in comment_block:
            if c.startswith("# --"):
                in_desc, desc = True, [c[4:].strip()]
            elif in_desc:
                desc.append(c[1:].strip())
        inherited = any(d for _, _, d in stack)
        stack.append((indent, m.group(2), bool(desc)))
        rest = m.group(3).split(" #")[0].strip()
        nxt = next((l for l in lines[i + 1:] if l.strip() and not l.strip().startswith("#")), "")
        nxt_indent = len(nxt) - len(nxt.lstrip())
        leaf = bool(rest) or not (nxt_indent > indent or (nxt.strip().startswith("- ") and nxt_indent >= indent))
        entries.append({"path": ".".join(k for _, k, _ in stack), "leaf": leaf, "description": " ".join(desc),
                        "inherited": inherited})
        comment_block = []
    return entries


def render_chart_readme() -> str:
    """helm/pmem-service/README.md: the chart's values table in helm-docs' layout, from values.yaml."""
    chart = load_yaml(os.path.join(CHART, "Chart.yaml"))
    values = load_yaml(os.path.join(CHART, "values.yaml"))

    def lookup(path):
        node = values
        for k in path.split("."):
            node = node[k]
        return node
    rows = []
    for e in values_doc_entries():
        if not e["description"]:
            continue
        v = lookup(e["path"])
        typ = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}.get(type(v), "string")
        default = json.dumps(v, separators=(",", ":")) if not isinstance(v, str) else json.dumps(v)
        rows.append(f"| {e['path']} | {typ} | `{default}` | {e['description'].replace('|', '&#124;')} |")
    return "\n".join([
        f"# {chart['name']}",
        "",
        f"Version: {chart['version']} · Type: {chart['type']} · AppVersion: {chart['appVersion']}",
        "",
        " ".join(str(chart.get("description", "")).split()),
        "",
        f"Kubernetes: `{chart.get('kubeVersion', '')}`. Installation on PMEM nodes (fsdax namespace, `-o dax`, node",
        "label, both modes, MAP_SYNC checks): `docs/deploy.md` in the repository. This file is generated",
        "from the `# --` comments in values.yaml by `python3 deploy/check_deploy.py --write-chart-readme`",
        "(deploy/check.sh fails when it is stale).",
        "",
        "## Values",
        "",
        "| Key | Type | Default | Description |",
        "|-----|------|---------|-------------|",
        *rows,
        "",
    ])


def check_values_docs() -> None:
    """helm-docs: every leaf value carries a '# --' comment (on itself or an ancestor); README current."""
    entries = values_doc_entries()
    leaves = [e for e in entries if e["leaf"]]
    problems = [f"{e['path']} has no '# --' description" for e in leaves if not (e["description"] or e["inherited"])]
    readme = os.path.join(CHART, "README.md")
    if not os.path.exists(readme) or open(readme, encoding="utf-8").read() != render_chart_readme():
        problems.append("helm/pmem-service/README.md is stale: python3 deploy/check_deploy.py --write-chart-readme")
    report(f"helm: values.yaml documents all {len(leaves)} values with helm-docs '# --' comments; chart README current", problems)


ACTION_RX = re.compile(r"\{\{(.*?)\}\}", re.S)
BLOCK_OPEN = ("if", "range", "with", "define", "block")


def template_actions(text: str):
    """Yield (line, action text without trim markers) for every {{ }} action."""
    for m in ACTION_RX.finditer(text):
        a = m.group(1)
        a = a[1:] if a.startswith("-") else a
        a = a[:-1] if a.endswith("-") else a
        yield text.count("\n", 0, m.start()) + 1, a.strip()


def values_tree_has(values, path: list[str]) -> tuple[bool, bool]:
    """(exists, free-form): a path into values.yaml; into an empty map counts as free-form."""
    node = values
    for k in path:
        if isinstance(node, dict) and k in node:
            node = node[k]
        elif isinstance(node, dict) and not node:
            return True, True
        else:
            return False, False
    return True, False


def check_templates() -> None:
    values = load_yaml(os.path.join(CHART, "values.yaml"))
    files = sorted(glob.glob(os.path.join(CHART, "templates", "**", "*"), recursive=True))
    files = [f for f in files if os.path.isfile(f)]
    texts = {f: open(f, encoding="utf-8").read() for f in files}

    # Delimiters and block nesting.
    problems = []
    defines: dict[str, str] = {}
    includes: list[tuple[str, int, str]] = []
    dict_args: set[str] = set()
    for f, text in texts.items():
        opens = [m.start() for m in re.finditer(r"\{\{", text)]
        closes = [m.start() for m in re.finditer(r"\}\}", text)]
        # Every {{ must close before the next {{ opens; no stray }}.
        pos = 0
        for o in opens:
            if o < pos:
                problems.append(f"{rel(f)}:{text.count(chr(10), 0, o) + 1}: '{{{{' inside an action")
            c = text.find("}}", o + 2)
            if c < 0:
                problems.append(f"{rel(f)}:{text.count(chr(10), 0, o) + 1}: '{{{{' never closed")
                break
            pos = c + 2
        if len(opens) != len(closes):
            problems.append(f"{rel(f)}: {len(opens)} '{{{{' vs {len(closes)} '}}}}'")
        stack = []
        for line, a in template_actions(text):
            if a.startswith("/*"):
                if not a.endswith("*/"):
                    problems.append(f"{rel(f)}:{line}: unterminated comment")
                continue
            word = a.split(None, 1)[0] if a else ""
            if word in BLOCK_OPEN:
                stack.append((word, line))
                if word == "define":
                    name = re.match(r'define\s+"([^"]+)"', a)
                    if name:
                        defines[name.group(1)] = rel(f)
            elif word == "else":
                if not stack or stack[-1][0] not in ("if", "range", "with"):
                    problems.append(f"{rel(f)}:{line}: else outside if/range/with")
            elif word == "end":
                if not stack:
                    problems.append(f"{rel(f)}:{line}: end without an open block")
                else:
                    stack.pop()
            for m in re.finditer(r'\b(include|template)\s+"([^"]+)"\s*(\(dict\b)?', a):
                includes.append((m.group(2), line, rel(f)))
                if m.group(3):
                    dict_args.add(m.group(2))
        for word, line in stack:
            problems.append(f"{rel(f)}:{line}: {word} is never closed by end")
    report(f"helm: templates balance {{{{ }}}} and close every if/range/with/define ({len(files)} files)", problems)

    problems = []
    for name, line, f in includes:
        if name not in defines:
            problems.append(f"{f}:{line}: include \"{name}\" has no define")
    helpers = open(os.path.join(CHART, "templates", "_helpers.tpl"), encoding="utf-8").read()
    for d in ("name", "fullname", "chart", "labels", "selectorLabels", "serviceAccountName"):
        if f'define "pmem-service.{d}"' not in helpers:
            problems.append(f"_helpers.tpl lacks define \"pmem-service.{d}\"")
    if "trunc 63" not in helpers:
        problems.append("_helpers.tpl: fullname is not truncated to 63 characters")
    report(f"helm: {len(includes)} includes refer to the {len(defines)} defines; _helpers.tpl has the helm-create helpers", problems)

    # .Values paths, aliases, root-context misuse.
    problems = []
    used: set[tuple[str, ...]] = set()
    for f, text in texts.items():
        aliases: dict[str, tuple] = {}
        stack: list[tuple[str, str | None]] = []  # (block word, define name)
        for line, a in template_actions(text):
            if a.startswith("/*"):
                continue
            word = a.split(None, 1)[0] if a else ""
            if word == "define":
                aliases = {}
            elif word == "end" and stack:
                stack.pop()
            # Alias assignments: $x := .Values.a.b / $x := $root.Values / $x := .root
            m = re.match(r"^(\$\w+)\s*:?=\s*(\S+)\s*$", a)
            if m:
                target = m.group(2)
                if target in (".root", "$"):
                    aliases[m.group(1)] = ("root",)
                else:
                    vm = re.match(r"^(\.|\$|\$\w+\.)Values((?:\.\w+)*)$", target)
                    am = re.match(r"^(\$\w+)((?:\.\w+)*)$", target)
                    if vm:
                        base = vm.group(1)
                        if base in (".", "$") or aliases.get(base[:-1]) == ("root",):
                            aliases[m.group(1)] = ("values",) + tuple(p for p in vm.group(2).split(".") if p)
                    elif am and am.group(1) in aliases and aliases[am.group(1)][0] == "values":
                        aliases[m.group(1)] = aliases[am.group(1)] + tuple(p for p in am.group(2).split(".") if p)
            refs = []
            for vm in re.finditer(r"(?<![\w$])(\$\w*|\.?)\.?Values((?:\.\w+)+)", a):
                prefix = vm.group(1)
                path = tuple(p for p in vm.group(2).split(".") if p)
                if prefix in ("", ".", "$") or aliases.get(prefix) == ("root",):
                    refs.append(path)
                    in_rebound = any(w in ("with", "range") for w, _ in stack)
                    in_dict_define = any(w == "define" and n in dict_args for w, n in stack)
                    if prefix in ("", ".") and (in_rebound or in_dict_define):
                        problems.append(f"{rel(f)}:{line}: .Values used where the dot is rebound ({a[:60]})")
            for am in re.finditer(r"(\$\w+)((?:\.\w+)+)", a):
                if am.group(1) in aliases and aliases[am.group(1)][0] == "values" and "Values" not in am.group(2):
                    refs.append(aliases[am.group(1)][1:] + tuple(p for p in am.group(2).split(".") if p))
            for path in refs:
                exists, _ = values_tree_has(values, list(path))
                if not exists:
                    problems.append(f"{rel(f)}:{line}: .Values.{'.'.join(path)} is not in values.yaml")
                used.add(path)
            # include "x" . inside with/range hands a rebound dot to a helper expecting the root.
            if re.search(r'include\s+"[^"]+"\s+\.(\s|\)|$)', a) and any(w in ("with", "range") for w, _ in stack):
                problems.append(f"{rel(f)}:{line}: include with '.' inside with/range ({a[:60]})")
            for bad in (".Release", ".Chart", ".Capabilities"):
                if re.search(rf"(?<![\w$)]){re.escape(bad)}\b", a):
                    in_rebound = any(w in ("with", "range") for w, _ in stack)
                    in_dict_define = any(w == "define" and n in dict_args for w, n in stack)
                    if in_rebound or in_dict_define:
                        problems.append(f"{rel(f)}:{line}: {bad} used where the dot is rebound")
            # A block's own pipeline is evaluated with the outer dot: push after checking it.
            if word == "define":
                stack.append(("define", re.match(r'define\s+"([^"]+)"', a).group(1)))
            elif word in BLOCK_OPEN:
                stack.append((word, None))
    report(f"helm: all {len(used)} .Values paths used by templates exist in values.yaml; no root context under a rebound dot", problems)

    # Every value is used by some template.
    problems = []

    def leaves(node, path):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                yield from leaves(v, path + (k,))
        else:
            yield path
    for leaf in leaves(values, ()):
        if not any(leaf[: len(u)] == u for u in used):
            problems.append(f"value {'.'.join(leaf)} is not used by any template")
    report("helm: every value in values.yaml is used by a template", problems)

    # Rendered kinds: each manifest template declares apiVersion and kind.
    problems = []
    kinds = {}
    for f, text in texts.items():
        if f.endswith((".tpl", ".txt")):
            continue
        k = re.search(r"^kind:\s*(\w+)", text, re.M)
        if not re.search(r"^apiVersion:\s*\S+", text, re.M) or not k:
            problems.append(f"{rel(f)} has no top-level apiVersion/kind")
        else:
            kinds[k.group(1)] = rel(f)
        if "pmem-service.labels" not in text:
            problems.append(f"{rel(f)} does not use the common labels")
    for kind in ("Deployment", "DaemonSet", "Service", "ServiceAccount", "PersistentVolume", "PersistentVolumeClaim", "Pod"):
        if kind not in kinds:
            problems.append(f"no template renders a {kind}")
    tpl = open(os.path.join(CHART, "templates", "_helpers.tpl"), encoding="utf-8").read()
    for needle, what in (("restartPolicy: Always", "native sidecar restartPolicy"),
                         ("startupProbe:", "startup probe"), ("service: readiness", "readiness probe service"),
                         ("medium: Memory", "in-memory socket emptyDir"), ("DirectoryOrCreate", "daemonset socket hostPath")):
        if needle not in tpl:
            problems.append(f"_helpers.tpl lacks {what} ({needle})")
    report(f"helm: manifest templates render {', '.join(sorted(kinds))} with common labels", problems)


# =============================================================================================
# deploy/k8s
# =============================================================================================
def pod_spec(obj):
    kind = obj.get("kind")
    if kind in ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"):
        return obj.get("spec", {}).get("template", {}).get("spec", {})
    if kind == "Pod":
        return obj.get("spec", {})
    return None


def check_security(name: str, pod: dict, c: dict, problems: list[str]) -> None:
    sc = dict(pod.get("securityContext", {}))
    sc.update(c.get("securityContext", {}))
    want = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}
    for k, v in want.items():
        if sc.get(k) != v:
            problems.append(f"{name}: securityContext.{k} is not {v}")
    if sc.get("runAsUser") != APP_UID:
        problems.append(f"{name}: runAsUser is not {APP_UID}")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        problems.append(f"{name}: capabilities do not drop ALL")
    if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{name}: seccompProfile is not RuntimeDefault")


def check_k8s() -> dict:
    objs = []
    problems = []
    files = sorted(glob.glob(os.path.join(K8S_DIR, "*.yaml")))
    for path in files:
        for d in load_yaml_all(path):
            objs.append((rel(path), d))
    kustomizations = [(p, o) for p, o in objs if o.get("kind") == "Kustomization"]
    objs = [(p, o) for p, o in objs if o.get("kind") != "Kustomization"]
    for p, k in kustomizations:
        for r in k.get("resources", []):
            if not os.path.exists(os.path.join(os.path.dirname(os.path.join(ROOT, p)), r)):
                problems.append(f"{p}: resource {r} does not exist")
        listed = {os.path.join(os.path.dirname(p), r) for r in k.get("resources", [])}
        for f in files:
            if rel(f) != p and rel(f) not in listed:
                problems.append(f"{p} does not list {rel(f)}")
    by_kind: dict[str, list[dict]] = {}
    for p, o in objs:
        for key in ("apiVersion", "kind"):
            if not o.get(key):
                problems.append(f"{p}: object without {key}")
        name = o.get("metadata", {}).get("name")
        if not name:
            problems.append(f"{p}: {o.get('kind')} without metadata.name")
        elif not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", name) or len(name) > 253:
            problems.append(f"{p}: {name} is not a valid object name")
        if "namespace" in o.get("metadata", {}):
            problems.append(f"{p}: {name} sets a namespace (manifests are namespace-free)")
        by_kind.setdefault(o.get("kind"), []).append(o)
    report(f"k8s: deploy/k8s parses into {len(objs)} objects with apiVersion/kind/metadata.name, namespace-free", problems)

    problems = []
    for o in by_kind.get("Deployment", []) + by_kind.get("DaemonSet", []) + by_kind.get("Pod", []):
        name = o["metadata"]["name"]
        pod = pod_spec(o)
        if o.get("kind") != "Pod":
            sel = o.get("spec", {}).get("selector", {}).get("matchLabels", {})
            labels = o.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
            if not sel or any(labels.get(k) != v for k, v in sel.items()):
                problems.append(f"{name}: selector does not match the pod template labels")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        all_containers = [("initContainers", c) for c in pod.get("initContainers", [])] + \
                         [("containers", c) for c in pod.get("containers", [])]
        if not pod.get("containers"):
            problems.append(f"{name}: no containers")
        for where, c in all_containers:
            cname = f"{name}/{c.get('name')}"
            if not c.get("name") or not c.get("image"):
                problems.append(f"{cname}: container without name or image")
            check_security(cname, pod, c, problems)
            for vm in c.get("volumeMounts", []):
                if vm.get("name") not in volumes:
                    problems.append(f"{cname}: mounts undefined volume {vm.get('name')}")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                pr = c.get(probe)
                if pr is None:
                    continue
                if "grpc" not in pr or pr["grpc"].get("port") != GRPC_PORT:
                    problems.append(f"{cname}: {probe} is not a gRPC probe on port {GRPC_PORT}")
            if c.get("name") == "pmem-service":
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if probe not in c:
                        problems.append(f"{cname}: no {probe}")
                if c.get("readinessProbe", {}).get("grpc", {}).get("service") != "readiness":
                    problems.append(f"{cname}: readiness probe does not check the 'readiness' service")
                if c.get("livenessProbe", {}).get("grpc", {}).get("service", "") != "":
                    problems.append(f"{cname}: liveness probe should check the '' service")
                if where == "initContainers" and c.get("restartPolicy") != "Always":
                    problems.append(f"{cname}: sidecar init container without restartPolicy: Always")
                if not any(p.get("containerPort") == GRPC_PORT for p in c.get("ports", [])):
                    problems.append(f"{cname}: does not declare containerPort {GRPC_PORT}")
                mounts = {vm["mountPath"]: vm["name"] for vm in c.get("volumeMounts", [])}
                if "/pmem" not in mounts or "/run/pmem" not in mounts:
                    problems.append(f"{cname}: does not mount /pmem and /run/pmem")
        # The socket volume: in memory, mounted at /run/pmem by the service and the app.
        sock = volumes.get("pmem-socket", {})
        if sock.get("emptyDir", {}).get("medium") != "Memory":
            problems.append(f"{name}: socket volume is not an emptyDir with medium Memory")
        for c in pod.get("containers", []):
            if not any(vm.get("name") == "pmem-socket" and vm.get("mountPath") == "/run/pmem" for vm in c.get("volumeMounts", [])):
                problems.append(f"{name}/{c.get('name')}: app container does not mount the socket at /run/pmem")
            if any(vm.get("name") == "pmem" for vm in c.get("volumeMounts", [])):
                problems.append(f"{name}/{c.get('name')}: only the sidecar should mount the PMEM volume")
        if pod.get("securityContext", {}).get("fsGroup") != APP_UID:
            problems.append(f"{name}: pod fsGroup is not {APP_UID}")
        if pod.get("nodeSelector", {}).get("storage") != "pmem":
            problems.append(f"{name}: nodeSelector storage=pmem missing")
        claim = volumes.get("pmem", {}).get("persistentVolumeClaim", {}).get("claimName")
        if claim and claim not in [c["metadata"]["name"] for c in by_kind.get("PersistentVolumeClaim", [])]:
            problems.append(f"{name}: claim {claim} is not defined in deploy/k8s")
    for svc in by_kind.get("Service", []):
        sel = svc.get("spec", {}).get("selector", {})
        targets = [o for o in by_kind.get("Deployment", []) + by_kind.get("DaemonSet", [])
                   if all(o["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
        if not targets:
            problems.append(f"Service {svc['metadata']['name']} selects no workload")
    for pvc in by_kind.get("PersistentVolumeClaim", []):
        vn = pvc.get("spec", {}).get("volumeName")
        pvs = {pv["metadata"]["name"]: pv for pv in by_kind.get("PersistentVolume", [])}
        if vn and vn not in pvs:
            problems.append(f"PVC {pvc['metadata']['name']} binds missing PV {vn}")
        elif vn and pvs[vn]["spec"].get("storageClassName") != pvc["spec"].get("storageClassName"):
            problems.append(f"PVC {pvc['metadata']['name']} and PV {vn} differ in storageClassName")
    report("k8s: native sidecar with gRPC probes on 5001, restricted security, Memory socket emptyDir shared with the app, "
           "references resolve", problems)
    return by_kind


def check_k8s_matches_chart(by_kind: dict) -> None:
    """deploy/k8s mirrors `helm template` of the chart with default values (sidecarExample)."""
    values = load_yaml(os.path.join(CHART, "values.yaml"))
    chart = load_yaml(os.path.join(CHART, "Chart.yaml"))
    helpers = open(os.path.join(CHART, "templates", "_helpers.tpl"), encoding="utf-8").read()
    problems = []
    deps = [d for d in by_kind.get("Deployment", []) if d["metadata"]["name"].endswith("-example")]
    if values["mode"] != "sidecarExample" or not deps:
        report("k8s: deploy/k8s matches the chart's default render", ["no sidecarExample Deployment to compare"])
        return
    pod = pod_spec(deps[0])
    inits = {c["name"]: c for c in pod.get("initContainers", [])}
    apps = {c["name"]: c for c in pod.get("containers", [])}
    svc = inits.get("pmem-service")
    if not svc or not values["sidecarExample"]["nativeSidecar"]:
        report("k8s: deploy/k8s matches the chart's default render", ["no native sidecar pmem-service"])
        return

    def image(img):
        repo = f"{img['registry']}/{img['repository']}" if img.get("registry") else img["repository"]
        return f"{repo}@{img['digest']}" if img.get("digest") else f"{repo}:{img.get('tag') or chart['appVersion']}"
    if svc["image"] != image(values["image"]):
        problems.append(f"service image {svc['image']} != {image(values['image'])}")
    app_v = values["sidecarExample"]["app"]
    app = apps.get(app_v["name"])
    if not app:
        problems.append(f"no app container {app_v['name']}")
    else:
        if app["image"] != image(app_v["image"]):
            problems.append(f"app image {app['image']} != {image(app_v['image'])}")
        if app.get("command") != app_v["command"]:
            problems.append("app command differs from values")
        if app.get("resources") != app_v["resources"]:
            problems.append("app resources differ from values")
    demo_v = values["sidecarExample"]["demo"]
    demo = inits.get("pmem-demo")
    if demo_v["enabled"] != bool(demo):
        problems.append("pmem-demo init container presence differs from sidecarExample.demo.enabled")
    if demo:
        sock = f"{values['socket']['dir'].rstrip('/')}/{values['socket']['name']}"
        if demo["image"] != image(demo_v["image"]):
            problems.append(f"demo image {demo['image']} != {image(demo_v['image'])}")
        if demo.get("args") != ["--address", f"unix://{sock}"] + demo_v["args"]:
            problems.append("demo args differ from values")
        if list(inits).index("pmem-demo") < list(inits).index("pmem-service"):
            problems.append("pmem-demo runs before the sidecar")
    # Env: the helper's unconditional env names, with the default values.
    m = re.search(r'define "pmem-service.serviceContainer".*?\n  env:\n(.*?)\n  \{\{- if \$v.probes', helpers, re.S)
    required, optional, depth = set(), set(), 0
    for line in (m.group(1) if m else "").splitlines():
        if re.search(r"\{\{-?\s*(if|with|range)\b", line):
            depth += 1
        elif re.search(r"\{\{-?\s*end\b", line):
            depth -= 1
        n = re.match(r"\s*- name: (\w+)\s*$", line)
        if n:
            (optional if depth else required).add(n.group(1))
    env = {e["name"]: e.get("value") for e in svc.get("env", [])}
    if not required:
        problems.append("could not read the env block of pmem-service.serviceContainer")
    for n in sorted(required - set(env)):
        problems.append(f"sidecar env lacks {n} (always rendered by the chart)")
    for n in sorted(set(env) - required - optional):
        problems.append(f"sidecar env {n} is not rendered by the chart")
    cfg = values["config"]
    expect_env = {
        "ASPNETCORE_ENVIRONMENT": cfg["environment"],
        "PmemService__PoolPath": values["pmem"]["mountPath"],
        "PmemService__UnixSocketPath": f"{values['socket']['dir'].rstrip('/')}/{values['socket']['name']}",
        "PmemService__UnixSocketMode": cfg["unixSocketMode"],
        "PmemService__TcpEndpoint": f"0.0.0.0:{values['grpc']['port']}",
        "PmemService__RequireDax": str(cfg["requireDax"]).lower(),
        "PmemService__EnableReflection": str(cfg["enableReflection"]).lower(),
        "PmemService__AllowDataPlaneOverTcp": str(cfg["allowDataPlaneOverTcp"]).lower(),
        "Serilog__MinimumLevel__Default": cfg["logLevel"],
    }
    for k, v in expect_env.items():
        if k in env and env[k] != v:
            problems.append(f"sidecar env {k}={env[k]!r}, chart renders {v!r}")
    # Probes, resources, security contexts, scheduling, volumes.
    for probe, key in (("startupProbe", "startup"), ("livenessProbe", "liveness"), ("readinessProbe", "readiness")):
        pv = values["probes"][key]
        pr = svc.get(probe, {})
        for f in ("periodSeconds", "failureThreshold", "timeoutSeconds"):
            if pr.get(f) != pv[f]:
                problems.append(f"{probe}.{f}={pr.get(f)}, values say {pv[f]}")
    if svc.get("startupProbe", {}).get("grpc", {}).get("service", "") != values["probes"]["startup"]["service"]:
        problems.append("startupProbe service differs from probes.startup.service")
    if svc.get("resources") != values["resources"]:
        problems.append("service resources differ from values")
    if svc.get("securityContext") != values["securityContext"]:
        problems.append("service securityContext differs from values")
    if pod.get("securityContext") != values["podSecurityContext"]:
        problems.append("pod securityContext differs from podSecurityContext")
    if pod.get("nodeSelector") != values["nodeSelector"]:
        problems.append("nodeSelector differs from values")
    if pod.get("terminationGracePeriodSeconds") != values["terminationGracePeriodSeconds"]:
        problems.append("terminationGracePeriodSeconds differs from values")
    if deps[0]["spec"].get("replicas") != values["sidecarExample"]["replicas"]:
        problems.append("replicas differ from values")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    if vols.get("pmem-socket", {}).get("emptyDir", {}).get("sizeLimit") != values["socket"]["sizeLimit"]:
        problems.append("socket emptyDir sizeLimit differs from socket.sizeLimit")
    mounts = {vm["name"]: vm["mountPath"] for vm in svc.get("volumeMounts", [])}
    if mounts.get("pmem") != values["pmem"]["mountPath"] or mounts.get("pmem-socket") != values["socket"]["dir"]:
        problems.append("service mount paths differ from pmem.mountPath / socket.dir")
    vt = values["pmem"]["volume"]["type"]
    if vt == "localPV":
        lpv = values["pmem"]["volume"]["localPV"]
        pvs = by_kind.get("PersistentVolume", [])
        pvcs = by_kind.get("PersistentVolumeClaim", [])
        if len(pvs) != 1 or len(pvcs) != 1:
            problems.append("localPV default: expected one PersistentVolume and one claim")
        else:
            pv, pvc = pvs[0]["spec"], pvcs[0]["spec"]
            if pv.get("local", {}).get("path") != lpv["path"]:
                problems.append("PV path differs from pmem.volume.localPV.path")
            if pv.get("capacity", {}).get("storage") != lpv["size"] or pvc["resources"]["requests"]["storage"] != lpv["size"]:
                problems.append("PV/PVC size differs from pmem.volume.localPV.size")
            if pv.get("storageClassName") != lpv["storageClassName"]:
                problems.append("storageClassName differs from pmem.volume.localPV.storageClassName")
            if pv.get("persistentVolumeReclaimPolicy") != lpv["reclaimPolicy"]:
                problems.append("reclaim policy differs")
            terms = pv.get("nodeAffinity", {}).get("required", {}).get("nodeSelectorTerms", [{}])[0].get("matchExpressions", [])
            want = [{"key": k, "operator": "In", "values": [v]} for k, v in values["nodeSelector"].items()]
            if not lpv["nodeName"] and terms != want:
                problems.append("PV node affinity differs from the nodeSelector labels")
    report(f"k8s: deploy/k8s matches the chart's default sidecarExample render (images, {len(env)} env vars, probes, "
           "security, volumes)", problems)


# =============================================================================================
# Service ports, shutdown margins, Grafana dashboard
# =============================================================================================
def named_target_port_problems(objs: list[dict]) -> list[str]:
    """A Service's named targetPort must be declared by a regular container of every workload it selects.

    Kubernetes resolves a named port declared only by an init container (a native sidecar) since
    1.33 (kubernetes/kubernetes#127958, fixed by #128850, not backported); on 1.29-1.32 the Service
    then has no endpoints. Numeric targetPorts always work.
    """
    problems = []
    workloads = [o for o in objs if o.get("kind") in ("Deployment", "DaemonSet", "StatefulSet", "Pod")]
    for svc in (o for o in objs if o.get("kind") == "Service"):
        sname = svc.get("metadata", {}).get("name")
        sel = svc.get("spec", {}).get("selector", {}) or {}
        selected = []
        for w in workloads:
            labels = (w.get("metadata", {}) if w.get("kind") == "Pod" else
                      w.get("spec", {}).get("template", {}).get("metadata", {})).get("labels", {}) or {}
            if sel and all(labels.get(k) == v for k, v in sel.items()):
                selected.append(w)
        for port in svc.get("spec", {}).get("ports", []):
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
                continue
            for w in selected:
                pod = pod_spec(w) or {}
                regular = [c.get("name") for c in pod.get("containers", [])
                           if any(p.get("name") == target for p in c.get("ports", []))]
                inits = [c.get("name") for c in pod.get("initContainers", [])
                         if any(p.get("name") == target for p in c.get("ports", []))]
                if regular:
                    continue
                if inits:
                    problems.append(f"Service {sname}: named targetPort {target!r} is declared only by init/sidecar "
                                    f"container(s) {inits} of {w['metadata']['name']}; Kubernetes < 1.33 does not "
                                    "resolve it (use the port number)")
                else:
                    problems.append(f"Service {sname}: named targetPort {target!r} is not declared by "
                                    f"{w['metadata']['name']}")
    return problems


def check_service_ports() -> None:
    problems = []
    # The chart: every targetPort is a number or a numeric value (the chart supports 1.29+, and in
    # sidecar mode the service container is an init container).
    text = open(os.path.join(CHART, "templates", "service.yaml"), encoding="utf-8").read()
    targets = re.findall(r"^\s*targetPort:\s*(.+?)\s*$", text, re.M)
    if not targets:
        problems.append("service.yaml has no targetPort")
    for t in targets:
        if not re.fullmatch(r"\d+|\{\{-?\s*\.Values\.(grpc|metrics)\.port\s*-?\}\}", t):
            problems.append(f"helm service.yaml: targetPort {t} is not numeric (named ports of native sidecars "
                            "resolve only on Kubernetes >= 1.33)")
    # deploy/k8s.
    objs = []
    for path in sorted(glob.glob(os.path.join(K8S_DIR, "*.yaml"))):
        objs += [o for o in load_yaml_all(path) if isinstance(o, dict)]
    problems += named_target_port_problems(objs)
    # Seeded cases: bad ones must be rejected for the sidecar reason, good ones accepted.
    bads = sorted(glob.glob(os.path.join(TESTDATA, "k8s-bad-*.yaml")))
    goods = sorted(glob.glob(os.path.join(TESTDATA, "k8s-good-*.yaml")))
    for path in bads:
        found = named_target_port_problems([o for o in load_yaml_all(path) if isinstance(o, dict)])
        if not any("only by init/sidecar" in f for f in found):
            problems.append(f"{rel(path)} was not rejected for a sidecar-only named targetPort ({found})")
    for path in goods:
        found = named_target_port_problems([o for o in load_yaml_all(path) if isinstance(o, dict)])
        if found:
            problems.append(f"{rel(path)} rejected: {found}")
    if not bads:
        problems.append("no deploy/testdata/k8s-bad-*.yaml case")
    report(f"ports: Services target numeric ports or ports of regular containers (chart, deploy/k8s, "
           f"{len(bads)} bad / {len(goods)} good cases)", problems)


SHUTDOWN_MARGIN = 10
DEFAULT_SHUTDOWN_TIMEOUT = 30  # HostOptions.ShutdownTimeout default


def duration_seconds(text) -> float | None:
    m = re.fullmatch(r"\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", str(text))
    if not m or not any(m.groups()):
        return None
    return int(m.group(1) or 0) * 60 + float(m.group(2) or 0)


def check_shutdown_margins() -> None:
    """terminationGracePeriodSeconds / stop_grace_period exceed the host's shutdown timeout with a margin."""
    problems = []
    values = load_yaml(os.path.join(CHART, "values.yaml"))
    grace = values.get("terminationGracePeriodSeconds")
    timeout = values.get("config", {}).get("shutdownTimeoutSeconds")
    helpers = open(os.path.join(CHART, "templates", "_helpers.tpl"), encoding="utf-8").read()
    if "DOTNET_SHUTDOWNTIMEOUTSECONDS" not in helpers or "config.shutdownTimeoutSeconds" not in helpers:
        problems.append("chart: the service container does not set DOTNET_SHUTDOWNTIMEOUTSECONDS from config.shutdownTimeoutSeconds")
    if not isinstance(grace, int) or not isinstance(timeout, int) or grace < timeout + SHUTDOWN_MARGIN:
        problems.append(f"chart: terminationGracePeriodSeconds {grace} is not at least config.shutdownTimeoutSeconds "
                        f"{timeout} + {SHUTDOWN_MARGIN}")
    for path in sorted(glob.glob(os.path.join(K8S_DIR, "*.yaml"))):
        for o in load_yaml_all(path):
            pod = pod_spec(o) if isinstance(o, dict) else None
            if not pod:
                continue
            for c in pod.get("initContainers", []) + pod.get("containers", []):
                if c.get("name") != "pmem-service":
                    continue
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                t = int(env.get("DOTNET_SHUTDOWNTIMEOUTSECONDS", DEFAULT_SHUTDOWN_TIMEOUT))
                g = pod.get("terminationGracePeriodSeconds", 30)
                if g < t + SHUTDOWN_MARGIN:
                    problems.append(f"{rel(path)}: terminationGracePeriodSeconds {g} < shutdown timeout {t} + {SHUTDOWN_MARGIN}")
    compose = load_yaml(os.path.join(ROOT, "docker-compose.yml"))
    svc = compose.get("services", {}).get("pmem-service", {})
    t = int(str(svc.get("environment", {}).get("DOTNET_SHUTDOWNTIMEOUTSECONDS", DEFAULT_SHUTDOWN_TIMEOUT)))
    g = duration_seconds(svc.get("stop_grace_period", "10s"))
    if g is None or g < t + SHUTDOWN_MARGIN:
        problems.append(f"docker-compose.yml: stop_grace_period {svc.get('stop_grace_period')} < shutdown timeout {t}s + {SHUTDOWN_MARGIN}s")
    report(f"shutdown: grace periods exceed the host's shutdown timeout by >= {SHUTDOWN_MARGIN} s (chart, deploy/k8s, compose)", problems)


def prometheus_metric_names() -> dict[str, str]:
    """Instrument name -> Prometheus base name, from PmemMetrics.cs (OpenTelemetry's Prometheus naming)."""
    path = os.path.join(ROOT, "src", "PmemService.Server", "Internal", "PmemMetrics.cs")
    text = open(path, encoding="utf-8").read()
    names = {}
    for m in re.finditer(r'Create(Counter|Histogram|UpDownCounter|ObservableGauge|ObservableCounter|ObservableUpDownCounter|Gauge)'
                         r'(?:<\w+>)?\(\s*"([a-z0-9._]+)",\s*(?:[^,"]*?,\s*)??"([^"]*)"', text):
        kind, name, unit = m.groups()
        base = name.replace(".", "_")
        suffix = {"By": "bytes", "s": "seconds"}.get(unit, "")
        if suffix and not base.endswith("_" + suffix):
            base += "_" + suffix
        if kind in ("Counter", "ObservableCounter"):
            base += "_total"
        names[name] = base
    return names


def check_grafana_dashboard() -> None:
    problems = []
    files = sorted(glob.glob(os.path.join(ROOT, "deploy", "grafana", "*.json")))
    if not files:
        report("grafana: dashboard JSON in deploy/grafana", ["no deploy/grafana/*.json"])
        return
    metrics = prometheus_metric_names()
    known = set()
    for base in metrics.values():
        known |= {base, base + "_bucket", base + "_sum", base + "_count"}
    if not metrics:
        problems.append("no instruments found in PmemMetrics.cs")
    used = set()
    for path in files:
        try:
            dash = json.load(open(path, encoding="utf-8"))
        except json.JSONDecodeError as e:
            problems.append(f"{rel(path)} is not valid JSON: {e}")
            continue
        for key in ("title", "panels", "uid", "schemaVersion"):
            if key not in dash:
                problems.append(f"{rel(path)}: no {key}")
        for panel in dash.get("panels", []):
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                for name in re.findall(r"\b(pmem_[a-z0-9_]+)\s*\{", expr):  # series (labels are pmem_* too)
                    used.add(name)
                    if name not in known:
                        problems.append(f"{rel(path)}: panel {panel.get('title')!r} uses {name}, which PmemMetrics.cs does not export")
    for inst, base in metrics.items():
        if not any(u == base or u.startswith(base + "_") for u in used):
            problems.append(f"no dashboard panel shows {inst} ({base})")
    report(f"grafana: {len(files)} dashboard(s) parse as JSON; every pmem_* series exists in PmemMetrics.cs and every "
           f"instrument ({len(metrics)}) has a panel", problems)


def main(root: str | None = None) -> int:
    global failures
    failures = 0
    if root:
        set_root(root)
    for fn in (check_dockerfile, check_compose, check_chart_metadata, check_values_schema, check_values_docs,
               check_templates, check_service_ports, check_shutdown_margins, check_grafana_dashboard):
        try:
            fn()
        except Exception as e:  # a crash in a check is a failed check, not a silent pass
            report(f"{fn.__name__} crashed", [f"{type(e).__name__}: {e}"])
    try:
        by_kind = check_k8s()
        check_k8s_matches_chart(by_kind)
    except Exception as e:
        report("check_k8s crashed", [f"{type(e).__name__}: {e}"])
    return min(failures, 100)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-chart-readme"]:
        with open(os.path.join(CHART, "README.md"), "w", encoding="utf-8") as f:
            f.write(render_chart_readme())
        print(f"wrote {rel(os.path.join(CHART, 'README.md'))}")
        sys.exit(0)
    sys.exit(main())
