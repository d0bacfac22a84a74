"""Initial (round-0) masks from image-level labels (paper 001 IV-A, paper 002 III-B/C).

Routes: ``transfer`` (a related labelled source or a VOC-pretrained torchvision model),
``otsu`` (simple-to-complex: Otsu on automatically picked simple-background images, then a GFN),
``cam`` (class activation maps + dense CRF), ``grabcut`` (GrabCut seeded by a coarse map),
``auto`` (transfer with a source, else GrabCut fused with the dense-CRF'd coarse map; measured
best on bench/initial_routes.py). One module per route in ``core.initial.routes``, whose registry
``ROUTES`` is the single list of route names.
``stream_initial_masks`` hands the masks out one image at a time (the map routes then hold only the
images in flight); the map routes' per-image work runs in ``InitConfig.workers`` processes.
Heavy models load lazily on first use, never at import time.
"""

from core.initial.api import make_initial_masks, stream_initial_masks
from core.initial.config import InitConfig
from core.initial.interactive import initial_mask_for_image
from core.initial.result import InitialResult, InitialStream
from core.initial.routes import AUTO_RECIPE, INTERACTIVE_ROUTES, ROUTES

__all__ = [
    "AUTO_RECIPE",
    "INTERACTIVE_ROUTES",
    "ROUTES",
    "InitConfig",
    "InitialResult",
    "InitialStream",
    "initial_mask_for_image",
    "make_initial_masks",
    "stream_initial_masks",
]
