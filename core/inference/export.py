"""A trained network -> an ONNX graph of any batch size and image size, checked against torch.

The graph wraps the network with its input preparation and its softmax, so a caller hands it the
pictures as they come and gets probabilities back::

    images (N, H, W, 3) uint8 RGB  ->  ImageNet normalisation  ->  network  ->  softmax
    ->  probs (N, K, H, W) float32, each pixel summing to 1 over K

``N``, ``H`` and ``W`` are dynamic axes. The legacy TorchScript exporter is used: it exports a GFN
in about 2 s, where the ``torch.export`` exporter took about 50 s and fixed the batch size
(measured with torch 2.13). Tracing records one path through the network's Python branches, so
every export is verified on a second input of another batch size and shape before it is used.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from core.network.preprocess import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

OPSET = 17
INPUT = "images"
OUTPUT = "probs"

# Shapes (N, H, W) of the traced example and of the verification input: different batch sizes,
# sides and aspect ratios, none a multiple of the network's stride, so that a shape baked into the
# trace shows up as an error.
_TRACE_SHAPE = (2, 72, 104)
_CHECK_SHAPE = (3, 61, 45)
CHECK_TOLERANCE = 1e-3
"""Largest probability difference to torch accepted when verifying an export."""


class ExportError(RuntimeError):
    """The network could not be exported, or the exported graph disagrees with torch."""


class ProbsWrapper(nn.Module):
    """``images (N, H, W, 3) uint8 RGB -> probs (N, K, H, W) float32``: normalisation, ``net``, softmax.

    The same arithmetic as :func:`core.network.preprocess.to_input` followed by ``softmax(net(x), 1)``.
    The softmax is written out (``exp(z - max z) / sum``): ONNX Runtime's ``Softmax`` over axis 1 of
    an NCHW tensor transposes it there and back, about 4x slower (3.5 vs 0.9 ms at 2 x 240 x 320).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float() / 255.0
        z = self.net((x - self.mean) / self.std)
        e = torch.exp(z - z.amax(dim=1, keepdim=True))
        return e / e.sum(dim=1, keepdim=True)


@contextmanager
def _torch_ops_only(net: nn.Module) -> Iterator[None]:
    """Run modules that can choose a non-torch engine (e.g. a guided filter's OpenCV backend) on their
    torch backend while tracing: only torch operations become graph nodes."""
    changed = []
    for m in net.modules():
        backend = getattr(m, "backend", None)
        if isinstance(backend, str) and backend != "torch":
            changed.append((m, backend))
            setattr(m, "backend", "torch")  # noqa: B010  (a plain attribute of some modules)
    try:
        yield
    finally:
        for m, backend in changed:
            setattr(m, "backend", backend)  # noqa: B010


def _example(shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    n, h, w = shape
    return torch.from_numpy(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8))


def export_onnx(model: nn.Module) -> bytes:
    """Export ``model`` (``(N, 3, H, W)`` normalised float -> logits ``(N, K, H, W)``, e.g. a GFN)
    wrapped by :class:`ProbsWrapper` to ONNX, and verify the graph against torch.

    Returns the serialised ONNX model (``images`` ``(N, H, W, 3)`` uint8 -> ``probs``
    ``(N, K, H, W)`` float32). The model is put in eval mode for the export and left as it was.

    Raises:
        ExportError: the export failed, or the exported graph's probabilities differ from torch's
            by more than :data:`CHECK_TOLERANCE` on an input of another shape than the traced one.
    """
    was_training = model.training
    model.eval()
    wrapper = ProbsWrapper(model).eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad(), _torch_ops_only(model):
            warnings.simplefilter("ignore")  # TracerWarnings on shape checks, the exporter's deprecation note
            torch.onnx.export(
                wrapper,
                (_example(_TRACE_SHAPE, 0),),
                buf,  # type: ignore[arg-type]  # a file object is accepted
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "n", 1: "h", 2: "w"}, OUTPUT: {0: "n", 2: "h", 3: "w"}},
                opset_version=OPSET,
                dynamo=False,
            )
        data = buf.getvalue()
        _verify(wrapper, data)
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"ONNX export of {type(model).__name__} failed ({type(exc).__name__}: {exc})") from exc
    finally:
        model.train(was_training)
    log.debug("exported %s to ONNX (%.1f MB)", type(model).__name__, len(data) / 1e6)
    return data


def _verify(wrapper: ProbsWrapper, data: bytes) -> None:
    from core.inference.session import make_session

    x = _example(_CHECK_SHAPE, 1)
    with torch.no_grad():
        ref = wrapper(x).numpy()
    got = make_session(data, threads=1).run(None, {INPUT: x.numpy()})[0]
    if got.shape != ref.shape:
        raise ExportError(f"the exported graph gives shape {got.shape} where torch gives {ref.shape}")
    err = float(np.abs(got - ref).max())
    if not err <= CHECK_TOLERANCE:
        raise ExportError(f"the exported graph's probabilities differ from torch's by {err:.2g} (> {CHECK_TOLERANCE})")
