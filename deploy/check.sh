#!/usr/bin/env bash
# Offline checks of the deployment files (no Docker engine, no helm): run from anywhere,
#   bash deploy/check.sh
# One line per check ("ok" / "FAIL"), exit status non-zero when any check fails. .ci/run calls it;
# it needs docker-compose (1.29, Debian), yamllint, python3-yaml and python3-jsonschema, which
# .ci/run installs (apt-get install docker-compose yamllint python3-yaml python3-jsonschema).
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1
cd "$(dirname "$0")/.."

failures=0
ok()   { printf 'ok   %s\n' "$1"; }
fail() { printf 'FAIL %s\n' "$1"; failures=$((failures + 1)); }

# Debian's python3 carries python3-yaml / python3-jsonschema; a python3 earlier on PATH (pyenv,
# venv) may not, so prefer the first interpreter that imports both.
py=""
for cand in /usr/bin/python3 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import yaml, jsonschema' 2>/dev/null; then
    py=$cand
    break
  fi
done

# --- docker-compose.yml ------------------------------------------------------------------------
if command -v docker-compose >/dev/null 2>&1; then
  # An empty environment for the interpolated variables, so the defaults are what gets validated.
  if out=$(env -u PMEM_DIR -u PMEM_UID -u PMEM_GID -u PMEM_REQUIRE_DAX -u PMEM_TCP_PORT \
             docker-compose -f docker-compose.yml config -q 2>&1); then
    ok "docker-compose config (docker-compose.yml, defaults)"
  else
    fail "docker-compose config (docker-compose.yml, defaults): $out"
  fi
  if out=$(env -u PMEM_DIR -u PMEM_UID -u PMEM_GID -u PMEM_REQUIRE_DAX -u PMEM_TCP_PORT \
             docker-compose -f docker-compose.yml -f deploy/compose.tcp-auth.yml config 2>&1) \
     && grep -q 'PmemService__TcpAuthentication__ClientCaPath: /run/secrets/pmem-client-ca' <<<"$out" \
     && grep -q 'unix:/run/pmem/pmem.sock' <<<"$out"; then
    ok "docker-compose config (deploy/compose.tcp-auth.yml override: TCP authentication from secrets, socket health probe)"
  else
    fail "docker-compose config (deploy/compose.tcp-auth.yml override): $out"
  fi
  if out=$(PMEM_DIR=/mnt/pmem0/pmem-service PMEM_UID=1000 PMEM_GID=1000 PMEM_REQUIRE_DAX=true \
             docker-compose -f docker-compose.yml config 2>&1) \
     && grep -q '/mnt/pmem0/pmem-service:/pmem' <<<"$out" \
     && grep -q 'uid=1000,gid=1000' <<<"$out" \
     && grep -q "user: 1000:1000" <<<"$out"; then
    ok "docker-compose config (PMEM_DIR / PMEM_UID overrides reach the service and the socket volume)"
  else
    fail "docker-compose config with overrides: $out"
  fi
  # The validator must be able to fail: a copy with a misspelt key is rejected.
  tmp=$(mktemp -d)
  sed 's/^\(    \)read_only: true/\1read_onyl: true/' docker-compose.yml >"$tmp/docker-compose.yml"
  if (cd "$tmp" && docker-compose config -q >/dev/null 2>&1); then
    fail "docker-compose config rejects a misspelt key (it accepted 'read_onyl')"
  else
    ok "docker-compose config rejects a misspelt key"
  fi
  rm -rf "$tmp"
else
  fail "docker-compose not installed (apt-get install docker-compose)"
fi

# --- every YAML file ---------------------------------------------------------------------------
if command -v yamllint >/dev/null 2>&1; then
  if out=$(yamllint -f parsable -c deploy/yamllint.yaml . 2>&1); then
    n=$(yamllint -c deploy/yamllint.yaml --list-files . 2>/dev/null | wc -l)
    warnings=$(grep -c '\[warning\]' <<<"$out" || true)
    ok "yamllint: $n YAML files parse (helm templates skipped; $warnings style warnings)"
  else
    fail "yamllint: $(grep '\[error\]' <<<"$out")"
  fi
else
  fail "yamllint not installed (apt-get install yamllint)"
fi

# --- Dockerfile, Helm chart, Kubernetes manifests ----------------------------------------------
if [ -n "$py" ]; then
  "$py" deploy/check_deploy.py || failures=$((failures + $?))
  # Each seeded defect (deploy/check_selftest.py) must be caught by the check meant for it.
  "$py" deploy/check_selftest.py || failures=$((failures + 1))
else
  fail "python3 with yaml and jsonschema not found (apt-get install python3-yaml python3-jsonschema)"
fi

if [ "$failures" -ne 0 ]; then
  echo "deploy/check.sh: $failures check(s) failed"
  exit 1
fi
echo "deploy/check.sh: all checks passed"
