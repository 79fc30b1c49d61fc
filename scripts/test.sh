#!/usr/bin/env bash
# The README's test command: unit tier (tiny random models) then integration tier (the real
# embedded model, offline, real data from ../shared/data or $MECHSEL_DATA_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MECHSEL_DATA_DIR=${MECHSEL_DATA_DIR:-$(cd .. && pwd)/shared/data}
.venv/bin/python -m pytest tests "$@"
