"""Guided filter tests in the kornia taxonomy: smoke, shapes, bad input, non-contiguous, gradcheck,
module == function, golden values (explicit-loop reference of He et al.'s equations, OpenCV)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.filters import FastGuidedFilter, GuidedFilter, box_filter, fast_guided_filter, guided_filter


def _rand(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=dtype)


# ---------------------------------------------------------------- reference (paper's equations, loops)
def _reference(I: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al. eqs. 5-8 / 14-16 with explicit windows clipped at the borders. I (C,H,W), p (H,W)."""
    C, H, W = I.shape
    a = np.zeros((C, H, W))
    b = np.zeros((H, W))
    for y in range(H):
        for x in range(W):
            win = (slice(max(y - r, 0), y + r + 1), slice(max(x - r, 0), x + r + 1))
            Iw = I[(slice(None), *win)].reshape(C, -1)
            pw = p[win].reshape(-1)
            mu = Iw.mean(1)
            cov = (Iw * pw).mean(1) - mu * pw.mean()
            sigma = (Iw @ Iw.T) / Iw.shape[1] - np.outer(mu, mu)
            ak = np.linalg.solve(sigma + eps * np.eye(C), cov)
            a[:, y, x] = ak
            b[y, x] = pw.mean() - ak @ mu
    q = np.zeros((H, W))
    for y in range(H):
        for x in range(W):
            win = (slice(max(y - r, 0), y + r + 1), slice(max(x - r, 0), x + r + 1))
            q[y, x] = sum(a[c][win].mean() * I[c, y, x] for c in range(C)) + b[win].mean()
    return q


# ---------------------------------------------------------------- smoke and shapes
def test_smoke():
    I, p = _rand(1, 1, 12, 10), _rand(1, 1, 12, 10, seed=1)
    q = guided_filter(I, p, 2, 1e-2)
    assert q.shape == p.shape and torch.isfinite(q).all()
    assert GuidedFilter(2, 1e-2)(I, p).shape == p.shape


@pytest.mark.parametrize("n,c,k", [(1, 1, 1), (2, 1, 3), (2, 3, 2), (1, 2, 1), (1, 4, 2)])
@pytest.mark.parametrize("hw", [(9, 7), (16, 16), (3, 20)])
def test_shapes(n, c, k, hw):
    I, p = _rand(n, c, *hw, dtype=torch.float32), _rand(n, k, *hw, dtype=torch.float32, seed=1)
    assert guided_filter(I, p, 2, 1e-2).shape == (n, k, *hw)
    I_hr = _rand(n, c, hw[0] * 2, hw[1] * 3, dtype=torch.float32, seed=2)
    assert fast_guided_filter(I, p, I_hr, 1, 1e-2).shape == (n, k, hw[0] * 2, hw[1] * 3)


def test_box_filter_matches_clipped_window_mean_and_any_radius():
    x = _rand(2, 3, 6, 5)
    for r in (1, 2, 7, 100):
        got = box_filter(x, r)
        ref = torch.empty_like(x)
        for y in range(6):
            for xx in range(5):
                ref[..., y, xx] = x[..., max(y - r, 0) : y + r + 1, max(xx - r, 0) : xx + r + 1].mean((-1, -2))
        torch.testing.assert_close(got, ref)
    torch.testing.assert_close(box_filter(x, 1, normalize=False)[..., 2, 2], x[..., 1:4, 1:4].sum((-1, -2)))


