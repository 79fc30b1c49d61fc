#!/usr/bin/env bash
# Issue 25's measurement on the full demo's SST-2 candidates: run configs/sst2_probe.yaml (the
# demo's SST-2 data, collection and quality; random, activation and probe over seeds 0-19) and
# summarise it; writes benchmarks/results/probe_sst2.txt. Cold, about 17 minutes on 2 idle cores.
# Pass an existing run folder of the demo (e.g. results/demo) to reuse its cached data, collect and
# quality stages (the stage keys are the same); the folder is then overwritten with this run.
# Usage: benchmarks/probe_sst2.sh [RUN_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$(mktemp -d)/sst2_probe}"
out="$root/benchmarks/results/probe_sst2.txt"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MECHSEL_DATA_DIR="${MECHSEL_DATA_DIR:-$(cd "$root/.." && pwd)/shared/data}"
cpu="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
start=$(date +%s); start_h=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
"$root/.venv/bin/mechsel" run "$root/configs/sst2_probe.yaml" --output "$dir" --overwrite --quiet > "$dir.out" 2> "$dir.err"
end=$(date +%s)
{
  echo "# CPU: ${cpu:-unknown}; cores: $(nproc); start: $start_h; commit $(git -C "$root" rev-parse --short HEAD)"
  echo "# command: mechsel run configs/sst2_probe.yaml --output $dir --overwrite --quiet"
  echo
  "$root/.venv/bin/python" "$root/benchmarks/probe_report.py" "$dir" --wall-seconds "$((end - start))"
} > "$out"
echo "wrote $out (run folder: $dir)"
