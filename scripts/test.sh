#!/usr/bin/env bash
# The README's test command: unit tier (tiny random models) then integration tier (the real
# embedded model, offline, real data from $MECHSEL_DATA_DIR, else ../shared/data). Tests that read
# the full datasets' files fail without one of the two (the demo itself runs on the packaged subset).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# ../shared/data when it exists and MECHSEL_DATA_DIR is unset
if [ -z "${MECHSEL_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  export MECHSEL_DATA_DIR="$(cd ../shared/data && pwd)"
fi
.venv/bin/python -m pytest tests "$@"
