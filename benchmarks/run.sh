#!/usr/bin/env bash
# Run one benchmark and save its stdout as benchmarks/results/<name>.txt, preceded by two comment
# lines: the machine (CPU model, cores, UTC date, load average at start) and the exact command.
# stderr (progress bars, logging) goes to $BENCH_LOG (default ${TMPDIR:-/tmp}/mechsel-bench-<name>.log).
# On a shared machine, wrap it in the shared lock:  flock /tmp/mechsel/heavy.lock benchmarks/run.sh collect --n 256
# Usage: benchmarks/run.sh <collect|quality|icl_baseline|selectors|sae|scoring|scale> [script arguments...]
set -euo pipefail
name="$1"; shift
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
out="$root/benchmarks/results/$name.txt"
log="${BENCH_LOG:-${TMPDIR:-/tmp}/mechsel-bench-$name.log}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}" TQDM_DISABLE="${TQDM_DISABLE:-1}"
cpu="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
{
  echo "# CPU: ${cpu:-unknown}; cores: $(nproc); date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# command: python benchmarks/$name.py $*"
} > "$out"
cd "$root"
"$python" "benchmarks/$name.py" "$@" >> "$out" 2> "$log"
