#!/usr/bin/env python3
"""Replay deploy/Dockerfile's build stage without a Docker engine (which CI here does not have).

Copies the build context (after .dockerignore) the way the build stage's COPY steps do into a scratch
directory, then runs its RUN steps that call dotnet (restore / publish) with TARGETARCH set, the
stage's absolute output paths (/out, /rootfs) remapped into the scratch directory. Catches a restore
layer that misses a project or build input, and publish errors, with the local .NET SDK in place of
the sdk:10.0-noble image. Slow (a real restore and publish): not part of deploy/check.sh.

  python3 deploy/simulate-build.py [--arch amd64|arm64] [--keep] [--root TREE] [--smoke]

--smoke (host architecture only) then replays docker-compose.yml on the published binaries, without
containers: the service with the compose environment (the /pmem and /run/pmem paths remapped into the
scratch directory, TCP on a free loopback port), the compose healthcheck command until it passes,
then each client service's entrypoint + command in depends_on order; the last read must print the
text the write stored. Also checks that PmemService__RequireDax=true refuses a non-DAX pool, and (as
root, with unshare and setpriv) runs the service and pmemctl the way the containers do: UID/GID 1654,
read-only root filesystem, a tmpfs /tmp, writable pool and socket directories only.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import yaml

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_deploy as cd  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="amd64")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--root", help="repository tree to build (default: this one)")
    ap.add_argument("--smoke", action="store_true", help="run docker-compose.yml's commands on the output")
    args = ap.parse_args()
    if args.root:
        cd.set_root(args.root)

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
        if rc == 0 and args.smoke:
            rc = smoke(scratch)
        return rc
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smoke(scratch: str) -> int:
    compose = cd.load_yaml(os.path.join(cd.ROOT, "docker-compose.yml"))
    services = compose["services"]
    svc = services["pmem-service"]
    pool, sockdir = os.path.join(scratch, "pmem"), os.path.join(scratch, "run-pmem")
    os.makedirs(pool)
    os.makedirs(sockdir)
    port = free_port()

    def remap(text: str) -> str:
        text = str(text).replace("/run/pmem", sockdir).replace("http://127.0.0.1:5001", f"http://127.0.0.1:{port}")
        text = text.replace("0.0.0.0:5001", f"127.0.0.1:{port}")
        return pool if text == "/pmem" else text

    def subst(value: str) -> str:  # ${VAR:-default} with an empty environment
        import re
        return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(value))
    env = {**os.environ, "ASPNETCORE_HTTP_PORTS": "", "DOTNET_CLI_TELEMETRY_OPTOUT": "1"}
    env.update({k: remap(subst(v)) for k, v in svc["environment"].items()})
    service_dir = os.path.join(scratch, "out", "service")
    client_dir = os.path.join(scratch, "out", "client")

    def exe(argv: list[str], base: str) -> list[str]:
        first = argv[0].replace("/app/", "./")
        return [os.path.join(base, os.path.basename(first))] + [remap(a) for a in argv[1:]]

    log = open(os.path.join(scratch, "service.log"), "w")
    proc = subprocess.Popen([os.path.join(service_dir, "PmemService")], cwd=service_dir, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        health = exe(svc["healthcheck"]["test"][1:], service_dir)
        deadline = time.time() + 60
        while True:
            p = subprocess.run(health, capture_output=True, text=True, cwd=service_dir)
            if p.returncode == 0:
                print(f"ok   smoke: compose healthcheck passes: {p.stdout.strip()}")
                break
            if proc.poll() is not None or time.time() > deadline:
                print(f"FAIL smoke: service not healthy ({p.stdout.strip()}); log:\n" + open(log.name).read()[-3000:])
                return 1
            time.sleep(0.5)
        # Clients in depends_on order.
        done, order = set(), []
        clients = {n: s for n, s in services.items() if n != "pmem-service"}
        while len(order) < len(clients):
            progressed = False
            for n, s in clients.items():
                if n not in done and all(d in done or d == "pmem-service" for d in s.get("depends_on", {})):
                    order.append(n)
                    done.add(n)
                    progressed = True
            if not progressed:
                print("FAIL smoke: depends_on cycle")
                return 1
        out = ""
        for n in order:
            s = clients[n]
            argv = exe(list(s["entrypoint"]) + list(s["command"]), client_dir)
            p = subprocess.run(argv, capture_output=True, text=True, cwd=client_dir, env=os.environ, timeout=60)
            print(f"     {n}: {' '.join(s['command'])} -> exit {p.returncode}: {(p.stdout + p.stderr).strip()[:200]}")
            if p.returncode != 0:
                print(f"FAIL smoke: client {n} failed")
                return 1
            out = p.stdout
        written = next((c for s in clients.values() for i, c in enumerate(s["command"]) if i and s["command"][i - 1] == "--text"), None)
        if written and written not in out:
            print(f"FAIL smoke: the last read did not print {written!r}")
            return 1
        mode = oct(os.stat(os.path.join(sockdir, "pmem.sock")).st_mode & 0o777)
        print(f"ok   smoke: the compose clients map, write and read back {written!r} over the Unix socket (mode {mode})")
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=30)
            print(f"ok   smoke: service stopped on SIGTERM (exit {rc})" if rc == 0 else f"FAIL smoke: exit {rc} on SIGTERM")
        except subprocess.TimeoutExpired:
            proc.kill()
            print("FAIL smoke: service did not stop within 30 s of SIGTERM")
        log.close()
    # RequireDax=true on an ordinary directory: the service must refuse to start.
    env2 = {**env, "PmemService__RequireDax": "true", "PmemService__TcpEndpoint": f"127.0.0.1:{free_port()}"}
    p = subprocess.run([os.path.join(service_dir, "PmemService")], cwd=service_dir, env=env2,
                       capture_output=True, text=True, timeout=60)
    if p.returncode == 0 or "RequireDax" not in (p.stdout + p.stderr):
        print(f"FAIL smoke: RequireDax=true on a non-DAX pool: exit {p.returncode}")
        return 1
    print(f"ok   smoke: RequireDax=true on a non-DAX pool refuses to start (exit {p.returncode})")
    return container_like(scratch)


CONTAINER_SCRIPT = r"""
set -e
C=$1 PORT=$2
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount --bind "$C/pmem" "$C/pmem"
mount --bind "$C/run-pmem" "$C/run-pmem"
mount -o remount,bind,ro /
if touch /.pmem-rw-test 2>/dev/null; then echo "root filesystem still writable"; exit 3; fi
as_app() { setpriv --reuid 1654 --regid 1654 --clear-groups "$@"; }
cd "$C/app"
PmemService__PoolPath=$C/pmem PmemService__UnixSocketPath=$C/run-pmem/pmem.sock PmemService__UnixSocketMode=0660 \
PmemService__TcpEndpoint=127.0.0.1:$PORT PmemService__RequireDax=false ASPNETCORE_HTTP_PORTS= \
  setpriv --reuid 1654 --regid 1654 --clear-groups ./PmemService >/tmp/service.log 2>&1 &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