def test_constant_guidance_gives_double_box_mean():
    p = _rand(1, 2, 10, 11)
    q = guided_filter(torch.full((1, 1, 10, 11), 0.5, dtype=torch.float64), p, 2, 1e-3)
    torch.testing.assert_close(q, box_filter(box_filter(p, 2), 2))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "I,p,r,eps,exc,match",
    [
        ("img", torch.rand(1, 1, 8, 8), 1, 0.1, TypeError, "I must be a torch.Tensor"),
        (torch.rand(1, 8, 8), torch.rand(1, 1, 8, 8), 1, 0.1, ValueError, r"I must be 4-D .* \(1, 8, 8\)"),
        (torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9), 1, 0.1, ValueError, "must share batch size and H x W"),
        (torch.rand(2, 1, 8, 8), torch.rand(1, 1, 8, 8), 1, 0.1, ValueError, "must share batch size"),
        (torch.ones(1, 1, 8, 8, dtype=torch.int64), torch.rand(1, 1, 8, 8), 1, 0.1, TypeError, "floating.*int64"),
        (torch.rand(1, 1, 8, 8, dtype=torch.float64), torch.rand(1, 1, 8, 8), 1, 0.1, TypeError, "same dtype"),
        (torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), 0, 0.1, ValueError, "radius r must be >= 1, got 0"),
        (torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), 1.5, 0.1, TypeError, "radius r must be an int.*1.5"),
        (torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), True, 0.1, TypeError, "radius r must be an int"),
        (torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), 1, 0.0, ValueError, "eps must be > 0, got 0.0"),
        (torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), 1, -1.0, ValueError, "eps must be > 0"),
        (torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), 1, "0.1", TypeError, "eps must be a float"),
        (torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), 1, torch.tensor(-0.1), ValueError, "eps must be > 0"),
    ],
)
def test_bad_inputs_raise(I, p, r, eps, exc, match):
    with pytest.raises(exc, match=match):
        guided_filter(I, p, r, eps)


def test_bad_inputs_module_and_fast():
    with pytest.raises(ValueError, match="radius"):
        GuidedFilter(-2, 0.1)
    with pytest.raises(ValueError, match="eps"):
        FastGuidedFilter(2, 0.0)
    I, p = torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="I_hr"):
        fast_guided_filter(I, p, torch.rand(1, 1, 16, 16), 1, 0.1)
    with pytest.raises(TypeError, match="I_hr must be a torch.Tensor"):
        fast_guided_filter(I, p, None, 1, 0.1)
    with pytest.raises(ValueError, match="x must be 4-D"):
        box_filter(torch.rand(8, 8), 1)


# ---------------------------------------------------------------- non-contiguous
@pytest.mark.parametrize("c", [1, 3])
def test_noncontiguous(c):
    I = _rand(1, 11, 9, c, dtype=torch.float32).permute(0, 3, 2, 1)  # (1, c, 9, 11), non-contiguous
    p = _rand(1, 9, 11, 2, dtype=torch.float32, seed=1).permute(0, 3, 1, 2)
    assert not I.is_contiguous() and not p.is_contiguous()
    torch.testing.assert_close(guided_filter(I, p, 2, 1e-2), guided_filter(I.contiguous(), p.contiguous(), 2, 1e-2))


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("c", [1, 2, 3])
def test_gradcheck(c, backend):
    I = _rand(1, c, 5, 6).requires_grad_()
    p = _rand(1, 2, 5, 6, seed=1).requires_grad_()
    eps = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, e: guided_filter(a, b, 1, e, backend=backend), (I, p, eps))


