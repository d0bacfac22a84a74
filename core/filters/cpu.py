"""The guided filter on CPU tensors: OpenCV window sums + in-place torch arithmetic, forward and backward.

The engine behind :func:`core.filters.guided.guided_filter` for CPU ``float32``/``float64`` tensors
with 1, 2 or 3 guidance channels. It evaluates the same equations as the torch backend (He et al.
eqs. 5-8 / 14-16) with the same exact borders: every window mean is the mean over the in-image
part of the window, i.e. ``cv2.boxFilter`` with zero padding (OpenCV sums float input in double)
times ``(2r+1)^2 / count`` on the ``r``-wide border strips. ``cv2.ximgproc.guidedFilter`` differs
only there: it pads by reflection (``BORDER_REFLECT``), so its results differ from ours within
``2r`` pixels of the border and agree inside (``tests/test_guided_filter.py`` checks both).

Everything works on ``(N, H, W)`` planes, one per channel (arithmetic over the whole batch at
once, OpenCV one image at a time), so nothing of shape ``(N, H, W, C, C)`` is ever built; the
colour (and two-channel) inverse is the closed-form adjugate. Arithmetic is torch's (in place,
fused ``addcmul``, multi-threaded) on NumPy-allocated planes that OpenCV reads and writes without
copies, recycled between calls (:class:`Arena`). The backward pass is the chain rule through the
same equations, written out by hand; the box mean is ``B = F S / (2r+1)^2`` (``S`` the symmetric
zero-padded window sum, ``F`` the border factors), so ``B^T g = S(F g) / (2r+1)^2``.
``gradcheck`` checks it against finite differences.
"""

# ruff: noqa: E741  (`I` is the guide image, as in the paper's equations, like core/filters/guided.py)
from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

__all__ = ["Arena", "Box", "Saved", "coefficients", "coefficients_backward", "guided", "guided_backward"]

Plane = torch.Tensor  # (N, H, W) CPU tensor, float32 or float64, each (H, W) slice contiguous


_POOL_BYTES = 256 * 2**20  # planes kept for reuse between calls, at most (bytes)
_pool: dict[tuple[tuple[int, ...], str], list[np.ndarray]] = {}  # (NumPy: no inference-mode flag)
_pool_bytes = 0
_pool_lock = threading.Lock()


class Arena:
    """Planes of one shape and dtype for one call, recycled through a small process-wide pool.

    A megapixel plane freshly allocated costs about 1,000 page faults (the memory is returned to the
    system when freed); a colour filter needs ~30 of them per call, which took half its CPU time.
    Planes handed out are returned to the pool by :meth:`close` (except those still in use), and the
    pool keeps at most ``_POOL_BYTES``.
    """

    def __init__(self, shape: tuple[int, int, int], dtype: np.dtype) -> None:
        self.shape, self.dtype = shape, np.dtype(dtype)
        self.key = (shape, self.dtype.str)
        self.handed: list[Plane] = []

    def new(self) -> Plane:
        """An uninitialised ``(N, H, W)`` plane."""
        global _pool_bytes
        arr = None
        with _pool_lock:
            free = _pool.get(self.key)
            if free:
                arr = free.pop()
                _pool_bytes -= arr.nbytes
        x = torch.from_numpy(np.empty(self.shape, dtype=self.dtype) if arr is None else arr)
        self.handed.append(x)
        return x

    def zeros(self) -> Plane:
        return self.new().zero_()

    def close(self, keep: Sequence[Plane] = ()) -> None:
        """Return every plane handed out to the pool, except those in ``keep`` (still in use)."""
        global _pool_bytes
        kept = {x.data_ptr() for x in keep}
        with _pool_lock:
            free = _pool.setdefault(self.key, [])
            for x in self.handed:
                arr = x.numpy()
                if x.data_ptr() not in kept and _pool_bytes + arr.nbytes <= _POOL_BYTES:
                    free.append(arr)
                    _pool_bytes += arr.nbytes
        self.handed = []


