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
colour (and two-channel) inverse is the closed-form adjugate. The window means are taken in batches
(the 13 of a colour guide and one signal at once, then the 4 of the coefficients), one task per
plane and image, on OpenCV's number of threads (:func:`run_parallel`; ``cv2.boxFilter`` itself is
single-threaded); for float32 and ``r <= 3`` two separable 1-D passes replace ``boxFilter``. The
arithmetic between them is torch's (in place, fused ``addcmul``) on blocks of rows small enough to
stay in the cache, in the calling thread (:func:`_row_blocks`; the planes are too large for the
cache: whole-plane operations ran at memory speed, and a second torch thread gained nothing). The
planes are NumPy-allocated, so OpenCV reads and writes them without copies, and recycled between
calls (:class:`Arena`). The backward pass is the chain rule through the same equations, written out
by hand; the box mean is ``B = F S / (2r+1)^2`` (``S`` the symmetric zero-padded window sum, ``F``
the border factors), so ``B^T g = S(F g) / (2r+1)^2``. ``gradcheck`` checks it against finite differences.
"""

# ruff: noqa: E741  (`I` is the guide image, as in the paper's equations, like core/filters/guided.py)
from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import cv2
import numpy as np
import torch

__all__ = [
    "Arena",
    "Box",
    "Saved",
    "coefficients",
    "coefficients_backward",
    "guided",
    "guided_backward",
    "run_parallel",
]

Plane = torch.Tensor  # (N, H, W) CPU tensor, float32 or float64, each (H, W) slice contiguous


_POOL_BYTES = 256 * 2**20  # planes kept for reuse between calls, at most (bytes)
_pool: dict[tuple[tuple[int, ...], str], list[np.ndarray]] = {}  # (NumPy: no inference-mode flag)
_pool_bytes = 0
_pool_lock = threading.Lock()


_MIN_PARALLEL_PIXELS = 1 << 16  # box-filter work (pixels) below which the calling thread does it alone
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _reset_executor() -> None:  # a forked child has none of its parent's threads
    global _executor
    _executor = None


os.register_at_fork(after_in_child=_reset_executor)


def _helpers() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1), thread_name_prefix="gf-box")
        return _executor


def run_parallel(tasks: Sequence[Callable[[], object]], pixels: int) -> None:
    """Run independent ``tasks`` on up to ``cv2.getNumThreads()`` threads, the calling thread included.

    ``cv2.boxFilter`` is single-threaded (OpenCV's own ``guidedFilter`` runs its box filters in a
    ``parallel_for_``); OpenCV and NumPy release the GIL, so plain threads filter planes side by side.
    The threads pull tasks from one list until it is empty (no static split, so a core busy with
    something else only takes fewer tasks); helpers that never started are cancelled. ``pixels``
    (the work's size) below ``_MIN_PARALLEL_PIXELS`` runs everything here, where a hand-off would cost
    more than it saves. The number of threads follows OpenCV's setting, so a worker process that
    caps OpenCV at one thread filters serially.
    """
    n = min(cv2.getNumThreads(), len(tasks)) if pixels >= _MIN_PARALLEL_PIXELS else 1
    if n <= 1:
        for task in tasks:
            task()
        return
    todo = list(reversed(tasks))
    inference = torch.is_inference_mode_enabled()  # (thread-local: the helpers take the caller's)

    def drain() -> None:
        while True:
            try:
                task = todo.pop()  # (atomic under the GIL)
            except IndexError:
                return
            task()

    def helper() -> None:
        with torch.inference_mode(inference):
            drain()

    futures = [_helpers().submit(helper) for _ in range(n - 1)]
    try:
        drain()
    except BaseException:
        todo.clear()
        raise
    finally:
        for f in futures:
            f.cancel()
        done = [f for f in futures if not f.cancelled()]
        wait(done)
    for f in done:
        f.result()  # (re-raises a helper's exception)


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
    Every method filters a list of planes at once, one task per plane and image, on the threads of
    :func:`run_parallel`.
    """

    def __init__(self, n: int, h: int, w: int, r: int, dtype: np.dtype) -> None:
        self.ksize = (2 * r + 1, 2 * r + 1)
        # float32, r <= 3: two 1-D passes of 1/(2r+1) weights (float arithmetic) beat boxFilter's running
        # sums in double (0.8 vs 1.2 ms per megapixel at r = 2; not on tiny images, where its set-up
        # dominates); the values agree to float32 rounding.
        sep = np.dtype(dtype) == np.float32 and r <= 3 and h * w >= 64 * 64
        self.kernel = np.full(2 * r + 1, 1 / (2 * r + 1), dtype) if sep else None
        self.arena = Arena((n, h, w), dtype)
        self.m = min(r, h, w)
        self.full, self.rows, self.cols = _border_factors(h, w, r, np.dtype(dtype).str)  # (shared across calls)

    def new(self) -> Plane:
        return self.arena.new()

    def _fix(self, x: np.ndarray) -> None:
        """Multiply one ``(H, W)`` image in place by the border factor map."""
        if self.full is not None:
            np.multiply(x, self.full, out=x)
            return
        m, (h, w) = self.m, x.shape
        x[:m] *= self.rows[0]
        x[h - m :] *= self.rows[1]
        x[m : h - m, :m] *= self.cols[0]
        x[m : h - m, w - m :] *= self.cols[1]

    def _task(self, x: np.ndarray, y: np.ndarray | None, out: np.ndarray, adjoint: bool) -> Callable[[], None]:
        """One ``(H, W)`` image: ``out = B x`` (``B (x y)`` with ``y``; ``B^T x`` with ``adjoint``)."""

        def task() -> None:
            src = x
            if y is not None:
                src = np.multiply(x, y, out=out)
            if adjoint:
                if src is not out:
                    np.copyto(out, src)
                self._fix(out)
                src = out
            if self.kernel is not None:
                cv2.sepFilter2D(src, -1, self.kernel, self.kernel, dst=out, borderType=cv2.BORDER_CONSTANT)
            else:
                cv2.boxFilter(src, -1, self.ksize, dst=out, normalize=True, borderType=cv2.BORDER_CONSTANT)
            if not adjoint:
                self._fix(out)

        return task

    def _run(
        self, srcs: Sequence[Plane | tuple[Plane, Plane]], outs: Sequence[Plane | None] | None, adjoint: bool
    ) -> list[Plane]:
        res = [self.new() if o is None else o for o in (outs or [None] * len(srcs))]
        tasks = []
        for s, o in zip(srcs, res, strict=True):
            x, y = (s[0].numpy(), s[1].numpy()) if isinstance(s, tuple) else (s.numpy(), None)
            o_ = o.numpy()
            for i in range(o_.shape[0]):  # one (H, W) image at a time
                tasks.append(self._task(x[i], None if y is None else y[i], o_[i], adjoint))
        run_parallel(tasks, len(tasks) * res[0][0].numel() if res else 0)
        return res

    def means(
        self, srcs: Sequence[Plane | tuple[Plane, Plane]], outs: Sequence[Plane | None] | None = None
    ) -> list[Plane]:
        """``B x`` of each plane (``B (x y)`` of a pair ``(x, y)``), into new planes or ``outs``.

        An ``out`` may be its own ``x`` (filtered in place); ``None`` in ``outs`` asks for a new plane.
        """
        return self._run(srcs, outs, adjoint=False)

    def means_t(self, gs: Sequence[Plane], *, overwrite: bool = False) -> list[Plane]:
        """``B^T g`` of each plane (the adjoint of :meth:`means`: border factors first, then the window mean).

        With ``overwrite`` each ``g`` is used as scratch and holds its result.
        """
        return self._run(gs, list(gs) if overwrite else None, adjoint=True)


def _pairs(c: int) -> list[tuple[int, int]]:
    """Upper-triangle index pairs ``(i, j), i <= j`` of a ``c x c`` symmetric matrix."""
    return [(i, j) for i in range(c) for j in range(i, c)]


def _sym(i: int, j: int) -> tuple[int, int]:
    return (i, j) if i <= j else (j, i)


_BLOCK_ELEMENTS = 1 << 15  # elements per row block: torch runs an op this small inline (one thread), in cache
_local = threading.local()


def _row_blocks(n: int, h: int, w: int) -> list[slice]:
    """Row ranges of about ``_BLOCK_ELEMENTS`` elements of an ``(n, h, w)`` plane.

    The blocks run one after the other in the calling thread, not on :func:`run_parallel`'s threads:
    a block's operations take a few microseconds each, and shared out over two threads the colour
    filter at 1 MP took 65-88 ms on a quiet machine (load 0.9), slower than the whole-plane
    arithmetic before it (52-62 ms).
    """
    rows = max(1, min(h, _BLOCK_ELEMENTS // max(1, n * w)))
    return [slice(y, min(h, y + rows)) for y in range(0, h, rows)]


def _scratch(like: Plane, rows_max: int) -> Callable[[], Plane]:
    """An allocator of uninitialised planes shaped like ``like`` (a row block), reused by this thread.

    The planes live in a per-thread list for blocks of up to ``rows_max`` rows (the list of the
    last shape used only), so a block's temporaries stay in the thread's cache from block to block.
    """
    n, rows, w = like.shape
    key = (n, rows_max, w, like.dtype)
    if getattr(_local, "key", None) != key:
        _local.key, _local.planes = key, []
    planes: list[Plane] = _local.planes
    used = 0

    def new() -> Plane:
        nonlocal used
        if used == len(planes):
            with torch.inference_mode(False):  # (usable in and out of inference mode)
                planes.append(torch.empty((n, rows_max, w), dtype=like.dtype))
        used += 1
        return planes[used - 1][:, :rows]

    return new


def _inverse(
    s: dict[tuple[int, int], Plane],
    c: int,
    new: Callable[[], Plane],
    *,
    scaled: bool = True,
    out: dict[tuple[int, int], Plane] | None = None,
) -> tuple[dict[tuple[int, int], Plane], Plane | None]:
    """Closed-form inverse of per-pixel symmetric ``c x c`` matrices (``c`` in 1, 2, 3), upper triangle.

    Consumes ``s`` (its planes are reused); temporaries come from ``new``. Returns the inverse
    (in ``out``'s planes when given) and ``None``; with ``scaled=False`` (``c > 1``, no ``out``) the
    adjugate and ``1 / det`` instead (the inverse is their product; a caller with one right-hand
    side scales that, 3 multiplications instead of 6).
    """
    if c == 1:
        return {(0, 0): torch.reciprocal(s[0, 0], out=s[0, 0] if out is None else out[0, 0])}, None
    if c == 2:
        a, b, d = s[0, 0], s[0, 1], s[1, 1]
        inv_det = torch.mul(a, d, out=new()).addcmul_(b, b, value=-1).reciprocal_()
        adj = {(0, 0): d, (0, 1): b.neg_(), (1, 1): a}
    else:
        a, b, c_ = s[0, 0], s[0, 1], s[0, 2]
        e, f, i = s[1, 1], s[1, 2], s[2, 2]
        adj = {
            (0, 0): torch.mul(e, i, out=new()).addcmul_(f, f, value=-1),
            (0, 1): torch.mul(c_, f, out=new()).addcmul_(b, i, value=-1),
            (0, 2): torch.mul(b, f, out=new()).addcmul_(c_, e, value=-1),
            (1, 1): torch.mul(a, i, out=new()).addcmul_(c_, c_, value=-1),
            (1, 2): torch.mul(b, c_, out=new()).addcmul_(a, f, value=-1),
            (2, 2): torch.mul(a, e, out=new()).addcmul_(b, b, value=-1),
        }
        inv_det = torch.mul(a, adj[0, 0], out=new()).addcmul_(b, adj[0, 1]).addcmul_(c_, adj[0, 2]).reciprocal_()
    if not scaled:
        return adj, inv_det
    return {t: torch.mul(x, inv_det, out=x if out is None else out[t]) for t, x in adj.items()}, None


def _matvec(
    m: dict[tuple[int, int], Plane], v: Sequence[Plane], new: Callable[[], Plane], out: Sequence[Plane] | None = None
) -> list[Plane]:
    """Per-pixel ``m @ v`` for a symmetric ``m`` stored as its upper triangle (new planes, or ``out``)."""
    c = len(v)
    res = []
    for i in range(c):
        acc = torch.mul(m[_sym(i, 0)], v[0], out=new() if out is None else out[i])
        for j in range(1, c):
            acc.addcmul_(m[_sym(i, j)], v[j])
        res.append(acc)
    return res


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
    c, K = len(I), len(p)
    pairs = _pairs(c)
    srcs: list[Plane | tuple[Plane, Plane]] = [*I, *((I[i], I[j]) for i, j in pairs)]
    for pk in p:
        srcs += [pk, *((I[i], pk) for i in range(c))]
    stats = box.means(srcs)  # every window mean of the inputs, in one parallel batch
    mean_I, S = stats[:c], stats[c : c + len(pairs)]
    mean_p = [stats[c + len(pairs) + k * (c + 1)] for k in range(K)]
    mean_Ip = [stats[c + len(pairs) + k * (c + 1) + 1 : c + len(pairs) + (k + 1) * (c + 1)] for k in range(K)]
    a_all = [[box.new() for _ in range(c)] for _ in range(K)]
    b_all = [box.new() for _ in range(K)] if keep else mean_p  # (b in mean_p's plane unless the backward needs it)
    inv = {t: box.new() for t in pairs} if keep else None
    n, h, w = I[0].shape
    blocks = _row_blocks(n, h, w)

    def solve(rows: slice) -> None:
        """He eqs. 14-15 on a block of rows (in the planes' own memory and this thread's cache)."""
        mI = [x[:, rows] for x in mean_I]
        new = _scratch(mI[0], blocks[0].stop)
        sigma: dict[tuple[int, int], Plane] = {}
        for t, (i, j) in enumerate(pairs):  # Sigma_k + eps U (in the plane of B(I_i I_j))
            sigma[i, j] = S[t][:, rows].addcmul_(mI[i], mI[j], value=-1)
            if i == j:
                sigma[i, j].add_(eps)
        divide = c == 1 and not keep  # gray: a = cov / (var + eps) (He eq. 5)
        fold = not keep and K == 1 and c > 1  # scale the one right-hand side by 1/det, not the inverse
        m, inv_det = (
            ({}, None)
            if divide
            else _inverse(
                sigma, c, new, scaled=not fold, out=None if inv is None else {t: x[:, rows] for t, x in inv.items()}
            )
        )
        for k in range(K):
            mp = mean_p[k][:, rows]
            cov = [x[:, rows].addcmul_(mI[i], mp, value=-1) for i, x in enumerate(mean_Ip[k])]  # cov_k(I_i, p)
            if inv_det is not None:
                for x in cov:
                    x.mul_(inv_det)
            a = [x[:, rows] for x in a_all[k]]
            if divide:
                torch.div(cov[0], sigma[0, 0], out=a[0])
            else:
                _matvec(m, cov, new, out=a)  # He eq. 14: a_k = (Sigma_k + eps U)^-1 cov_k(I, p)
            b = b_all[k][:, rows]  # He eq. 15: b_k = mean(p) - a_k . mean(I)
            torch.addcmul(mp, a[0], mI[0], value=-1, out=b)
            for i in range(1, c):
                b.addcmul_(a[i], mI[i], value=-1)

    for rows in blocks:  # (serially: see _row_blocks)
        solve(rows)
    ab = [x for a, b in zip(a_all, b_all, strict=True) for x in (*a, b)]
    means = box.means(ab, None if keep else ab)  # (in place unless the backward needs a and b)
    A = [means[k * (c + 1) : k * (c + 1) + c] for k in range(K)]
    Bb = [means[k * (c + 1) + c] for k in range(K)]
    saved = Saved(list(I), list(p), mean_I, inv, a_all, mean_p) if keep and inv is not None else None
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
        *ga, gb = box.means_t([*gA[k], gBb[k]])
        for i in range(c):  # b = mean_p - a . mean_I
            ga[i].addcmul_(gb, s.mean_I[i], value=-1)
            gmean_I[i].addcmul_(gb, a[i], value=-1)
        gmean_p = gb
        gcov = _matvec(s.inv, ga, box.new)  # a = Sigma^-1 cov: g_cov = Sigma^-T g_a, g_Sigma = -g_cov a^T
        for i, j in _pairs(c):
            gsigma[i, j].addcmul_(gcov[i], a[j], value=-1)
            if i != j:
                gsigma[i, j].addcmul_(gcov[j], a[i], value=-1)
        for i in range(c):  # cov_i = B(I_i p) - mean_I_i mean_p
            gmean_I[i].addcmul_(gcov[i], mean_p, value=-1)
            gmean_p.addcmul_(gcov[i], s.mean_I[i], value=-1)
        gpk, *ts = box.means_t([gmean_p, *gcov], overwrite=True)
        for i, t in enumerate(ts):
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
    for (i, j), t in zip(_pairs(c), box.means_t(list(gsigma.values()), overwrite=True), strict=True):
        gI[i].addcmul_(t, s.I[j])
        gI[j].addcmul_(t, s.I[i])
    for gi, t in zip(gI, box.means_t(gmean_I, overwrite=True), strict=True):
        gi += t
    return gI, gp, geps


def guided(
    I: Sequence[Plane], p: Sequence[Plane], eps: torch.Tensor, box: Box, out: Sequence[Plane], *, keep: bool
) -> Saved | None:
    """The guided filter of a batch, written into ``out`` (``K`` planes): ``q = A . I + Bb``."""
    A, Bb, saved = coefficients(I, p, eps, box, keep=keep)

    def apply(rows: slice) -> None:
        for k, q in enumerate(out):
            qr = torch.addcmul(Bb[k][:, rows], A[k][0][:, rows], I[0][:, rows], out=q[:, rows])
            for i in range(1, len(I)):
                qr.addcmul_(A[k][i][:, rows], I[i][:, rows])

    n, h, w = I[0].shape
    for rows in _row_blocks(n, h, w):
        apply(rows)
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
