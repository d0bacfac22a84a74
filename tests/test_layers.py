"""Which layer may import which: ``core`` never names its adapters, ``core.data`` never imports
``core.formats``; the adapters' sub-commands still reach ``gfn-autolabel`` through entry points."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import core.cli
from core.cli import PLUGIN_GROUP, build_parser, plugin_commands

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ("gfn_fiftyone", "labelstudio_backend")
ADAPTER_COMMANDS = {"fiftyone": "gfn_fiftyone.cli", "serve-labelstudio": "labelstudio_backend.cli"}


def _imports(source: str, package: str) -> list[str]:
    """Every module ``source`` (a module of ``package``) imports, at the top or inside functions,
    relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found += [module] + [f"{module}.{a.name}" for a in node.names]
    return found


def test_core_never_names_the_adapters():
    named = [
        f"{p.relative_to(ROOT)}: {a}"
        for p in sorted((ROOT / "core").rglob("*.py"))
        for a in ADAPTERS
        if a in p.read_text(encoding="utf-8")
    ]
    assert named == []


def test_data_never_imports_formats():
    upward = []
    for path in sorted((ROOT / "core" / "data").rglob("*.py")):
        package = ".".join(path.relative_to(ROOT).parts[:-1])
        upward += [
            f"{path.relative_to(ROOT)}: {m}"
            for m in _imports(path.read_text(encoding="utf-8"), package)
            if m == "core.formats" or m.startswith("core.formats.")
        ]
    assert upward == []


def test_the_import_scan_sees_lazy_and_relative_imports():
    source = "def f():\n    from ..formats import png\n    import core.formats.voc\n    from . import stems\n"
    found = set(_imports(source, "core.data"))
    assert {"core.formats", "core.formats.png", "core.formats.voc", "core.data.stems"} <= found


def test_adapter_commands_are_registered_entry_points():
    found = {ep.name: ep.value for ep in core.cli.entry_points(group=PLUGIN_GROUP)}
    assert found == ADAPTER_COMMANDS
    assert set(ADAPTER_COMMANDS) <= set(plugin_commands())
    usage = build_parser([]).format_help()
    assert "fiftyone" in usage and "serve-labelstudio" in usage


def test_a_missing_adapter_shows_unavailable(monkeypatch):
    for name in ("gfn_fiftyone", "gfn_fiftyone.cli"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ModuleNotFoundError
    usage = build_parser([]).format_help()
    lines = {ln.split()[0]: ln for ln in usage.splitlines() if ln.startswith("    ")}
    assert "(unavailable: " in lines["fiftyone"]
    assert usage.count("(unavailable: ") == 1 and "serve-labelstudio" in usage
    with pytest.raises(ModuleNotFoundError):
        build_parser(["fiftyone"])


def test_a_command_name_taken_twice_is_skipped_with_a_warning(monkeypatch, caplog):
    fake = [
        EntryPoint("run", "somewhere.else", PLUGIN_GROUP),
        EntryPoint("extra", "a.cli", PLUGIN_GROUP),
        EntryPoint("extra", "b.cli", PLUGIN_GROUP),
    ]
    monkeypatch.setattr(core.cli, "entry_points", lambda group: [ep for ep in fake if ep.group == group])
    with caplog.at_level(logging.WARNING, logger="gfn_autolabel"):
        found = plugin_commands()
    assert list(found) == ["extra"]
    with pytest.raises(ModuleNotFoundError, match="'a'"):
        found["extra"]()  # the first registration by value: a.cli
    assert "'run'" in caplog.text and "'somewhere.else'" in caplog.text and "'b.cli'" in caplog.text


def test_only_the_wanted_command_module_is_imported():
    code = (
        "import sys; from core.cli import build_parser; build_parser(['example']); "
        "print(sorted(m for m in sys.modules if m.startswith(('gfn_fiftyone', 'labelstudio_backend', "
        "'core.cli.run_cmd'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
