#!/usr/bin/env python3
"""Self-test of deploy/check_deploy.py: each seeded defect must make the expected check fail.

A check that cannot fail proves nothing. This copies the files the checks read into a temporary
tree, applies one defect at a time, runs check_deploy.main() on it and requires a
FAIL line from the check that is meant to catch it. The unmodified copy must pass. Prints one line.
"""
from __future__ import annotations

import contextlib
import glob
import io
import os
import shutil
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_deploy  # noqa: E402
DEP = "deploy/k8s/sidecar-example.yaml"
TPL = "helm/pmem-service/templates"
VALUES = "helm/pmem-service/values.yaml"
SCHEMA = "helm/pmem-service/values.schema.json"

# (file, text to replace (must occur), replacement, part of the name of the check that must fail)
DEFECTS = [
    ("deploy/Dockerfile", "COPY src/pmemctl/pmemctl.csproj src/pmemctl/\n", "", "restore layer"),
    ("deploy/Dockerfile", "COPY proto/ proto/", "COPY proto/ protos/ proto/", "COPY sources"),
    (".dockerignore", "!proto/\n", "", "COPY sources"),
    ("deploy/Dockerfile", 'ENTRYPOINT ["./PmemService"]', "ENTRYPOINT ./PmemService", "exec-form"),
    ("deploy/Dockerfile", "aspnet:${DOTNET_VERSION}-noble-chiseled", "aspnet:${DOTNET_VERSION}-noble", "chiseled"),
    ("docker-compose.yml", 'test: ["CMD", "/app/PmemService"', 'test: ["CMD-SHELL", "/app/PmemService"', "docker-compose.yml"),
    ("docker-compose.yml", "condition: service_healthy", "condition: service_started", "docker-compose.yml"),
    (VALUES, "  requireDax: true", "  requireDAX: true", "validates against"),
    (SCHEMA, '"title": "pmem-service values",\n  "type": "object",\n  "additionalProperties": false,',
     '"title": "pmem-service values",\n  "type": "object",', "validates against"),
    (SCHEMA, '"enum": [\n        "sidecarExample",\n        "daemonset"\n      ]',
     '"enum": [\n        "sidecarExample",\n        "daemonset",\n        "sidecar"\n      ]', "bad values overrides"),
    (VALUES, "  # -- Image pull policy.\n", "", "helm-docs"),
    (VALUES, "# -- Service image repository.", "# -- The service image repository.", "chart README current"),
    (f"{TPL}/_helpers.tpl", "value: {{ $v.config.requireDax | quote }}", "value: {{ $v.config.requiredax | quote }}", ".Values paths"),
    (f"{TPL}/service.yaml", "{{- end }}\nspec:", "spec:", "close every"),
    (f"{TPL}/service.yaml", "name: {{ include \"pmem-service.fullname\" . }}", "name: {{ include \"pmem-service.fullname\" . }", "balance"),
    (f"{TPL}/serviceaccount.yaml", 'include "pmem-service.labels"', 'include "pmem-service.lables"', "includes refer"),
    (f"{TPL}/deployment.yaml", "{{- with .Values.sidecarExample.app.resources }}\n          resources:\n            {{- toYaml . | nindent 12 }}",
     "{{- with .Values.sidecarExample.app.resources }}\n          resources:\n            {{- toYaml .Values.sidecarExample.app.resources | nindent 12 }}", "rebound"),
    (f"{TPL}/tests/test-health.yaml", "activeDeadlineSeconds: {{ .Values.tests.activeDeadlineSeconds }}", "activeDeadlineSeconds: 60", "every value"),
    (DEP, "          livenessProbe:\n            grpc:\n              port: 5001", "          livenessProbe:\n            grpc:\n              port: 8080", "gRPC probes on 5001"),
    (DEP, "          restartPolicy: Always\n", "", "native sidecar"),
    (DEP, "            readOnlyRootFilesystem: true\n            runAsGroup: 1654\n            runAsNonRoot: true\n            runAsUser: 1654\n            seccompProfile:\n              type: RuntimeDefault\n          volumeMounts:\n            - name: pmem\n",
     "            readOnlyRootFilesystem: false\n            runAsGroup: 1654\n            runAsNonRoot: true\n            runAsUser: 1654\n            seccompProfile:\n              type: RuntimeDefault\n          volumeMounts:\n            - name: pmem\n", "restricted security"),
    (DEP, '- name: PmemService__RequireDax\n              value: "true"', '- name: PmemService__RequireDax\n              value: "false"', "matches the chart"),
    (DEP, "            - name: K8S_NODE_NAME\n", "            - name: K8S_NODENAME\n", "matches the chart"),
    ("deploy/k8s/pmem-volume.yaml", "storage: 4Gi\n  volumeMode", "storage: 8Gi\n  volumeMode", "matches the chart"),
    # Named targetPorts of a native sidecar are not resolved before Kubernetes 1.33.
    (f"{TPL}/service.yaml", "targetPort: {{ .Values.grpc.port }}", "targetPort: grpc", "ports:"),
    (DEP, "      targetPort: 5001", "      targetPort: grpc", "ports:"),
    ("deploy/testdata/k8s-bad-sidecar-named-targetport.yaml", "targetPort: grpc}", "targetPort: 5001}", "ports:"),
    # Grace periods must exceed the shutdown timeout with a margin.
    (VALUES, "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30", "shutdown:"),
    (DEP, "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 35", "shutdown:"),
    ("docker-compose.yml", "stop_grace_period: 45s", "stop_grace_period: 30s", "shutdown:"),
    # The dashboard: valid JSON, and only series PmemMetrics exports.
    ("deploy/grafana/pmem-service-dashboard.json", "pmem_mapped_bytes{", "pmem_mapped_byte{", "grafana:"),
    ("deploy/grafana/pmem-service-dashboard.json", '"uid": "pmem-service",', '"uid": "pmem-service"', "grafana:"),
    ("src/PmemService.Server/Internal/PmemMetrics.cs", '"pmem.errors"', '"pmem.failures"', "grafana:"),
]

