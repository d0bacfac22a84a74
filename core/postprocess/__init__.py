"""Post-processing of predicted probabilities: GrabCut, dense CRF, guided filter; binary-mask clean-up.

Used after every refinement round (paper 002: GrabCut stops errors propagating) and by the
initial routes.
"""

from core.postprocess.clean import clean_binary
from core.postprocess.crf import CRFParams, dense_crf
from core.postprocess.grabcut import grabcut_refine, run_grabcut
from core.postprocess.guided import guided_refine
from core.postprocess.refine import METHODS, PostprocessConfig, refine_mask

__all__ = [
    "METHODS",
    "CRFParams",
    "PostprocessConfig",
    "clean_binary",
    "dense_crf",
    "grabcut_refine",
    "guided_refine",
    "refine_mask",
    "run_grabcut",
]
