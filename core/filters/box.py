"""An O(N) box filter from cumulative sums: cost independent of the radius.

Borders are exact: each output pixel is the mean over the part of its ``(2r+1) x (2r+1)`` window
that lies inside the image (the window sum divided by the count map), as in He et al.'s
reference implementation, not a mean over padded values.
"""

from __future__ import annotations

import torch

__all__ = ["box_count", "box_filter"]


def _check_radius(r: object) -> int:
    if isinstance(r, bool) or not isinstance(r, int):
        raise TypeError(f"radius r must be an int, got {type(r).__name__} {r!r}")
    if r < 1:
        raise ValueError(f"radius r must be >= 1, got {r}")
    return r


def _window_sum_1d(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """Sum over ``[i - r, i + r]`` (clipped to the tensor) along ``dim``, via one cumulative sum.

    With ``S`` the inclusive cumulative sum extended by ``r + 1`` zeros in front and ``r`` copies
    of its last value behind, the window sum at ``i`` is ``S[i + 2r + 1] - S[i]`` (any ``r``).
    """
    n = x.shape[dim]
    cs = torch.cumsum(x, dim=dim)
    front = list(x.shape)
    front[dim] = r + 1
    back = list(x.shape)
    back[dim] = r
    ext = torch.cat([x.new_zeros(front), cs, cs.narrow(dim, n - 1, 1).expand(back)], dim=dim)
    return ext.narrow(dim, 2 * r + 1, n) - ext.narrow(dim, 0, n)


def box_count(
    h: int, w: int, r: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Number of in-image pixels in each pixel's window: ``(1, 1, h, w)``."""

    def counts(n: int) -> torch.Tensor:
        idx = torch.arange(n, device=device)
        return ((idx + r).clamp(max=n - 1) - (idx - r).clamp(min=0) + 1).to(dtype)

    return (counts(h)[:, None] * counts(w)[None, :])[None, None]


def box_filter(x: torch.Tensor, r: int, *, normalize: bool = True) -> torch.Tensor:
    """Mean (or sum) of ``x`` over each ``(2r+1) x (2r+1)`` window.

    Args:
        x: ``(N, C, H, W)`` floating tensor (any strides).
        r: window radius, an int >= 1.
        normalize: divide by the number of in-image pixels of each window (the mean); with
            ``False`` the window sum is returned.

    Returns:
        ``(N, C, H, W)`` tensor of the same dtype. Differentiable w.r.t. ``x``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating tensor, got dtype {x.dtype}")
    r = _check_radius(r)
    out = _window_sum_1d(_window_sum_1d(x, r, 2), r, 3)
    if normalize:
        out = out / box_count(x.shape[2], x.shape[3], r, dtype=x.dtype, device=x.device)
    return out