COPY = ["deploy", "helm", "docker-compose.yml", ".dockerignore", "proto", "PmemService.sln",
        "Directory.Build.props", "Directory.Packages.props", "global.json", ".editorconfig",
        "src/PmemService.Server/Internal/PmemMetrics.cs"]


def make_tree(dst: str) -> None:
    for item in COPY:
        src = os.path.join(ROOT, item)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dst, item))
        elif os.path.exists(src):
            os.makedirs(os.path.dirname(os.path.join(dst, item)), exist_ok=True)
            shutil.copy2(src, os.path.join(dst, item))
    for proj in glob.glob(os.path.join(ROOT, "src", "*", "*.csproj")):
        r = os.path.relpath(proj, ROOT)
        os.makedirs(os.path.join(dst, os.path.dirname(r)), exist_ok=True)
        shutil.copy2(proj, os.path.join(dst, r))


def run(tree: str) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = check_deploy.main(tree)
    return rc, buf.getvalue()


def main() -> int:
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "base")
        make_tree(base)
        rc, out = run(base)
        if rc != 0:
            print("FAIL self-test: the checks fail on an unmodified copy\n" + out)
            return 1
        for i, (f, old, new, expect) in enumerate(DEFECTS):
            tree = os.path.join(tmp, f"d{i}")
            shutil.copytree(base, tree)
            path = os.path.join(tree, f)
            text = open(path, encoding="utf-8").read()
            if old not in text:
                problems.append(f"defect {i} ({f}): seed text not found; update DEFECTS")
                continue
            open(path, "w", encoding="utf-8").write(text.replace(old, new, 1))
            rc, out = run(tree)
            failed = [l for l in out.splitlines() if l.startswith("FAIL")]
            if rc == 0 or not any(expect in l for l in failed):
                problems.append(f"defect {i} ({f}: {old.strip()[:40]!r}) not caught by '{expect}' (failed: {failed})")
            shutil.rmtree(tree)
    if problems:
        print(f"FAIL self-test: {len(problems)} of {len(DEFECTS)} seeded defects slipped through")
        for p in problems:
            print(f"       - {p}")
        return 1
    print(f"ok   self-test: each of {len(DEFECTS)} seeded defects fails the check meant to catch it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
