"""``gfn-autolabel`` command line: one module per sub-command, each with ``add_parser`` and ``run``.

The engine's own commands are listed in ``COMMANDS``. Other installed packages add theirs through
the entry-point group ``gfn_autolabel.commands`` (``name = "package.module"`` in their
``pyproject.toml``), so the engine never names the packages built on it.

Sub-command modules are imported only when their command runs, so ``--help`` stays fast and a
missing optional dependency of one command does not break the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from functools import partial
from importlib.metadata import entry_points
from types import ModuleType

from core import __version__

# command name -> module under core.cli; each exposes
# ``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
COMMANDS: dict[str, str] = {
    "run": "core.cli.run_cmd",
    "export": "core.cli.export_cmd",
    "train": "core.cli.train_cmd",
    "predict": "core.cli.predict_cmd",
    "convert": "core.cli.convert_cmd",
    "evaluate": "core.cli.evaluate_cmd",
    "report": "core.cli.report_cmd",
    "example": "core.cli.example_cmd",
    "demo": "core.cli.demo_cmd",
}

PLUGIN_GROUP = "gfn_autolabel.commands"
"""Entry-point group through which installed packages add sub-commands (value: the module)."""

log = logging.getLogger("gfn_autolabel")


class CLIError(Exception):
    """An error to show the user as one clear line (exit code 2), without a traceback."""


def plugin_commands() -> dict[str, Callable[[], ModuleType]]:
    """``{name: loader}`` for the sub-commands registered under ``PLUGIN_GROUP``, sorted by name.

    A loader imports the command's module when called. A name taken by one of the engine's own
    commands, or registered twice, is skipped with a warning.
    """
    found: dict[str, Callable[[], ModuleType]] = {}
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: (e.name, e.value)):
        if ep.name in COMMANDS or ep.name in found:
            log.warning(
                "ignoring sub-command %r = %r from entry-point group %s: the name is already taken",
                ep.name,
                ep.value,
                PLUGIN_GROUP,
            )
            continue
        found[ep.name] = ep.load
    return found


def command_loaders() -> dict[str, Callable[[], ModuleType]]:
    """``{name: loader}`` for every sub-command: the engine's own first, then the registered ones."""
    own = {name: partial(importlib.import_module, module) for name, module in COMMANDS.items()}
    return {**own, **plugin_commands()}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gfn-autolabel",
        description="Automatic pixel-level labelling from image-level labels (Guided Filter Network).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = next((a for a in argv if not a.startswith("-")), None)
    loaders = command_loaders()
    for name, load in loaders.items():
        if wanted is not None and wanted in loaders and name != wanted:
            sub.add_parser(name, help=f"see gfn-autolabel {name} --help")
            continue
        try:
            mod = load()
        except ModuleNotFoundError as exc:
            if wanted == name:
                raise
            sub.add_parser(name, help=f"(unavailable: {exc})")
            continue
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except CLIError as exc:
        print(f"gfn-autolabel {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, OSError, KeyError) as exc:  # OSError: missing, existing, unreadable paths
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"gfn-autolabel {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        print(
            f"gfn-autolabel {args.command}: error: not enough memory ({exc or 'an input is too large'})",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"gfn-autolabel {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
