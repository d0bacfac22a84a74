"""Label Studio ML backend for gfn-autolabel: a thin adapter from Label Studio's ML backend
protocol (``/health``, ``/setup``, ``/predict``, ``/webhook``, ``/train``, ``/versions``) to the
engine in ``core/``.

Layout (one idea per file):

- ``settings``: :class:`BackendSettings` read from the environment.
- ``label_config``: parse a labelling config (``BrushLabels``/``PolygonLabels`` + ``Image``).
- ``controls/``: one small class per control tag (brush RLE, polygons) turning masks into
  Label Studio results and back.
- ``prompts``: interactive prompts (rectangle, positive/negative keypoints) from a request context.
- ``fetch``: fetching task images safely (Label Studio URLs, allowed hosts, local roots, limits).
- ``store``: the per-project folder under ``MODEL_DIR`` (human masks, pseudo-labels, models).
- ``engine``: the only module that calls ``core`` (labelling, initial masks, training).
- ``model``: :class:`GFNSegmenter`, shaped like label-studio-ml's ``LabelStudioMLBase``.
- ``jobs``: background refinement rounds.
- ``runtime``: :class:`Backend`, what one worker process builds once and every route shares.
- ``routes``: the protocol's routes; ``errors``: exceptions as JSON answers; ``auth``: basic auth;
  ``metrics``: request counters.
- ``app``: ``create_app`` assembling those parts; ``cli``: ``gfn-autolabel serve-labelstudio``.
"""

from __future__ import annotations
