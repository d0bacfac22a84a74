"""``gfn-autolabel fiftyone install``: put the plugin where FiftyOne finds it.

    gfn-autolabel fiftyone install [--dir PLUGINS_DIR] [--copy] [--force]
    gfn-autolabel fiftyone path

``install`` links (or with ``--copy`` copies) this package's folder, which holds ``fiftyone.yml``,
to ``PLUGINS_DIR/gfn_fiftyone`` (default: ``fo.config.plugins_dir``). Alternatively set
``FIFTYONE_PLUGINS_DIR`` to a folder containing that link. ``path`` prints the plugin folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

PLUGIN_NAME = "@gfn-autolabel/gfn"
LINK_NAME = "gfn_fiftyone"


def plugin_dir() -> Path:
    """The folder holding ``fiftyone.yml`` (this package)."""
    return Path(__file__).resolve().parent


def default_plugins_dir() -> Path | None:
    """``fo.config.plugins_dir`` (honours ``FIFTYONE_PLUGINS_DIR`` and the FiftyOne config file)."""
    env = os.environ.get("FIFTYONE_PLUGINS_DIR")
    if env:
        return Path(env).expanduser()
    import fiftyone.core.config as foc

    d = foc.load_config().plugins_dir
    return Path(d).expanduser() if d else None


def install(dest_root: Path, *, copy: bool = False, force: bool = False) -> Path:
    """Link (or copy) the plugin to ``dest_root/gfn_fiftyone``; returns that path.

    An existing entry is kept if it already points at this plugin; anything else there raises
    ``FileExistsError`` unless ``force``.
    """
    src = plugin_dir()
    dest = Path(dest_root).expanduser() / LINK_NAME
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        same = dest.is_symlink() and dest.resolve() == src
        if same and not copy:
            log.info("%s already links to %s", dest, src)
            return dest
        if not force:
            raise FileExistsError(f"{dest} already exists; pass --force to replace it")
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        else:
            shutil.rmtree(dest)
    if copy:
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        dest.symlink_to(src, target_is_directory=True)
    return dest


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "fiftyone",
        help="install the FiftyOne plugin (@gfn-autolabel/gfn)",
        description="FiftyOne plugin helpers. 'install' links the plugin into FiftyOne's plugins "
        "folder; alternatively set FIFTYONE_PLUGINS_DIR to a folder containing a link "
        "to the folder printed by 'path'.",
    )
    actions = p.add_subparsers(dest="fiftyone_action", metavar="ACTION")
    actions.required = True
    ins = actions.add_parser("install", help="link (or copy) the plugin into the FiftyOne plugins folder")
    ins.add_argument(
        "--dir", metavar="PLUGINS_DIR", help="plugins folder (default: fo.config.plugins_dir / $FIFTYONE_PLUGINS_DIR)"
    )
    ins.add_argument("--copy", action="store_true", help="copy instead of symlinking (core must then be installed)")
    ins.add_argument("--force", action="store_true", help="replace an existing entry of the same name")
    actions.add_parser("path", help="print the plugin folder (the one holding fiftyone.yml)")
    return p


def run(args: argparse.Namespace) -> int:
    from core.cli import CLIError

    if args.fiftyone_action == "path":
        print(plugin_dir())
        return 0
    root = Path(args.dir).expanduser() if args.dir else default_plugins_dir()
    if root is None:
        raise CLIError("FiftyOne has no plugins_dir configured; pass --dir PLUGINS_DIR")
    try:
        dest = install(root, copy=args.copy, force=args.force)
    except FileExistsError as exc:
        raise CLIError(str(exc)) from None
    print(
        f"installed {PLUGIN_NAME} at {dest} -> {plugin_dir()}" if not args.copy else f"copied {PLUGIN_NAME} to {dest}"
    )
    if args.dir and Path(args.dir).expanduser().resolve() != (default_plugins_dir() or Path()).resolve():
        print(f"FiftyOne looks in its plugins_dir; set FIFTYONE_PLUGINS_DIR={root} to use this folder")
    print("check with: fiftyone plugins list")
    return 0
