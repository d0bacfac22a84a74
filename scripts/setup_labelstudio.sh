#!/usr/bin/env bash
# Create (once) a private virtualenv holding a real Label Studio for the end-to-end tests.
#
#   scripts/setup_labelstudio.sh            # installs into ${GFN_CACHE:-$HOME/.cache/gfn-autolabel}/labelstudio-1.23.2
#   LABELSTUDIO_VENV=/some/dir scripts/setup_labelstudio.sh
#
# A second run reuses the venv (it only checks that `label-studio --version` works). About 1 GB
# and a few minutes on first install. The venv is kept apart from the project's own venv because
# Label Studio pins Django and many other packages.
set -euo pipefail

LS_VERSION="${LABELSTUDIO_VERSION:-1.23.2}"
CACHE="${GFN_CACHE:-$HOME/.cache/gfn-autolabel}"
VENV="${LABELSTUDIO_VENV:-$CACHE/labelstudio-$LS_VERSION}"
PYTHON="${LABELSTUDIO_PYTHON:-python3}"
MARKER="$VENV/.gfn-installed-$LS_VERSION"

if [[ -f "$MARKER" && -x "$VENV/bin/label-studio" ]]; then
    echo "setup_labelstudio: reusing $VENV"
    exit 0
fi

echo "setup_labelstudio: installing label-studio==$LS_VERSION into $VENV (a few minutes, ~1 GB)"
mkdir -p "$(dirname "$VENV")"
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "label-studio==$LS_VERSION"
# a smoke check that the entry point imports
"$VENV/bin/python" -c "import label_studio; print('label-studio', label_studio.__version__)"
touch "$MARKER"
echo "setup_labelstudio: ready at $VENV"
