#!/usr/bin/env bash
# Make sure Debian's Chromium is installed, for the FiftyOne App browser test and the screenshots.
#
#   bash scripts/setup_browser.sh            # install chromium if missing (apt-get, needs root or sudo)
#   bash scripts/setup_browser.sh --check    # exit 0 if chromium is there, 1 otherwise (installs nothing)
#
# Quick and silent when Chromium is already there. The browser test (tests/test_fiftyone_browser.py)
# and scripts/screenshots.py drive it with playwright (python, in the virtualenv) through
# executable_path=/usr/bin/chromium; playwright's own browser download is not used.
set -euo pipefail

CHROMIUM="${GFN_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "[setup-browser] $CHROMIUM is missing" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[setup-browser] no apt-get here: install Chromium by hand and set GFN_CHROMIUM=/path/to/chromium" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "[setup-browser] installing chromium needs root: run 'apt-get install -y chromium' as root" >&2
    exit 1
  fi
fi
# One installation at a time (parallel make targets); a second caller waits, then finds it installed.
LOCK="${TMPDIR:-/tmp}/gfn-setup-browser.lock"
exec 9>"$LOCK"
flock 9
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
echo "[setup-browser] installing Debian's chromium (first run only, about a minute)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
if [ ! -x "$CHROMIUM" ]; then
  echo "[setup-browser] apt-get finished but $CHROMIUM is missing" >&2
  exit 1
fi
echo "[setup-browser] $("$CHROMIUM" --version 2>/dev/null || echo chromium) ready" >&2