@functools.lru_cache(maxsize=32)
def _border_factors(
    h: int, w: int, r: int, dtype: str
) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(2r+1)^2 / count`` on the border strips (or on the whole plane when the strips would cover it)."""

    def factor(n: int) -> np.ndarray:  # (2r+1) / (in-image length of the window) along one axis
        idx = np.arange(n)
        return (2 * r + 1) / (np.minimum(idx + r, n - 1) - np.maximum(idx - r, 0) + 1).astype(np.float64)

    fy, fx = factor(h), factor(w)
    if 2 * r >= min(h, w):
        full = np.outer(fy, fx).astype(dtype)
        return full, (full, full), (full, full)
    m = r

    def outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.outer(a, b).astype(dtype)

    rows = (outer(fy[:m], fx), outer(fy[h - m :], fx))  # (m, w): top, bottom strips
    cols = (outer(fy[m : h - m], fx[:m]), outer(fy[m : h - m], fx[w - m :]))  # (h - 2m, m): left, right
    return None, rows, cols


class Box:
    """The exact-border window mean ``B`` of radius ``r`` on ``(H, W)`` planes, and its adjoint.

    ``cv2.boxFilter`` (zero padding, ``normalize=True``) divides every window sum by ``(2r+1)^2``;
    only the border strips (``r`` rows and columns on each side) need the factor ``(2r+1)^2 / count``
    that turns it into the mean over the in-image part of the window. New planes come from ``arena``.
    """

    def __init__(self, n: int, h: int, w: int, r: int, dtype: np.dtype) -> None:
        self.ksize = (2 * r + 1, 2 * r + 1)
        self.arena = Arena((n, h, w), dtype)
        self.m = min(r, h, w)
        full, rows, cols = _border_factors(h, w, r, np.dtype(dtype).str)  # (NumPy: shared across calls)
        self.factor = None if full is None else torch.from_numpy(full)
        self.rows = (torch.from_numpy(rows[0]), torch.from_numpy(rows[1]))
        self.cols = (torch.from_numpy(cols[0]), torch.from_numpy(cols[1]))

    def new(self) -> Plane:
        return self.arena.new()

    def _fix(self, x: Plane) -> Plane:
        """Multiply ``x`` in place by the border factor map; returns ``x``."""
        if self.factor is not None:
            return x.mul_(self.factor)
        m, h, w = self.m, x.shape[-2], x.shape[-1]
        x[..., :m, :].mul_(self.rows[0])
        x[..., h - m :, :].mul_(self.rows[1])
        x[..., m : h - m, :m].mul_(self.cols[0])
        x[..., m : h - m, w - m :].mul_(self.cols[1])
        return x

    def _box(self, x: Plane, out: Plane | None = None) -> Plane:
        """Window sum / ``(2r+1)^2`` with zero padding (a new plane, or ``out``)."""
        out = self.new() if out is None else out
        for xi, oi in zip(x, out, strict=True):  # one (H, W) image at a time
            cv2.boxFilter(xi.numpy(), -1, self.ksize, dst=oi.numpy(), normalize=True, borderType=cv2.BORDER_CONSTANT)
        return out

    def mean(self, x: Plane, out: Plane | None = None) -> Plane:
        """``B x``: mean over the in-image part of each window (a new plane, or ``out``)."""
        return self._fix(self._box(x, out))

    def mean_t(self, g: Plane, *, overwrite: bool = False) -> Plane:
        """``B^T g`` (the adjoint of :meth:`mean`: the border factors first, then the window mean).

        With ``overwrite`` ``g`` is used as scratch (its values are lost).
        """
        if not overwrite:
            g = self.new().copy_(g)
        return self._box(self._fix(g))


def _pairs(c: int) -> list[tuple[int, int]]:
    """Upper-triangle index pairs ``(i, j), i <= j`` of a ``c x c`` symmetric matrix."""
    return [(i, j) for i in range(c) for j in range(i, c)]


def _sym(i: int, j: int) -> tuple[int, int]:
    return (i, j) if i <= j else (j, i)


def _inverse(s: dict[tuple[int, int], Plane], c: int, box: Box) -> dict[tuple[int, int], Plane]:
    """Closed-form inverse of per-pixel symmetric ``c x c`` matrices (``c`` in 1, 2, 3), upper triangle.

    Consumes ``s`` (its planes are reused as outputs).
    """
    if c == 1:
        return {(0, 0): s[0, 0].reciprocal_()}
    if c == 2:
        a, b, d = s[0, 0], s[0, 1], s[1, 1]
        inv_det = torch.mul(a, d, out=box.new()).addcmul_(b, b, value=-1).reciprocal_()
        a, d = torch.mul(d, inv_det, out=box.new()), a.mul_(inv_det)
        return {(0, 0): a, (0, 1): b.mul_(inv_det).neg_(), (1, 1): d}
    a, b, c_ = s[0, 0], s[0, 1], s[0, 2]
    e, f, i = s[1, 1], s[1, 2], s[2, 2]
    A = torch.mul(e, i, out=box.new()).addcmul_(f, f, value=-1)
    B = torch.mul(c_, f, out=box.new()).addcmul_(b, i, value=-1)
    C = torch.mul(b, f, out=box.new()).addcmul_(c_, e, value=-1)
    E = torch.mul(a, i, out=box.new()).addcmul_(c_, c_, value=-1)
    Fm = torch.mul(b, c_, out=box.new()).addcmul_(a, f, value=-1)
    I_ = torch.mul(a, e, out=box.new()).addcmul_(b, b, value=-1)
    inv_det = torch.mul(a, A, out=box.new()).addcmul_(b, B).addcmul_(c_, C).reciprocal_()
    for x in (A, B, C, E, Fm, I_):
        x.mul_(inv_det)
    return {(0, 0): A, (0, 1): B, (0, 2): C, (1, 1): E, (1, 2): Fm, (2, 2): I_}


def _matvec(m: dict[tuple[int, int], Plane], v: Sequence[Plane], box: Box) -> list[Plane]:
    """Per-pixel ``m @ v`` for a symmetric ``m`` stored as its upper triangle (new planes)."""
    c = len(v)
    out = []
    for i in range(c):
        acc = torch.mul(m[_sym(i, 0)], v[0], out=box.new())
        for j in range(1, c):
            acc.addcmul_(m[_sym(i, j)], v[j])
        out.append(acc)
    return out


@dataclass
class Saved:
    """What the backward pass of a batch needs (planes ``(N, H, W)``)."""

    I: list[Plane]  # guidance, C planes
    p: list[Plane]  # signal, K planes
    mean_I: list[Plane]  # B I_i
    inv: dict[tuple[int, int], Plane]  # (Sigma + eps U)^-1, upper triangle
    a: list[list[Plane]]  # a[k][i], per-window coefficients
    mean_p: list[Plane]  # B p_k
    A: list[list[Plane]] | None = None  # B a[k][i] (kept by :func:`guided` for its backward)

    def planes(self) -> list[Plane]:
        """The planes this state holds that came from an :class:`Arena` (not the inputs)."""
        out = [*self.mean_I, *self.inv.values(), *self.mean_p, *(x for row in self.a for x in row)]
        return out + [x for row in self.A or [] for x in row]


def coefficients(
    I: Sequence[Plane], p: Sequence[Plane], eps: torch.Tensor, box: Box, *, keep: bool
) -> tuple[list[list[Plane]], list[Plane], Saved | None]:
    """Box-averaged linear coefficients of a batch of images.

    Args:
        I: ``C`` guidance planes ``(N, H, W)`` (``C`` in 1, 2, 3).
        p: ``K`` signal planes ``(N, H, W)``, same dtype.
        eps: regularisation > 0 per image, ``(N, 1, 1)`` of the planes' dtype.
        box: the window mean for this size, radius and dtype.
        keep: also return what :func:`coefficients_backward` needs.

    Returns:
        ``A[k][i] = B a_{k,i}`` and ``Bb[k] = B b_k`` (``(N, H, W)`` planes), and the saved state or ``None``.
    """
    c = len(I)
    tmp = box.new()
    mean_I = [box.mean(x) for x in I]
    sigma: dict[tuple[int, int], Plane] = {}
    for i, j in _pairs(c):  # Sigma_k + eps U
        s = box.mean(torch.mul(I[i], I[j], out=tmp))
        s.addcmul_(mean_I[i], mean_I[j], value=-1)
        if i == j:
            s.add_(eps)
        sigma[i, j] = s
    inv = _inverse(sigma, c, box)
    A: list[list[Plane]] = []
    Bb: list[Plane] = []
    a_all: list[list[Plane]] = []
    mean_p_all: list[Plane] = []
    for pk in p:
        mean_p = box.mean(pk)
        cov = []
        for i in range(c):  # cov_k(I_i, p)
            t = box.mean(torch.mul(I[i], pk, out=tmp))
            cov.append(t.addcmul_(mean_I[i], mean_p, value=-1))
        a = _matvec(inv, cov, box)  # He eq. 14: a_k = (Sigma_k + eps U)^-1 cov_k(I, p)
        b = cov[0]  # (reused as scratch) He eq. 15: b_k = mean(p) - a_k . mean(I)
        torch.addcmul(mean_p, a[0], mean_I[0], value=-1, out=b)
        for i in range(1, c):
            b.addcmul_(a[i], mean_I[i], value=-1)
        A.append([box.mean(x) for x in a])
        Bb.append(box.mean(b, out=tmp if not keep and len(p) == 1 else None))
        if keep:
            a_all.append(a)
            mean_p_all.append(mean_p)
    saved = Saved(list(I), list(p), mean_I, inv, a_all, mean_p_all) if keep else None
    return A, Bb, saved


def coefficients_backward(
    s: Saved, gA: Sequence[Sequence[Plane]], gBb: Sequence[Plane], box: Box
) -> tuple[list[Plane], list[Plane], torch.Tensor]:
    """Gradients of :func:`coefficients` w.r.t. ``I``, ``p`` and ``eps``.

    ``gA[k][i]`` and ``gBb[k]`` are the incoming gradients of ``A`` and ``Bb``. Returns ``C`` planes
    for ``I``, ``K`` planes for ``p`` and the gradient of ``eps`` (``(N,)`` float64, summed per image).
    """
    c = len(s.I)
    gmean_I = [box.arena.zeros() for _ in s.I]
    gsigma = {t: box.arena.zeros() for t in _pairs(c)}
    gI = [box.arena.zeros() for _ in s.I]
    gp: list[Plane] = []
    for k, pk in enumerate(s.p):
        a, mean_p = s.a[k], s.mean_p[k]
        ga = [box.mean_t(g) for g in gA[k]]
        gb = box.mean_t(gBb[k])
        for i in range(c):  # b = mean_p - a . mean_I
            ga[i].addcmul_(gb, s.mean_I[i], value=-1)
            gmean_I[i].addcmul_(gb, a[i], value=-1)
        gmean_p = gb
        gcov = _matvec(s.inv, ga, box)  # a = Sigma^-1 cov: g_cov = Sigma^-T g_a, g_Sigma = -g_cov a^T
        for i, j in _pairs(c):
            gsigma[i, j].addcmul_(gcov[i], a[j], value=-1)
            if i != j:
                gsigma[i, j].addcmul_(gcov[j], a[i], value=-1)
        for i in range(c):  # cov_i = B(I_i p) - mean_I_i mean_p
            gmean_I[i].addcmul_(gcov[i], mean_p, value=-1)
            gmean_p.addcmul_(gcov[i], s.mean_I[i], value=-1)
        gpk = box.mean_t(gmean_p, overwrite=True)
        for i in range(c):
            t = box.mean_t(gcov[i], overwrite=True)
            gpk.addcmul_(t, s.I[i])
            gI[i].addcmul_(t, pk)
        gp.append(gpk)
    geps = torch.zeros(s.I[0].shape[0], dtype=torch.float64)
    for i, j in _pairs(c):  # Sigma_ij = B(I_i I_j) - mean_I_i mean_I_j (+ eps on the diagonal)
        g = gsigma[i, j]
        if i == j:
            geps += g.sum(dim=(1, 2), dtype=torch.float64)
        gmean_I[i].addcmul_(g, s.mean_I[j], value=-1)
        gmean_I[j].addcmul_(g, s.mean_I[i], value=-1)
        t = box.mean_t(g, overwrite=True)
        gI[i].addcmul_(t, s.I[j])
        gI[j].addcmul_(t, s.I[i])
    for i in range(c):
        gI[i] += box.mean_t(gmean_I[i], overwrite=True)
    return gI, gp, geps


def guided(
    I: Sequence[Plane], p: Sequence[Plane], eps: torch.Tensor, box: Box, out: Sequence[Plane], *, keep: bool
) -> Saved | None:
    """The guided filter of a batch, written into ``out`` (``K`` planes): ``q = A . I + Bb``."""
    A, Bb, saved = coefficients(I, p, eps, box, keep=keep)
    for k, q in enumerate(out):
        torch.addcmul(Bb[k], A[k][0], I[0], out=q)
        for i in range(1, len(I)):
            q.addcmul_(A[k][i], I[i])
    if saved is not None:
        saved.A = A
    return saved


def guided_backward(s: Saved, gq: Sequence[Plane], box: Box) -> tuple[list[Plane], list[Plane], torch.Tensor]:
    """Gradients of :func:`guided` w.r.t. ``I``, ``p`` and ``eps`` given ``gq`` (``K`` planes)."""
    if s.A is None:
        raise ValueError("guided_backward needs the state saved by guided(..., keep=True)")
    gA = [[torch.mul(g, x, out=box.new()) for x in s.I] for g in gq]
    gI, gp, geps = coefficients_backward(s, gA, gq, box)
    for k, g in enumerate(gq):  # q = A . I + Bb: direct term of I
        for i in range(len(gI)):
            gI[i].addcmul_(g, s.A[k][i])
    return gI, gp, geps
