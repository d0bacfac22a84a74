"""The initial-mask route registry is the one list of route names: every reader takes it from there."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from core.initial import INTERACTIVE_ROUTES, ROUTES, initial_mask_for_image
from core.initial.routes import ROUTE_NAMES, Route, get_route

EXPECTED = ("auto", "transfer", "otsu", "cam", "grabcut")


def test_registry_names_and_order():
    assert tuple(ROUTES) == ROUTE_NAMES == EXPECTED
    for name, route in ROUTES.items():
        assert isinstance(route, Route) and route.name == name


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        ROUTES["magic"] = ROUTES["auto"]  # type: ignore[index]


@pytest.mark.parametrize("name", EXPECTED)
def test_routes_share_one_signature(name):
    route = get_route(name)
    params = inspect.signature(route.run).parameters
    assert list(params) == ["dataset", "source", "config", "progress"]
    assert all(params[p].kind is inspect.Parameter.KEYWORD_ONLY for p in ("source", "config", "progress"))
    if route.for_image is not None:
        assert list(inspect.signature(route.for_image).parameters) == ["image", "work", "box", "points", "config"]


def test_unknown_route_error_lists_every_name():
    with pytest.raises(ValueError, match="unknown initial route 'magic'") as err:
        get_route("magic")
    assert all(name in str(err.value) for name in EXPECTED)
    with pytest.raises(ValueError, match="valid routes"):
        get_route(["auto"])  # type: ignore[arg-type]


def test_run_config_accepts_exactly_the_registry():
    from core.refine.config import INIT_ROUTES, RunConfig

    assert tuple(INIT_ROUTES) == ROUTE_NAMES
    for name in ROUTE_NAMES:
        init = RunConfig.from_dict({"init": name}).init
        assert getattr(init, "route", init) == name  # the route, flat or in RunConfig's init section
    with pytest.raises(ValueError) as err:
        RunConfig.from_dict({"init": "magic"})
    assert all(name in str(err.value) for name in ROUTE_NAMES)


def test_interactive_and_network_routes_come_from_the_registry():
    from core.refine.initial_round import NETWORK_ROUTES

    assert set(INTERACTIVE_ROUTES) == {"auto", "grabcut", "cam", "otsu"}
    assert set(NETWORK_ROUTES) == {"transfer", "otsu"}
    assert tuple(n for n, r in ROUTES.items() if r.for_image is not None) == INTERACTIVE_ROUTES
    assert tuple(n for n, r in ROUTES.items() if r.network) == NETWORK_ROUTES


def test_interactive_refuses_a_dataset_only_route():
    import numpy as np

    with pytest.raises(ValueError, match="for a single image") as err:
        initial_mask_for_image(np.zeros((8, 8, 3), np.uint8), 1, route="transfer")
    assert all(name in str(err.value) for name in INTERACTIVE_ROUTES)


def test_importing_the_registry_does_not_import_torch():
    code = (
        "import sys, core.initial.routes; "
        "assert 'torch' not in sys.modules, 'torch imported'; "
        "assert 'core.initial.coarse' not in sys.modules, 'a route module imported its models eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
