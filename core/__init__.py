"""gfn-autolabel engine: automatic pixel-level labelling from image-level labels.

Sub-packages name the parts of the method: ``data`` (datasets, example data), ``io`` (images,
atomic writes), ``formats`` (COCO / VOC / PNG masks), ``metrics``, ``filters`` (guided filter),
``network`` (the Guided Filter Network), ``training`` (trainer, prediction), ``initial``
(round-0 masks), ``refine`` (refinement rounds and run folders), ``cli``.
"""

__version__ = "0.1.0"
