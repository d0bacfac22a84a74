"""The guided filter of He et al. (ECCV 2010 / TPAMI 2013) and its fast variant (He & Sun 2015).

For each window ``w_k`` of radius ``r`` (paper 001, eqs. 2-3; He et al. eqs. 5-8)::

    a_k = cov_k(I, p) / (var_k(I) + eps)        # gray guidance, C == 1
    a_k = (Sigma_k + eps U)^-1 cov_k(I, p)      # colour guidance, C > 1 (He et al. eq. 14)
    b_k = mean_k(p) - a_k . mean_k(I)
    q_i = mean_{k: i in w_k}(a_k) . I_i + mean_{k: i in w_k}(b_k)

Guidance with ``C > 1`` channels uses the full colour formula (a ``C x C`` solve per pixel; a
closed-form inverse when ``C == 3``, ``torch.linalg.solve`` otherwise). Each of the ``K`` signal
channels is filtered independently with the same guidance. Means use the O(N) box filter of
:mod:`core.filters.box` (exact at the borders). Everything is differentiable w.r.t. ``I``, ``p``
and ``eps`` when ``eps`` is a tensor.

Two backends compute the same thing (``backend=``):

- ``"torch"``: the equations in torch ops (any device and floating dtype, double backward).
- ``"cpu"``: :mod:`core.filters.cpu`, OpenCV window sums and NumPy arithmetic plane by plane, with
  a hand-written backward (an ``autograd.Function``; first derivatives only). For CPU ``float32`` /
  ``float64`` tensors, ``C`` in 1, 2, 3 and a scalar or per-image ``eps``. Several times faster than
  ``"torch"`` and faster than ``cv2.ximgproc.guidedFilter`` (``bench/guided_bench.py``); equal to
  ``"torch"`` to rounding (``tests/test_guided_filter.py``).
- ``"auto"`` (default): ``"cpu"`` whenever it applies, else ``"torch"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from core.filters.box import _check_radius, box_filter

try:  # the CPU engine needs OpenCV; without it everything runs on the torch backend
    from core.filters import cpu as _cpu
except ImportError:  # pragma: no cover - opencv is a dependency
    _cpu = None  # type: ignore[assignment]

__all__ = ["FastGuidedFilter", "GuidedFilter", "box_filter", "fast_guided_filter", "guided_filter"]

Eps = float | torch.Tensor


def _check_tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    return x


def _check_eps(eps: object) -> Eps:
    if isinstance(eps, torch.Tensor):
        if eps.numel() == 0 or bool((eps.detach() <= 0).any()):
            raise ValueError(f"eps must be > 0, got {eps}")
        return eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"eps must be a float or a tensor, got {type(eps).__name__} {eps!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    return float(eps)


def _eps_4d(eps: Eps, ref: torch.Tensor) -> Eps:
    """A tensor ``eps`` of shape ``()``, ``(N,)`` or broadcastable to ``(N, 1, H, W)``."""
    if isinstance(eps, torch.Tensor):
        eps = eps.to(ref.dtype)
        if eps.ndim == 1:
            eps = eps.view(-1, 1, 1, 1)
    return eps


def _check_pair(I: torch.Tensor, p: torch.Tensor, I_name: str = "I", p_name: str = "p") -> None:
    _check_tensor(I_name, I)
    _check_tensor(p_name, p)
    if I.shape[0] != p.shape[0] or I.shape[2:] != p.shape[2:]:
        raise ValueError(f"{I_name} {tuple(I.shape)} and {p_name} {tuple(p.shape)} must share batch size and H x W")
    if I.dtype != p.dtype:
        raise TypeError(f"{I_name} ({I.dtype}) and {p_name} ({p.dtype}) must have the same dtype")
    if I.device != p.device:
        raise ValueError(f"{I_name} ({I.device}) and {p_name} ({p.device}) must be on the same device")


def _inverse_3x3(m: list[list[torch.Tensor]]) -> list[list[torch.Tensor]]:
    """Closed-form inverse (adjugate / determinant) of per-pixel symmetric 3x3 matrices."""
    a, b, c = m[0]
    _, e, f = m[1]
    i = m[2][2]
    A = e * i - f * f
    B = c * f - b * i
    C = b * f - c * e
    E = a * i - c * c
    Fm = b * c - a * f
    I_ = a * e - b * b
    det = a * A + b * B + c * C
    return [[A / det, B / det, C / det], [B / det, E / det, Fm / det], [C / det, Fm / det, I_ / det]]


def _coefficients(I: torch.Tensor, p: torch.Tensor, r: int, eps: Eps) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-window linear coefficients.

    Returns ``a`` of shape ``(N, K, C, H, W)`` and ``b`` of shape ``(N, K, H, W)``.
    """
    n, c, h, w = I.shape
    k = p.shape[1]
    eps = _eps_4d(eps, I)
    Ip = (I[:, None] * p[:, :, None]).reshape(n, k * c, h, w)  # I_c * p_k
    if c == 1:
        stats = box_filter(torch.cat([I, p, I * I, Ip], dim=1), r)
        mean_I, mean_p, mean_II, mean_Ip = stats[:, :1], stats[:, 1 : 1 + k], stats[:, 1 + k : 2 + k], stats[:, 2 + k :]
        var_I = mean_II - mean_I * mean_I  # sigma_k^2
        cov_Ip = mean_Ip - mean_I * mean_p  # cov_k(I, p)
        a = cov_Ip / (var_I + eps)  # He eq. 5
        b = mean_p - a * mean_I  # He eq. 6
        return a[:, :, None], b
    iu = [(i, j) for i in range(c) for j in range(i, c)]
    II = torch.stack([I[:, i] * I[:, j] for i, j in iu], dim=1)
    stats = box_filter(torch.cat([I, p, II, Ip], dim=1), r)
    mean_I, mean_p = stats[:, :c], stats[:, c : c + k]
    mean_II = stats[:, c + k : c + k + len(iu)]
    mean_Ip = stats[:, c + k + len(iu) :].reshape(n, k, c, h, w)
    cov_Ip = mean_Ip - mean_I[:, None] * mean_p[:, :, None]  # (N, K, C, H, W)
    entries: dict[tuple[int, int], torch.Tensor] = {}
    for t, (i, j) in enumerate(iu):  # Sigma_k + eps U
        s = mean_II[:, t] - mean_I[:, i] * mean_I[:, j]
        if i == j:
            s = s + (eps[:, 0] if isinstance(eps, torch.Tensor) and eps.ndim == 4 else eps)
        entries[i, j] = entries[j, i] = s
    sigma = [[entries[i, j] for j in range(c)] for i in range(c)]
    if c == 3:
        inv = _inverse_3x3(sigma)
        a = torch.stack(  # He eq. 14: a_k = (Sigma_k + eps U)^-1 cov_k(I, p)
            [
                inv[i][0][:, None] * cov_Ip[:, :, 0]
                + inv[i][1][:, None] * cov_Ip[:, :, 1]
                + inv[i][2][:, None] * cov_Ip[:, :, 2]
                for i in range(3)
            ],
            dim=2,
        )
    else:
        mat = torch.stack([torch.stack(row, dim=-1) for row in sigma], dim=-2)  # (N, H, W, C, C)
        rhs = cov_Ip.permute(0, 3, 4, 2, 1)  # (N, H, W, C, K)
        a = torch.linalg.solve(mat, rhs).permute(0, 4, 3, 1, 2)  # (N, K, C, H, W)
    b = mean_p - (a * mean_I[:, None]).sum(dim=2)  # He eq. 15
    return a, b


