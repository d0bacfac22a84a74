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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.filters.box import _check_radius, box_filter

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


def guided_filter(I: torch.Tensor, p: torch.Tensor, r: int, eps: Eps) -> torch.Tensor:
    """Filter ``p`` guided by ``I``.

    Args:
        I: guidance ``(N, C, H, W)`` floating; ``C == 1`` gray formula, ``C > 1`` colour formula.
        p: signal ``(N, K, H, W)``, same dtype and ``N, H, W`` as ``I``; channels filtered independently.
        r: window radius (int >= 1).
        eps: regularisation > 0 on the scale of ``I``'s variance (``I`` in 0..1: eps ~ 1e-4..1e-1),
            a float or a tensor (scalar or ``(N,)``), differentiable when a tensor.

    Returns:
        ``(N, K, H, W)`` filtered signal.
    """
    _check_pair(I, p)
    r = _check_radius(r)
    eps = _check_eps(eps)
    a, b = _coefficients(I, p, r, eps)
    mean_a, mean_b = _mean_ab(a, b, r)
    return _apply(mean_a, mean_b, I)


def fast_guided_filter(I_lr: torch.Tensor, p_lr: torch.Tensor, I_hr: torch.Tensor, r: int, eps: Eps) -> torch.Tensor:
    """Fast guided filter: coefficients at low resolution, applied at high resolution.

    ``a, b`` are computed from ``I_lr (N, C, h, w)`` and ``p_lr (N, K, h, w)`` with radius ``r``
    (in low-resolution pixels), box-averaged, upsampled bilinearly to ``I_hr (N, C, H, W)``'s size and
    applied there: ``q = mean(a)^ . I_hr + mean(b)^``. Returns ``(N, K, H, W)``.
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
