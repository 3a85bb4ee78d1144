#!/usr/bin/env python3
"""Replay deploy/Dockerfile's build stage without a Docker engine (which CI here does not have).

Copies the build context (after .dockerignore) the way the build stage's COPY steps do into a scratch
directory, then runs its RUN steps that call dotnet (restore / publish) with TARGETARCH set, the
stage's absolute output paths (/out, /rootfs) remapped into the scratch directory. Catches a restore
layer that misses a project or build input, and publish errors, with the local .NET SDK in place of
the sdk:10.0-noble image. Slow (a real restore and publish): not part of deploy/check.sh.

  python3 deploy/simulate-build.py [--arch amd64|arm64] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_deploy as cd  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()

    pats = cd.dockerignore_patterns()
    scratch = tempfile.mkdtemp(prefix="pmem-docker-build-")
    workdir = os.path.join(scratch, "src")
    env = {**os.environ, "TARGETARCH": args.arch, "CONFIGURATION": "Release",
           "DOTNET_CLI_TELEMETRY_OPTOUT": "1", "DOTNET_NOLOGO": "1"}
    in_build = False
    rc = 0
    try:
        for word, rest in cd.dockerfile_instructions():
            if word == "FROM":
                if in_build:
                    break  # only the first (build) stage
                in_build = True
                continue
            if word == "WORKDIR":
                workdir = os.path.join(scratch, rest.lstrip("/"))
                os.makedirs(workdir, exist_ok=True)
            elif word == "COPY":
                parts = [p for p in shlex.split(rest) if not p.startswith("--")]
                *srcs, dest = parts
                for s in srcs:
                    files = cd.context_files(s, pats)
                    base = s.rstrip("/")
                    for f in files:
                        if os.path.isdir(os.path.join(cd.ROOT, s)):
                            target = os.path.join(workdir, dest, os.path.relpath(f, base))
                        elif dest.endswith("/") or len(srcs) > 1:
                            target = os.path.join(workdir, dest, os.path.basename(f))
                        else:
                            target = os.path.join(workdir, dest)
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        shutil.copy2(os.path.join(cd.ROOT, f), target)
                print(f"COPY {rest}")
            elif word == "RUN" and "dotnet" in rest:
                cmd = rest.replace(" /out/", f" {scratch}/out/").replace(" /rootfs/", f" {scratch}/rootfs/")
                print(f"RUN {' '.join(rest.split())[:110]} ...", flush=True)
                p = subprocess.run(["bash", "-ec", cmd], cwd=workdir, env=env, capture_output=True, text=True)
                with open(os.path.join(scratch, "build.log"), "a", encoding="utf-8") as log:
                    log.write(p.stdout + p.stderr)
                if p.returncode != 0:
                    print("\n".join((p.stdout + p.stderr).splitlines()[-40:]))
                    print(f"FAIL: RUN exited {p.returncode}")
                    return 1
        for exe in ("out/service/PmemService", "out/service/PmemService.dll", "out/client/pmemctl", "out/client/pmemctl.dll"):
            if not os.path.exists(os.path.join(scratch, exe)):
                print(f"FAIL: {exe} missing from the publish output")
                rc = 1
        if rc == 0:
            print(f"ok   build stage replayed for {args.arch}: {scratch}/out/service and out/client published")
        return rc
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