@pytest.mark.parametrize("c", [1, 3])
def test_gradcheck_cpu_batch_per_image_eps_and_strips(c):
    """Two images with their own eps, r = 2 on 7 x 9 (border strips, not the whole-plane factor map)."""
    I = _rand(2, c, 7, 9).requires_grad_()
    p = _rand(2, 2, 7, 9, seed=1).requires_grad_()
    eps = torch.tensor([0.05, 0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, e: guided_filter(a, b, 2, e, backend="cpu"), (I, p, eps))


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_gradcheck_fast_and_box(backend):
    I = _rand(1, 1, 4, 5).requires_grad_()
    p = _rand(1, 1, 4, 5, seed=1).requires_grad_()
    I_hr = _rand(1, 1, 8, 9, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, h: fast_guided_filter(a, b, h, 1, 0.1, backend=backend), (I, p, I_hr))
    I3 = _rand(2, 3, 6, 7, seed=3).requires_grad_()
    p3 = _rand(2, 2, 6, 7, seed=4).requires_grad_()
    I3_hr = _rand(2, 3, 9, 10, seed=5).requires_grad_()
    eps = torch.tensor([0.05, 0.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, h, e: fast_guided_filter(a, b, h, 2, e, backend=backend), (I3, p3, I3_hr, eps)
    )
    assert torch.autograd.gradcheck(lambda x: box_filter(x, 2), (_rand(1, 2, 5, 4).requires_grad_(),))


# ---------------------------------------------------------------- the CPU engine == the torch backend
_CASES = [((7, 6), 1), ((12, 9), 2), ((5, 4), 7), ((3, 20), 2), ((30, 33), 4), ((40, 37), 16)]


@pytest.mark.parametrize("c", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("hw,r", _CASES)
def test_cpu_backend_equals_torch_backend(c, k, hw, r):
    """Same values in float64 (to rounding) and float32 (to float32 rounding), forward and backward."""
    I, p = _rand(2, c, *hw), _rand(2, k, *hw, seed=1)
    eps = torch.tensor([1e-2, 1e-1], dtype=torch.float64)
    want = guided_filter(I, p, r, eps, backend="torch")
    torch.testing.assert_close(guided_filter(I, p, r, eps, backend="cpu"), want, rtol=0, atol=1e-10)
    torch.testing.assert_close(
        guided_filter(I.float(), p.float(), r, eps.float(), backend="cpu"), want.float(), rtol=0, atol=5e-5
    )
    I_hr = _rand(2, c, hw[0] * 2 + 1, hw[1] * 2, seed=2)
    torch.testing.assert_close(
        fast_guided_filter(I, p, I_hr, r, 0.02, backend="cpu"),
        fast_guided_filter(I, p, I_hr, r, 0.02, backend="torch"),
        rtol=0,
        atol=1e-10,
    )
    gq = _rand(2, k, *hw, seed=3)
    grads = []
    for backend in ("cpu", "torch"):
        Ig, pg, eg = I.clone().requires_grad_(), p.clone().requires_grad_(), eps.clone().requires_grad_()
        grads.append(torch.autograd.grad(guided_filter(Ig, pg, r, eg, backend=backend), (Ig, pg, eg), gq))
    for got, ref in zip(*grads):
        torch.testing.assert_close(got, ref, rtol=1e-8, atol=1e-9)


def test_auto_backend_dispatch():
    """auto = the CPU engine where it applies (same numbers), the torch backend elsewhere."""
    I, p = _rand(1, 4, 9, 8, dtype=torch.float32), _rand(1, 1, 9, 8, dtype=torch.float32, seed=1)
    torch.testing.assert_close(guided_filter(I, p, 2, 1e-2), guided_filter(I, p, 2, 1e-2, backend="torch"))
    with pytest.raises(ValueError, match="backend='cpu' needs .* 4 guidance channels"):
        guided_filter(I, p, 2, 1e-2, backend="cpu")
    half = guided_filter(I[:, :1].bfloat16(), p.bfloat16(), 2, 1e-2)  # torch backend
    assert half.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="backend='cpu' needs .*bfloat16"):
        guided_filter(I[:, :1].bfloat16(), p.bfloat16(), 2, 1e-2, backend="cpu")
    pixel_eps = torch.full((1, 1, 9, 8), 1e-2)  # per-pixel eps: torch backend only
    torch.testing.assert_close(guided_filter(I[:, :3], p, 2, pixel_eps), guided_filter(I[:, :3], p, 2, 1e-2))
    with pytest.raises(ValueError, match="backend must be one of .*'auto', 'cpu', 'torch'.*got 'opencv'"):
        guided_filter(I, p, 2, 1e-2, backend="opencv")


def test_cpu_backend_inference_mode_channels_last_and_reuse():
    I = _rand(2, 3, 33, 35, dtype=torch.float32)
    p = _rand(2, 2, 33, 35, dtype=torch.float32, seed=1)
    want = guided_filter(I, p, 3, 1e-2, backend="torch")
    with torch.inference_mode():
        got = guided_filter(I.to(memory_format=torch.channels_last), p, 3, 1e-2)
        assert not got.requires_grad
        torch.testing.assert_close(got, want)
        other = guided_filter(_rand(2, 3, 33, 35, dtype=torch.float32, seed=5), p, 3, 1e-2)  # reuses pooled planes
        assert not torch.allclose(other, want)
        torch.testing.assert_close(guided_filter(I, p, 3, 1e-2), want)  # no state left behind
    assert not guided_filter(I, p, 3, 1e-2).requires_grad  # no input needs a gradient


@pytest.fixture
def parallel_engine(monkeypatch):
    """The CPU engine on two threads even for small images, its arithmetic in blocks of a few rows."""
    import cv2

    from core.filters import cpu

    threads = cv2.getNumThreads()
    monkeypatch.setattr(cpu, "_MIN_PARALLEL_PIXELS", 0)
    monkeypatch.setattr(cpu, "_BLOCK_ELEMENTS", 1000)  # 7 rows of 2 x 71 pixels
    cv2.setNumThreads(2)
    yield cv2
    cv2.setNumThreads(threads)


@pytest.mark.parametrize("c,k", [(3, 1), (3, 2), (1, 1)])
@pytest.mark.parametrize("r", [2, 3, 5, 40])  # 2, 3: float32 runs the separable 1-D passes; 40 > half the size
def test_cpu_no_grad_threads_equal_serial_and_float64_reference(parallel_engine, c, k, r):
    """The no-grad engine (the path post-processing runs) on two threads == one thread, bit for bit, and
    == the float64 torch backend to float32 rounding everywhere, borders included; float64 to 1e-10.
    The gradients on two threads == the torch backend's."""
    I, p = _rand(2, c, 67, 71, seed=11), _rand(2, k, 67, 71, seed=12)
    eps = torch.tensor([1e-2, 1e-3], dtype=torch.float64)
    want = guided_filter(I, p, r, eps, backend="torch")
    with torch.inference_mode():
        got = guided_filter(I.float(), p.float(), r, eps.float(), backend="cpu")
        got64 = guided_filter(I, p, r, eps, backend="cpu")
        parallel_engine.setNumThreads(1)
        serial = guided_filter(I.float(), p.float(), r, eps.float(), backend="cpu")
    torch.testing.assert_close(got, serial, rtol=0, atol=0)
    torch.testing.assert_close(got, want.float(), rtol=0, atol=2e-5)
    torch.testing.assert_close(got64, want, rtol=0, atol=1e-10)
    parallel_engine.setNumThreads(2)
    gq = _rand(2, k, 67, 71, seed=13)
    grads = []
    for backend in ("cpu", "torch"):  # the differentiable path (training) on the same threads and blocks
        Ig, pg, eg = I.clone().requires_grad_(), p.clone().requires_grad_(), eps.clone().requires_grad_()
        grads.append(torch.autograd.grad(guided_filter(Ig, pg, r, eg, backend=backend), (Ig, pg, eg), gq))
    for g_cpu, g_torch in zip(*grads):
        torch.testing.assert_close(g_cpu, g_torch, rtol=1e-8, atol=1e-9)
    if c == 3 and k == 1:  # the explicit windows of He et al.'s equations, on one image
        ref = _reference(I[0].numpy(), p[0, 0].numpy(), r, 1e-2)
        np.testing.assert_allclose(got[0, 0].numpy(), ref, rtol=0, atol=2e-5)


def test_run_parallel_uses_threads_and_reraises(parallel_engine):
    import threading

    from core.filters.cpu import run_parallel

    barrier = threading.Barrier(2, timeout=30)  # passes only if two tasks run at the same time
    names: list[str] = []

    def task() -> None:
        barrier.wait()
        names.append(threading.current_thread().name)

    run_parallel([task, task], pixels=1)
    assert len(set(names)) == 2

    def bad() -> None:
        raise ValueError("task failed")

    for i in range(4):  # raised in the calling thread or in the helper, whichever took it
        tasks = [lambda: None] * 4
        tasks[i] = bad
        with pytest.raises(ValueError, match="task failed"):
            run_parallel(tasks, pixels=1)
    done: list[int] = []
    parallel_engine.setNumThreads(1)  # one thread: in order, in the calling thread
    run_parallel([lambda i=i: done.append(i) for i in range(5)], pixels=1 << 30)
    assert done == list(range(5))


def test_cpu_backend_autograd_contract():
    """In-place changes to inputs are caught, retain_graph works, double backward says it is unsupported."""
    I = _rand(1, 3, 8, 9).requires_grad_()
    p = _rand(1, 1, 8, 9, seed=1)
    q = guided_filter(I, p, 2, 1e-2)
    g1 = torch.autograd.grad(q.sum(), I, retain_graph=True)[0]
    torch.testing.assert_close(torch.autograd.grad(q.sum(), I)[0], g1)
    q2 = guided_filter(I, p, 2, 1e-2)
    (gI,) = torch.autograd.grad(q2, I, torch.ones_like(q2, requires_grad=True), create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        gI.sum().backward()
    q2 = guided_filter(I, p, 2, 1e-2, backend="torch")  # the torch backend has second derivatives
    (gI,) = torch.autograd.grad(q2, I, torch.ones_like(q2, requires_grad=True), create_graph=True)
    gI.sum().backward()
    x = p.clone().requires_grad_()
    y = x * 1.0
    q3 = guided_filter(I, y, 2, 1e-2)
    with torch.no_grad():
        y.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        q3.sum().backward()


# ---------------------------------------------------------------- module == function
def test_module_equals_function():
    I, p = _rand(2, 3, 10, 12), _rand(2, 2, 10, 12, seed=1)
    torch.testing.assert_close(GuidedFilter(3, 0.02)(I, p), guided_filter(I, p, 3, 0.02))
    I_hr = _rand(2, 3, 20, 24, seed=2)
    torch.testing.assert_close(FastGuidedFilter(1, 0.02)(I, p, I_hr), fast_guided_filter(I, p, I_hr, 1, 0.02))
    m = GuidedFilter(1, 0.1)
    m.r, m.eps = 2, 0.01  # settable (grid search)
    torch.testing.assert_close(m(I, p), guided_filter(I, p, 2, 0.01))


def test_fast_at_same_resolution_equals_full():
    I, p = _rand(1, 3, 9, 10), _rand(1, 1, 9, 10, seed=1)
    torch.testing.assert_close(fast_guided_filter(I, p, I, 2, 0.01), guided_filter(I, p, 2, 0.01))


# ---------------------------------------------------------------- golden values
@pytest.mark.parametrize("c,r,eps", [(1, 1, 1e-2), (1, 2, 1e-3), (3, 1, 1e-2), (3, 2, 1e-1), (2, 1, 1e-2)])
def test_golden_explicit_windows(c, r, eps):
    I, p = _rand(1, c, 7, 6, seed=3), _rand(1, 1, 7, 6, seed=4)
    ref = _reference(I[0].numpy(), p[0, 0].numpy(), r, eps)
    np.testing.assert_allclose(guided_filter(I, p, r, eps)[0, 0].numpy(), ref, rtol=1e-9, atol=1e-10)


def test_golden_paper_eq3_kernel_form():
    """Interior pixel: g_i = sum_j W_ij(I) p_j with W_ij from paper 001 eq. 3 (gray guidance)."""
    r, eps = 1, 0.05
    I, p = _rand(1, 1, 9, 9, seed=5), _rand(1, 1, 9, 9, seed=6)
    In, pn = I[0, 0].numpy(), p[0, 0].numpy()
    i = (4, 4)
    w = (2 * r + 1) ** 2
    g = 0.0
    for jy in range(9):
        for jx in range(9):
            Wij = 0.0
            for ky in range(i[0] - r, i[0] + r + 1):  # windows k containing both i and j
                for kx in range(i[1] - r, i[1] + r + 1):
                    if abs(jy - ky) > r or abs(jx - kx) > r:
                        continue
                    patch = In[ky - r : ky + r + 1, kx - r : kx + r + 1]
                    mu, var = patch.mean(), patch.var()
                    Wij += 1 + (In[i] - mu) * (In[jy, jx] - mu) / (var + eps)
            g += Wij / w**2 * pn[jy, jx]
    assert guided_filter(I, p, r, eps)[0, 0, 4, 4].item() == pytest.approx(g, rel=1e-10)


cv2 = pytest.importorskip("cv2")


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("r,eps", [(2, 1e-2), (4, 1e-3)])
def test_golden_opencv(c, r, eps):
    """cv2.ximgproc.guidedFilter pads by reflection at the borders, we divide by the count map, so
    compare where no window (of windows) touches the border: 2r pixels in."""
    I, p = _rand(1, c, 40, 37, dtype=torch.float32, seed=7), _rand(1, 1, 40, 37, dtype=torch.float32, seed=8)
    guide = I[0].permute(1, 2, 0).numpy().copy() if c == 3 else I[0, 0].numpy().copy()
    ref = cv2.ximgproc.guidedFilter(guide, p[0, 0].numpy().copy(), r, eps)
    got = guided_filter(I, p, r, eps)[0, 0].numpy()
    m = 2 * r
    np.testing.assert_allclose(got[m:-m, m:-m], ref[m:-m, m:-m], atol=2e-4)


def _reflect_border_reference(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s equations with window means over a BORDER_REFLECT-padded image (float64)."""
    k = (2 * r + 1, 2 * r + 1)

    def mean(x):
        return cv2.boxFilter(x, -1, k, normalize=True, borderType=cv2.BORDER_REFLECT)

    I = guide[..., None] if guide.ndim == 2 else guide
    c = I.shape[2]
    chans = [I[..., i] for i in range(c)]
    mI = [mean(x) for x in chans]
    mp = mean(src)
    sigma = np.empty((*src.shape, c, c))
    for i in range(c):
        for j in range(c):
            sigma[..., i, j] = mean(chans[i] * chans[j]) - mI[i] * mI[j] + (eps if i == j else 0.0)
    cov = np.stack([mean(chans[i] * src) - mI[i] * mp for i in range(c)], axis=-1)
    a = np.linalg.solve(sigma, cov[..., None])[..., 0]
    b = mp - (a * np.stack(mI, axis=-1)).sum(-1)
    return sum(mean(np.ascontiguousarray(a[..., i])) * chans[i] for i in range(c)) + mean(b)


@pytest.mark.parametrize("c", [1, 3])
def test_opencv_border_is_reflection_ours_is_the_clipped_window(c):
    """cv2.ximgproc.guidedFilter = the same equations with BORDER_REFLECT window means, everywhere.
    We keep He et al.'s reference borders (mean over the in-image part of the window): the two agree
    in the interior and differ only within 2r of the border, where ours equals the explicit windows."""
    r, eps = 3, 1e-2
    I, p = _rand(1, c, 23, 26, seed=9), _rand(1, 1, 23, 26, seed=10)
    guide = I[0].permute(1, 2, 0).numpy().copy() if c == 3 else I[0, 0].numpy().copy()
    src = p[0, 0].numpy().copy()
    reflect = _reflect_border_reference(guide, src, r, eps)
    got_cv2 = cv2.ximgproc.guidedFilter(guide.astype(np.float32), src.astype(np.float32), r, eps)
    np.testing.assert_allclose(got_cv2, reflect, atol=2e-4)
    ours = guided_filter(I, p, r, eps)[0, 0].numpy()
    np.testing.assert_allclose(ours, _reference(I[0].numpy(), src, r, eps), rtol=1e-9, atol=1e-10)
    m = 2 * r
    np.testing.assert_allclose(ours[m:-m, m:-m], reflect[m:-m, m:-m], rtol=1e-9, atol=1e-10)
    assert np.abs(ours - reflect)[:m].max() > 1e-3  # the borders do differ


def test_opencv_eps_convention_for_uint8_guides():
    """OpenCV applies eps on the guide's own scale: a 0..255 uint8 guide needs eps * 255**2 to
    match our filter on the guide in 0..1."""
    rng = np.random.default_rng(0)
    g8 = rng.integers(0, 256, (30, 30), dtype=np.uint8)
    src = rng.random((30, 30), dtype=np.float32)
    ref = cv2.ximgproc.guidedFilter(g8, src, 2, 1e-2 * 255**2, -1)
    got = guided_filter(torch.from_numpy(g8 / 255.0).float()[None, None], torch.from_numpy(src)[None, None], 2, 1e-2)
    np.testing.assert_allclose(got[0, 0, 4:-4, 4:-4].numpy(), ref[4:-4, 4:-4], atol=2e-4)
