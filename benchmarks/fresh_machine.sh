#!/usr/bin/env bash
# The quick demo as a new user meets it: a clean clone of HEAD in an empty directory (no
# ../shared beside it), HOME pointing at an empty folder (no model cache, no pip cache), no
# MECHSEL_DATA_DIR, then `bash scripts/setup.sh` (network cut too; if that fails, with it) and
# `.venv/bin/mechsel demo --quick` with the network cut off (`unshare -n`, as root). The demo's
# time is cold: the embedded model is converted inside it. Writes
# benchmarks/results/fresh_machine.txt. Run it on an otherwise idle machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/benchmarks/results/fresh_machine.txt"
base="$(mktemp -d)"
mkdir -p "$base/home" "$base/empty"
git clone -q "$root" "$base/empty/mechsel"
cd "$base/empty/mechsel"
setup_net="cut (unshare -n): packages from this machine's local wheel folders and indexes only"
if ! env -u MECHSEL_DATA_DIR HOME="$base/home" unshare -n bash scripts/setup.sh > "$base/setup.log" 2>&1; then
  setup_net="open (the install with the network cut failed: see the end of setup.log)"
  tail -5 "$base/setup.log" > "$base/setup-offline-tail.log"
  rm -rf .venv
  env -u MECHSEL_DATA_DIR HOME="$base/home" bash scripts/setup.sh > "$base/setup.log" 2>&1
fi
cpu="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
start=$(date +%s); start_h=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
status=0
env -u MECHSEL_DATA_DIR -u MECHSEL_CACHE_DIR -u XDG_CACHE_HOME HOME="$base/home" \
  unshare -n /usr/bin/time -v .venv/bin/mechsel demo --quick > "$base/demo.out" 2> "$base/demo.err" || status=$?
end=$(date +%s)
{
  echo "# CPU: ${cpu:-unknown}; cores: $(nproc); start: $start_h; clean clone of $(git rev-parse --short HEAD) in an empty directory"
  echo "# command: env -u MECHSEL_DATA_DIR HOME=<empty> unshare -n bash scripts/setup.sh; then, network cut: unshare -n .venv/bin/mechsel demo --quick"
  echo
  echo "setup network: $setup_net"
  [ -f "$base/setup-offline-tail.log" ] && sed 's/^/  offline setup: /' "$base/setup-offline-tail.log"
  echo "exit status: $status; ../shared present: $([ -e ../shared ] && echo yes || echo no); model cache before: empty"
  echo "Wall clock of the quick demo (model conversion included): $((end - start)) s; $(grep 'Maximum resident' "$base/demo.err" | sed 's/^[[:space:]]*//')"
  echo "Data read from: $(grep -o 'drawn from .*' results/demo-quick/run.log | sort -u | tr '\n' ' ')"
  echo
  echo "Per stage (manifest.json, seconds):"
  .venv/bin/python - <<'PY'
import json
m = json.load(open("results/demo-quick/manifest.json"))
for name, s in m["stages"].items():
    print(f"  {name:28s} {s.get('seconds', float('nan')):7.1f}")
PY
  echo
  echo "Printed by the demo:"
  cat "$base/demo.out"
} > "$out"
echo "wrote $out (folder: $base)"