ok=""
for i in $(seq 1 120); do
  if as_app ./PmemService health --address http://127.0.0.1:$PORT --service readiness >/tmp/health 2>&1; then ok=1; break; fi
  sleep 0.5
done
[ -n "$ok" ] || { cat /tmp/health /tmp/service.log; exit 4; }
cd "$C/client"
export PMEM_ADDRESS=unix://$C/run-pmem/pmem.sock
as_app ./pmemctl map ro --size 64KiB --create >/dev/null
as_app ./pmemctl write ro@0 --text ro-ok >/dev/null
as_app ./pmemctl read ro@0:5 --format text
kill -TERM $pid
wait $pid
trap - EXIT
"""


def container_like(scratch: str) -> int:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        print("skip smoke: container-like run needs root, unshare and setpriv")
        return 0
    # Outside /tmp, which becomes a fresh tmpfs inside the mount namespace.
    c = tempfile.mkdtemp(prefix="pmem-ctr-", dir="/var/tmp")
    try:
        return _container_like(scratch, c)
    finally:
        shutil.rmtree(c, ignore_errors=True)


def _container_like(scratch: str, c: str) -> int:
    for d in ("pmem", "run-pmem"):
        os.makedirs(os.path.join(c, d))
        os.chown(os.path.join(c, d), 1654, 1654)
        os.chmod(os.path.join(c, d), 0o770)
    os.chmod(c, 0o755)
    shutil.copytree(os.path.join(scratch, "out", "service"), os.path.join(c, "app"))
    shutil.copytree(os.path.join(scratch, "out", "client"), os.path.join(c, "client"))
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", CONTAINER_SCRIPT, "ctr", c, str(free_port())],
                       capture_output=True, text=True, timeout=180)
    if p.returncode != 0 or p.stdout.strip() != "ro-ok":
        print(f"FAIL smoke: container-like run (uid 1654, read-only /): exit {p.returncode}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
        return 1
    owner = os.stat(os.path.join(c, "pmem", "ro"))
    print(f"ok   smoke: as UID 1654 on a read-only root filesystem (tmpfs /tmp) the service serves, pmemctl "
          f"maps/writes/reads, SIGTERM exits 0; region file owned by {owner.st_uid}:{owner.st_gid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
