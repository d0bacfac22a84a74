#!/usr/bin/env bash
# Create (once) a private virtualenv holding a real Label Studio for the end-to-end tests.
#
#   scripts/setup_labelstudio.sh            # -> ${GFN_CACHE:-$HOME/.cache/gfn-autolabel}/labelstudio-1.23.2
#   LABELSTUDIO_VENV=/some/dir scripts/setup_labelstudio.sh
#
# A second run reuses the venv. First run: about 1 GB and a few minutes, plus ~2 minutes to
# migrate a template sqlite database (<venv>/template-data) that the tests copy, so that each
# test start of Label Studio takes seconds instead of minutes. The venv is kept apart from the
# project's own venv because Label Studio pins Django and many other packages.
set -euo pipefail

LS_VERSION="${LABELSTUDIO_VERSION:-1.23.2}"
CACHE="${GFN_CACHE:-$HOME/.cache/gfn-autolabel}"
VENV="${LABELSTUDIO_VENV:-$CACHE/labelstudio-$LS_VERSION}"
PYTHON="${LABELSTUDIO_PYTHON:-python3}"
LOCK="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/requirements-labelstudio.lock"
MARKER="$VENV/.gfn-installed-$LS_VERSION-$(sha256sum "$LOCK" | cut -c1-16)"
TEMPLATE="$VENV/template-data"

# One set-up at a time (parallel callers wait here instead of installing over each other).
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.setup.lock"
flock 9

if [[ -f "$MARKER" && -x "$VENV/bin/label-studio" ]]; then
    echo "setup_labelstudio: reusing $VENV"
else
    echo "setup_labelstudio: installing label-studio==$LS_VERSION into $VENV (a few minutes, ~1 GB)"
    mkdir -p "$(dirname "$VENV")"
    if [[ ! -x "$VENV/bin/python" ]]; then
        "$PYTHON" -m venv "$VENV"
    fi
    # Exact versions from the lock (--no-deps: the lock is complete); nothing resolved afresh.
    PIP_FIND_LINKS=" " "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$LOCK"
    "$VENV/bin/python" -c "import label_studio; print('setup_labelstudio: label-studio', label_studio.__version__)"
    touch "$MARKER"
fi

if [[ ! -f "$TEMPLATE/label_studio.sqlite3" ]]; then
    echo "setup_labelstudio: migrating a template database into $TEMPLATE (~2 minutes, once)"
    TMP="$TEMPLATE.$$"
    rm -rf "$TMP" && mkdir -p "$TMP"
    (cd "$TMP" && env -i PATH="$PATH" HOME="$HOME" LABEL_STUDIO_BASE_DATA_DIR="$TMP" LATEST_VERSION_CHECK=false \
        COLLECT_ANALYTICS=false DJANGO_DB=sqlite "$VENV/bin/label-studio" version >/dev/null 2>&1)
    if [[ ! -f "$TMP/label_studio.sqlite3" ]]; then
        echo "setup_labelstudio: migration failed (no $TMP/label_studio.sqlite3)" >&2
        exit 1
    fi
    rm -rf "$TEMPLATE" && mv "$TMP" "$TEMPLATE"
fi
echo "setup_labelstudio: ready at $VENV"
