#!/usr/bin/env bash
# The built wheel in an environment that already has another torch: a fresh virtual environment
# gets torch ${TORCH:-2.14.1} first (the CUDA build from PyPI; on this machine its wheel and the
# NVIDIA runtime wheels lie in the local index), then `pip install` of mechsel's wheel (built with
# `pip wheel --no-deps .`). Checks that torch is still the one installed before, that the wheel
# carries the packaged data, that `execution.engine: ray` without Ray gives one error line naming
# the extra, and runs `mechsel demo --quick` there with no data folder. Writes
# benchmarks/results/wheel_check.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/benchmarks/results/wheel_check.txt"
torch_version="${TORCH:-2.14.1}"
base="$(mktemp -d)"
cd "$base"
pip wheel --quiet --no-deps "$root" -w "$base/dist" > "$base/wheel.log" 2>&1
wheel="$(ls "$base"/dist/mechsel-*.whl)"
python3 -m venv "$base/env"
"$base/env/bin/python" -m pip install --quiet "torch==$torch_version" > "$base/torch.log" 2>&1
before="$("$base/env/bin/python" -c 'import torch; print(torch.__version__)')"
"$base/env/bin/python" -m pip install "$wheel" > "$base/install.log" 2>&1
after="$("$base/env/bin/python" -c 'import torch; print(torch.__version__)')"
data_files="$(unzip -l "$wheel" | grep -c 'mechsel/data/' || true)"
mkdir -p "$base/work" "$base/home"
cd "$base/work"
printf 'execution:\n  engine: ray\n' > ray.yaml
ray_line="$(env -u MECHSEL_DATA_DIR HOME="$base/home" "$base/env/bin/mechsel" run ray.yaml 2>&1 | tail -n 3 || true)"
start=$(date +%s)
status=0
env -u MECHSEL_DATA_DIR HOME="$base/home" MECHSEL_CACHE_DIR="${MECHSEL_CACHE_DIR:-$HOME/.cache/mechsel}" \
  "$base/env/bin/mechsel" demo --quick --quiet > "$base/demo.out" 2> "$base/demo.err" || status=$?
end=$(date +%s)
{
  echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'); wheel built from $(git -C "$root" rev-parse --short HEAD): $(basename "$wheel")"
  echo "torch before installing mechsel: $before; after: $after"
  echo "pip's lines about torch while installing the wheel:"
  grep -i 'torch' "$base/install.log" | sed 's/^/  /' | head -n 5
  echo "files under mechsel/data/ in the wheel: $data_files"
  echo "engine: ray without Ray installed prints:"
  echo "$ray_line" | sed 's/^/  /'
  echo "mechsel demo --quick in that environment (no data folder; model cache reused): exit $status, $((end - start)) s"
  grep -o 'drawn from .*' results/demo-quick/run.log 2>/dev/null | sort -u | sed 's/^/  data: /' || true
  tail -n 4 "$base/demo.out" | sed 's/^/  /'
  tail -n 3 "$base/demo.err" | sed 's/^/  stderr: /'
} > "$out"
echo "wrote $out (folder: $base)"