def _apply(mean_a: torch.Tensor, mean_b: torch.Tensor, I: torch.Tensor) -> torch.Tensor:
    """``q = mean(a) . I + mean(b)``: ``(N, K, C, H, W)``, ``(N, K, H, W)``, ``(N, C, H, W)`` -> ``(N, K, H, W)``."""
    return (mean_a * I[:, None]).sum(dim=2) + mean_b


def _mean_ab(a: torch.Tensor, b: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    n, k, c, h, w = a.shape
    out = box_filter(torch.cat([a.reshape(n, k * c, h, w), b], dim=1), r)
    return out[:, : k * c].reshape(n, k, c, h, w), out[:, k * c :]


BACKENDS = ("auto", "cpu", "torch")


def _cpu_applies(I: torch.Tensor, eps: Eps) -> bool:
    """Whether the CPU engine computes this call (see the module docstring)."""
    if _cpu is None or I.device.type != "cpu" or I.dtype not in (torch.float32, torch.float64) or I.shape[1] > 3:
        return False
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():  # an export records torch ops only
        return False
    if isinstance(eps, torch.Tensor):
        return eps.numel() == 1 or tuple(eps.shape) == (I.shape[0],)
    return True


def _use_cpu(backend: str, I: torch.Tensor, eps: Eps) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    ok = _cpu_applies(I, eps)
    if backend == "cpu" and not ok:
        raise ValueError(
            "backend='cpu' needs OpenCV, CPU float32/float64 tensors, 1 to 3 guidance channels and a scalar "
            f"or (N,) eps; got {I.device} {I.dtype} with {I.shape[1]} guidance channels"
        )
    return ok if backend == "auto" else backend == "cpu"


def _eps_per_image(eps: Eps, I: torch.Tensor) -> torch.Tensor:
    """``eps`` as an ``(N,)`` tensor (differentiable when ``eps`` is)."""
    n = I.shape[0]
    if isinstance(eps, torch.Tensor):
        return eps.to(torch.float64).reshape(-1).expand(n)
    return torch.full((n,), eps, dtype=torch.float64)


def _planes(x: torch.Tensor) -> torch.Tensor:
    """A detached C-contiguous CPU tensor (a view when ``x`` already is one): ``(N, C, H, W)``."""
    return x.detach().contiguous()


def _empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor on NumPy-allocated memory (see :func:`core.filters.cpu.new_plane`)."""
    return torch.from_numpy(np.empty(shape, dtype=torch.empty((), dtype=dtype).numpy().dtype))


def _needs_grad(*xs: Any) -> bool:
    return torch.is_grad_enabled() and any(isinstance(x, torch.Tensor) and x.requires_grad for x in xs)


def _cpu_guided(
    I: torch.Tensor, p: torch.Tensor, eps: torch.Tensor, r: int, keep: bool
) -> tuple[torch.Tensor, Any, Any]:
    """The CPU engine on the whole batch: ``(out, saved state or None, box)``."""
    assert _cpu is not None  # checked by _cpu_applies
    Ip, pp = _planes(I), _planes(p)
    n, c, h, w = I.shape
    k = p.shape[1]
    out = _empty(tuple(p.shape), p.dtype)
    box = _cpu.Box(n, h, w, r, Ip.numpy().dtype)
    eps_p = eps.detach().to(I.dtype).reshape(n, 1, 1)
    planes_I, planes_p = [Ip[:, i] for i in range(c)], [pp[:, j] for j in range(k)]
    saved = _cpu.guided(planes_I, planes_p, eps_p, box, [out[:, j] for j in range(k)], keep=keep)
    box.arena.close(keep=_state_planes(saved))
    return out, saved, box


def _cpu_coefficients(
    I: torch.Tensor, p: torch.Tensor, eps: torch.Tensor, r: int, keep: bool
) -> tuple[torch.Tensor, torch.Tensor, Any, Any]:
    """Box-averaged coefficients ``(N, K, C, h, w)``, ``(N, K, h, w)`` on the CPU engine, state, box."""
    assert _cpu is not None  # checked by _cpu_applies
    Ip, pp = _planes(I), _planes(p)
    n, c, h, w = I.shape
    k = p.shape[1]
    mean_a, mean_b = _empty((n, k, c, h, w), p.dtype), _empty((n, k, h, w), p.dtype)
    box = _cpu.Box(n, h, w, r, Ip.numpy().dtype)
    eps_p = eps.detach().to(I.dtype).reshape(n, 1, 1)
    A, Bb, saved = _cpu.coefficients([Ip[:, i] for i in range(c)], [pp[:, j] for j in range(k)], eps_p, box, keep=keep)
    for j in range(k):
        mean_b[:, j] = Bb[j]
        for m in range(c):
            mean_a[:, j, m] = A[j][m]
    box.arena.close(keep=_state_planes(saved))
    return mean_a, mean_b, saved, box


def _state_planes(state: Any) -> list[torch.Tensor]:
    return [] if state is None else list(state.planes())


Grads = tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]


def _cpu_backward(ctx: Any, grads: Grads) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
    """Stack the engine's per-channel gradients into ``(N, C, H, W)``, ``(N, K, H, W)``, ``(N,)``."""
    I, p = ctx.saved_tensors
    gI, gp = _empty(tuple(I.shape), I.dtype), _empty(tuple(p.shape), p.dtype)
    for c, g in enumerate(grads[0]):
        gI[:, c] = g
    for k, g in enumerate(grads[1]):
        gp[:, k] = g
    ctx.box.arena.close(keep=_state_planes(ctx.engine_state))  # (kept for a retain_graph=True backward)
    return gI, gp, grads[2].to(ctx.eps_dtype), None


class _GuidedFilterCPU(torch.autograd.Function):
    """:func:`guided_filter` on the CPU engine with its hand-written backward."""

    @staticmethod
    def forward(ctx: Any, I: torch.Tensor, p: torch.Tensor, eps_n: torch.Tensor, r: int) -> torch.Tensor:
        out, ctx.engine_state, ctx.box = _cpu_guided(I, p, eps_n, r, keep=True)
        ctx.save_for_backward(I, p)  # (checks that nobody modified them in place before backward)
        ctx.eps_dtype = eps_n.dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        assert _cpu is not None
        _, p = ctx.saved_tensors
        g = _planes(gq.to(p.dtype))
        grads = _cpu.guided_backward(ctx.engine_state, [g[:, k] for k in range(g.shape[1])], ctx.box)
        return _cpu_backward(ctx, grads)


class _CoefficientsCPU(torch.autograd.Function):
    """Box-averaged coefficients ``(mean_a, mean_b)`` on the CPU engine (for the fast guided filter)."""

    @staticmethod
    def forward(
        ctx: Any, I: torch.Tensor, p: torch.Tensor, eps_n: torch.Tensor, r: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mean_a, mean_b, ctx.engine_state, ctx.box = _cpu_coefficients(I, p, eps_n, r, keep=True)
        ctx.save_for_backward(I, p)
        ctx.eps_dtype = eps_n.dtype
        return mean_a, mean_b

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, g_a: torch.Tensor, g_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        assert _cpu is not None
        _, p = ctx.saved_tensors
        ga, gb = _planes(g_a.to(p.dtype)), _planes(g_b.to(p.dtype))
        k, c = ga.shape[1], ga.shape[2]
        gA = [[ga[:, j, m] for m in range(c)] for j in range(k)]
        grads = _cpu.coefficients_backward(ctx.engine_state, gA, [gb[:, j] for j in range(k)], ctx.box)
        return _cpu_backward(ctx, grads)


def guided_filter(I: torch.Tensor, p: torch.Tensor, r: int, eps: Eps, *, backend: str = "auto") -> torch.Tensor:
    """Filter ``p`` guided by ``I``.

    Args:
        I: guidance ``(N, C, H, W)`` floating; ``C == 1`` gray formula, ``C > 1`` colour formula.
        p: signal ``(N, K, H, W)``, same dtype and ``N, H, W`` as ``I``; channels filtered independently.
        r: window radius (int >= 1).
        eps: regularisation > 0 on the scale of ``I``'s variance (``I`` in 0..1: eps ~ 1e-4..1e-1),
            a float or a tensor (scalar or ``(N,)``), differentiable when a tensor.
        backend: ``"auto"``, ``"cpu"`` or ``"torch"`` (module docstring); all give the same values.

    Returns:
        ``(N, K, H, W)`` filtered signal.
    """
    _check_pair(I, p)
    r = _check_radius(r)
    eps = _check_eps(eps)
    if _use_cpu(backend, I, eps):
        eps_n = _eps_per_image(eps, I)
        if _needs_grad(I, p, eps_n):
            out: torch.Tensor = _GuidedFilterCPU.apply(I, p, eps_n, r)
            return out
        return _cpu_guided(I, p, eps_n, r, keep=False)[0]
    a, b = _coefficients(I, p, r, eps)
    mean_a, mean_b = _mean_ab(a, b, r)
    return _apply(mean_a, mean_b, I)


def fast_guided_filter(
    I_lr: torch.Tensor, p_lr: torch.Tensor, I_hr: torch.Tensor, r: int, eps: Eps, *, backend: str = "auto"
) -> torch.Tensor:
    """Fast guided filter: coefficients at low resolution, applied at high resolution.

    ``a, b`` are computed from ``I_lr (N, C, h, w)`` and ``p_lr (N, K, h, w)`` with radius ``r``
    (in low-resolution pixels), box-averaged, upsampled bilinearly to ``I_hr (N, C, H, W)``'s size and
    applied there: ``q = mean(a)^ . I_hr + mean(b)^``. Returns ``(N, K, H, W)``. ``backend`` as in
    :func:`guided_filter` (for the low-resolution coefficients).
    """
    _check_pair(I_lr, p_lr, "I_lr", "p_lr")
    _check_tensor("I_hr", I_hr)
    if I_hr.shape[:2] != I_lr.shape[:2] or I_hr.dtype != I_lr.dtype:
        raise ValueError(
            f"I_hr {tuple(I_hr.shape)} {I_hr.dtype} must match I_lr {tuple(I_lr.shape)} {I_lr.dtype} "
            "in batch size, channels and dtype"
        )
    r = _check_radius(r)
    eps = _check_eps(eps)
    if _use_cpu(backend, I_lr, eps):
        eps_n = _eps_per_image(eps, I_lr)
        if _needs_grad(I_lr, p_lr, eps_n):
            mean_a, mean_b = _CoefficientsCPU.apply(I_lr, p_lr, eps_n, r)
        else:
            mean_a, mean_b = _cpu_coefficients(I_lr, p_lr, eps_n, r, keep=False)[:2]
    else:
        a, b = _coefficients(I_lr, p_lr, r, eps)
        mean_a, mean_b = _mean_ab(a, b, r)
    n, k, c, h, w = mean_a.shape
    size = I_hr.shape[2:]
    up = F.interpolate(
        torch.cat([mean_a.reshape(n, k * c, h, w), mean_b], dim=1), size=size, mode="bilinear", align_corners=False
    )
    return _apply(up[:, : k * c].reshape(n, k, c, *size), up[:, k * c :], I_hr)


class GuidedFilter(nn.Module):
    """``nn.Module`` over :func:`guided_filter`; ``r`` and ``eps`` are plain attributes (settable)."""

    def __init__(self, r: int, eps: float) -> None:
        super().__init__()
        self.r = _check_radius(r)
        self.eps = _check_eps(eps)

    def forward(self, I: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``I (N, C, H, W)``, ``p (N, K, H, W)`` -> ``(N, K, H, W)``."""
        return guided_filter(I, p, self.r, self.eps)

    def extra_repr(self) -> str:
        return f"r={self.r}, eps={self.eps}"


class FastGuidedFilter(GuidedFilter):
    """``nn.Module`` over :func:`fast_guided_filter`."""

    def forward(self, I_lr: torch.Tensor, p_lr: torch.Tensor, I_hr: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """``I_lr (N, C, h, w)``, ``p_lr (N, K, h, w)``, ``I_hr (N, C, H, W)`` -> ``(N, K, H, W)``."""
        return fast_guided_filter(I_lr, p_lr, I_hr, self.r, self.eps)
