#!/usr/bin/env bash
# Packaging check (run by .ci/run): `dotnet pack` produces the pmemctl .NET tool and the SDK packages,
# and the tool installs from the packed folder alone (a NuGet.Config with only that source: no network)
# and runs. Prints "ok"/"FAIL" lines; exit status non-zero on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok()   { printf 'ok   %s\n' "$1"; }
bad()  { printf 'FAIL %s\n' "$1"; fail=1; }

for proj in src/pmemctl/pmemctl.csproj src/PmemService.Contracts/PmemService.Contracts.csproj src/PmemService.Client/PmemService.Client.csproj; do
  if ! out=$(dotnet pack "$proj" -c Release -o "$tmp/nupkg" 2>&1); then
    bad "dotnet pack $proj: $(grep -E 'error' <<<"$out" | head -3)"
  fi
done

cat >"$tmp/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="packed" value="$tmp/nupkg" />
  </packageSources>
</configuration>
XML

if out=$(dotnet tool install --tool-path "$tmp/tools" --configfile "$tmp/nuget.config" pmemctl 2>&1); then
  version=$("$tmp/tools/pmemctl" --version 2>&1)
  help=$("$tmp/tools/pmemctl" --help 2>&1)
  if [[ "$version" == 0.1.0* ]] && grep -q 'put' <<<"$help" && grep -q 'Usage:' <<<"$help"; then
    ok "pmemctl: dotnet pack + dotnet tool install from the packed folder only; 'pmemctl --version' = $version, --help lists the commands"
  else
    bad "installed pmemctl did not run: --version '$version'; --help: $(head -3 <<<"$help")"
  fi
else
  bad "dotnet tool install pmemctl: $out"
fi

# The SDK package: library, XML docs, README, metadata and its dependency on the contracts package.
py=$(command -v /usr/bin/python3 || command -v python3)
if "$py" - "$tmp/nupkg" <<'PY'
import glob, re, sys, zipfile
d = sys.argv[1]
problems = []
for pkg, dll, dep in (("PmemService.Client", "lib/net10.0/PmemService.Client.dll", "PmemService.Contracts"),
                      ("PmemService.Contracts", "lib/net10.0/PmemService.Contracts.dll", "Google.Protobuf")):
    files = glob.glob(f"{d}/{pkg}.0.1.0.nupkg")
    if not files:
        problems.append(f"{pkg}.0.1.0.nupkg missing"); continue
    z = zipfile.ZipFile(files[0])
    names = z.namelist()
    if dll not in names:
        problems.append(f"{pkg}: {dll} not packed")
    nuspec = z.read(next(n for n in names if n.endswith(".nuspec"))).decode()
    for tag in ("description", "authors", "tags"):
        if not re.search(f"<{tag}>[^<]+</{tag}>", nuspec):
            problems.append(f"{pkg}: no <{tag}>")
    if f'id="{dep}"' not in nuspec:
        problems.append(f"{pkg}: no dependency on {dep}")
    if pkg == "PmemService.Client":
        if "lib/net10.0/PmemService.Client.xml" not in names or "README.md" not in names:
            problems.append(f"{pkg}: XML docs or README.md not packed")
        if 'id="Grpc.Net.ClientFactory"' not in nuspec:
            problems.append(f"{pkg}: no dependency on Grpc.Net.ClientFactory (AddPmemClient)")
for p in problems:
    print("       -", p)
sys.exit(1 if problems else 0)
PY
then
  ok "SDK packages: PmemService.Client and PmemService.Contracts 0.1.0 with library, docs, README, metadata and dependencies"
else
  bad "SDK packages incomplete"
fi
exit $fail
