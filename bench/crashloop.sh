#!/usr/bin/env bash
# The long SIGKILL crash loop: the CI test (tests/PmemService.FaultTests, CrashLoopTests) with more kills.
#   bash bench/crashloop.sh [KILLS] [SECONDS] [SEED]      (defaults: 200 kills, 900 s budget, random seed)
# Prints the figures line: kills, acknowledged writes, bytes verified (file and ReadRegion), bytes lost.
set -euo pipefail
cd "$(dirname "$0")/.."
export PMEM_CRASHLOOP_KILLS=${1:-200} PMEM_CRASHLOOP_SECONDS=${2:-900}
if [ -n "${3:-}" ]; then export PMEM_CRASHLOOP_SEED=$3; fi
dotnet test tests/PmemService.FaultTests/PmemService.FaultTests.csproj -c Release \
  --filter "FullyQualifiedName~CrashLoopTests" --logger "console;verbosity=detailed" 2>&1 \
  | grep -E "crash loop:|Passed|Failed|Error Message|Assert" | sort -u
