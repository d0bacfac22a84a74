"""The initial-mask routes: one registry ``{name: Route}``, the single list of route names.

Each route is a module of this package exposing ``run(dataset, *, source, config, progress)``
for a whole dataset, optionally ``stream`` (the same, one image at a time) and, when it works on one
image, ``for_image(image, work, *, box, points, config)`` (signatures in ``base``).
``RunConfig.init``, the command line's ``--init``, the FiftyOne operator and
``initial_mask_for_image`` all read their choices from here. Heavy models load inside ``run``, never
at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from core.initial.routes import auto, cam, grabcut, otsu, transfer
from core.initial.routes.base import Route

ROUTES: Mapping[str, Route] = MappingProxyType(
    {
        route.name: route
        for route in (
            Route(name="auto", run=auto.run, stream=auto.stream, for_image=auto.for_image),
            Route(name="transfer", run=transfer.run, network=True),
            Route(name="otsu", run=otsu.run, for_image=otsu.for_image, network=True),
            Route(name="cam", run=cam.run, stream=cam.stream, for_image=cam.for_image),
            Route(name="grabcut", run=grabcut.run, stream=grabcut.stream, for_image=grabcut.for_image),
        )
    }
)
"""Every route by name (read-only); ``auto`` first, the default."""

ROUTE_NAMES: tuple[str, ...] = tuple(ROUTES)
"""Names accepted by ``make_initial_masks(route=...)`` and ``RunConfig.init``."""

INTERACTIVE_ROUTES: tuple[str, ...] = tuple(name for name, route in ROUTES.items() if route.for_image is not None)
"""Names accepted by ``initial_mask_for_image(route=...)``: the routes that work on one image."""

AUTO_RECIPE = auto.AUTO_RECIPE


def get_route(name: str) -> Route:
    """The route called ``name``; ``ValueError`` listing the valid names otherwise."""
    try:
        return ROUTES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown initial route {name!r}; valid routes: {list(ROUTES)}") from None


__all__ = ["AUTO_RECIPE", "INTERACTIVE_ROUTES", "ROUTES", "ROUTE_NAMES", "Route", "get_route"]
