"""Initial (round-0) masks from image-level labels (paper 001 IV-A, paper 002 III-B/C).

Routes: ``transfer`` (a related labelled source or a VOC-pretrained torchvision model),
``otsu`` (simple-to-complex: Otsu on automatically picked simple-background images, then a GFN),
``cam`` (class activation maps + dense CRF), ``grabcut`` (GrabCut seeded by a coarse map),
``auto`` (transfer with a source, else GrabCut fused with the dense-CRF'd coarse map; measured
best on bench/initial_routes.py).
Heavy models load lazily on first use, never at import time.
"""

from core.initial.api import AUTO_RECIPE, InitialResult, make_initial_masks
from core.initial.config import ROUTES, InitConfig
from core.initial.interactive import INTERACTIVE_ROUTES, initial_mask_for_image

__all__ = ["AUTO_RECIPE", "INTERACTIVE_ROUTES", "ROUTES", "InitConfig", "InitialResult", "initial_mask_for_image",
           "make_initial_masks"]
