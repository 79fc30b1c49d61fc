#!/usr/bin/env bash
# Time the full `mechsel demo` cold from a clean clone of this repository's HEAD and report its
# power; writes benchmarks/results/demo_timing.txt. Takes about as long as the demo (run it on an
# otherwise idle machine: the timing is the point). The embedded model must already be
# converted in the cache (`.venv/bin/mechsel demo --quick` once does it).
# Usage: benchmarks/demo_timing.sh [extra `mechsel demo` arguments...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
out="$root/benchmarks/results/demo_timing.txt"
git clone -q "$root" "$work/clone"
cd "$work/clone"
bash scripts/setup.sh > "$work/setup.log" 2>&1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MECHSEL_DATA_DIR="${MECHSEL_DATA_DIR:-$(cd "$root/.." && pwd)/shared/data}"
cpu="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
start=$(date +%s); start_h=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
/usr/bin/time -v .venv/bin/mechsel demo --quiet "$@" > "$work/demo.out" 2> "$work/demo.err"
end=$(date +%s)
{
  echo "# CPU: ${cpu:-unknown}; cores: $(nproc); start: $start_h; clean clone of $(git rev-parse --short HEAD)"
  echo "# command: bash scripts/setup.sh && /usr/bin/time -v .venv/bin/mechsel demo --quiet $*"
  echo
  echo "Wall clock: $((end - start)) s; $(grep 'Maximum resident' "$work/demo.err" | sed 's/^[[:space:]]*//')"
  echo
  .venv/bin/python "$root/benchmarks/demo_report.py" results/demo --wall-seconds "$((end - start))"
  echo
  echo "Printed by the demo:"
  cat "$work/demo.out"
} > "$out"
echo "wrote $out (run folder: $work/clone/results/demo)"
