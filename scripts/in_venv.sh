#!/usr/bin/env bash
# Run a command inside the project's virtualenv, setting it up first if needed.
#   bash scripts/in_venv.sh gfn-autolabel demo
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(bash "$ROOT/scripts/setup_env.sh" --print-venv)"
export PATH="$VENV/bin:$PATH" VIRTUAL_ENV="$VENV"
export FIFTYONE_DO_NOT_TRACK=true
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
cd "$ROOT"
exec "$@"
