#!/usr/bin/env bash
# Create .venv and install mechsel with pinned dependencies, CPU torch first so that no
# dependency pulls a multi-GB CUDA build. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -c requirements/lock.txt -e ".[dev,ray]"

# Static figures (PNG/SVG): kaleido drives a Chromium. Skip when mechsel already finds one
# (BROWSER_PATH, PATH, typical paths, kaleido's download); else install Debian's when we can
# (root + apt-get, as on CI). Never fail the setup over it.
if .venv/bin/python -c 'import sys; from mechsel.plots.io import chromium_path; sys.exit(chromium_path() is None)' 2>/dev/null; then
  :
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1; then
    echo "setup: 'apt-get install chromium' failed: figures will be HTML only. For PNG/SVG install chromium or set BROWSER_PATH to a Chromium/Chrome binary."
  fi
else
  echo "setup: no Chromium found: figures will be HTML only. For PNG/SVG install chromium (e.g. sudo apt-get install chromium) or set BROWSER_PATH to a Chromium/Chrome binary."
fi
