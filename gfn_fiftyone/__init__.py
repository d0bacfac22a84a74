"""FiftyOne plugin ``@gfn-autolabel/gfn``: pixel-level auto-labelling from image-level labels.

This folder is both the plugin directory (``fiftyone.yml``) and the Python package
``gfn_fiftyone``. FiftyOne loads this file under its own module name and calls :func:`register`;
the operators live in the ``gfn_fiftyone`` package so that they share ``core`` with everything
else. Importing this package does not import FiftyOne (the CLI's ``install`` stays fast).
"""

from __future__ import annotations

import os
import sys

_PLUGIN_DIR = os.path.dirname(os.path.realpath(__file__))
_REPO_ROOT = os.path.dirname(_PLUGIN_DIR)
if os.path.isdir(os.path.join(_REPO_ROOT, "core")) and _REPO_ROOT not in sys.path:
    # a source checkout (the plugin linked into the plugins dir): make ``core`` and this package importable
    sys.path.insert(0, _REPO_ROOT)
elif os.path.basename(_PLUGIN_DIR) == "gfn_fiftyone" and _REPO_ROOT not in sys.path:
    # a copied plugin: this package is importable from its parent; ``core`` must be installed
    sys.path.append(_REPO_ROOT)


def register(plugin) -> None:
    """Called by FiftyOne with the plugin context: register the operators and the panel."""
    from gfn_fiftyone.operators import OPERATORS
    from gfn_fiftyone.panel import RunsPanel
    from gfn_fiftyone.review import operators as review_operators

    for cls in (*OPERATORS, *review_operators()):
        plugin.register(cls)
    plugin.register(RunsPanel)
