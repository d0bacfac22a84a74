"""The guided filter against ``cv2.ximgproc.guidedFilter``, side by side in one process (issue 11 item 2).

For a 1-megapixel image (gray and colour guide, one signal channel, eps = 1e-2) and r in 2, 4, 8,
16, 32 it times, interleaved run by run so that both sides see the same machine load:

  cv2        ``cv2.ximgproc.guidedFilter`` (its own layout: ``(H, W[, 3]) float32``)
  nograd     ``core.filters.guided_filter`` under ``torch.inference_mode()`` (post-processing, inference)
  fwd        the differentiable forward (inputs ``requires_grad``; what training runs)
  fwd+bwd    forward and ``backward()`` (for information; OpenCV has no backward)
  torch      (``--torch-backend``) the pure-torch backend's no-grad forward, the previous implementation

and prints ms per megapixel (medians of ``--runs``) and the speed ratios ``cv2 time / our time``
(targets: nograd >= 1.0, fwd >= 0.5). A last row times the shape the GFN filters in training (batch 8,
3-channel guide, 2 classes, 80 x 80 = stride 4 of 320 px) against OpenCV called per image and class.

Usage: python bench/guided_bench.py [--runs 7] [--threads 2] [--torch-backend] [--save]
``--save`` writes the figures as JSON under ``bench/results/guided_bench/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.filters import guided_filter  # noqa: E402

log = logging.getLogger("guided_bench")
RADII = (2, 4, 8, 16, 32)
EPS = 1e-2


def machine_info() -> dict[str, Any]:
    """CPU model, cores, library versions, threads and the load average now."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "torch_threads": torch.get_num_threads(),
        "cv2_threads": cv2.getNumThreads(),
        "load_avg": os.getloadavg(),
    }


def interleaved_medians(fns: dict[str, Callable[[], Any]], runs: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each function, run in turn (``a b c a b c ...``) so they share the load."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _variants(
    guide: np.ndarray, src: np.ndarray, It: torch.Tensor, pt: torch.Tensor, r: int, torch_backend: bool
) -> dict[str, Callable[[], Any]]:
    Ig, pg = It.clone().requires_grad_(), pt.clone().requires_grad_()

    def nograd() -> None:
        with torch.inference_mode():
            guided_filter(It, pt, r, EPS)

    def fwd() -> None:
        guided_filter(Ig, pg, r, EPS)

    def fwd_bwd() -> None:
        guided_filter(Ig, pg, r, EPS).sum().backward()
        Ig.grad = pg.grad = None

    fns: dict[str, Callable[[], Any]] = {
        "cv2": lambda: cv2.ximgproc.guidedFilter(guide, src, r, EPS),
        "nograd": nograd,
        "fwd": fwd,
        "fwd+bwd": fwd_bwd,
    }
    if torch_backend:

        def torch_nograd() -> None:
            with torch.inference_mode():
                guided_filter(It, pt, r, EPS, backend="torch")

        fns["torch"] = torch_nograd
    return fns


def bench_megapixel(runs: int, torch_backend: bool = False, size: int = 1000) -> list[dict[str, Any]]:
    """One row per (guide channels, radius): ms per megapixel of each variant and the ratios."""
    rng = np.random.default_rng(0)
    mp = size * size / 1e6
    rows = []
    for c in (1, 3):
        guide = rng.random((size, size, c), dtype=np.float32) if c == 3 else rng.random((size, size), dtype=np.float32)
        src = rng.random((size, size), dtype=np.float32)
        It = (
            torch.from_numpy(guide).permute(2, 0, 1)[None].contiguous()
            if c == 3
            else torch.from_numpy(guide)[None, None]
        )
        pt = torch.from_numpy(src)[None, None]
        for r in RADII:
            load = os.getloadavg()[0]
            t = interleaved_medians(_variants(guide, src, It, pt, r, torch_backend), runs)
            row: dict[str, Any] = {"guide_channels": c, "r": r, "load_1min": load}
            row.update({f"{name}_ms_per_mp": 1000 * s / mp for name, s in t.items()})
            row.update({f"ratio_{name}": t["cv2"] / s for name, s in t.items() if name != "cv2"})
            rows.append(row)
            log.info("c=%d r=%d: %s", c, r, json.dumps({k: round(v, 3) for k, v in row.items()}))
    return rows


def bench_gfn_shape(runs: int, n: int = 8, k: int = 2, hw: int = 80, r: int = 2) -> dict[str, Any]:
    """The GFN's training call: ``(n, 3, hw, hw)`` guide, ``(n, k, hw, hw)`` logits, vs OpenCV per image/class."""
    rng = np.random.default_rng(1)
    guide = rng.random((n, hw, hw, 3), dtype=np.float32)
    src = rng.random((n, k, hw, hw), dtype=np.float32)
    It = torch.from_numpy(guide).permute(0, 3, 1, 2).contiguous()
    pt = torch.from_numpy(src)
    Ig, pg = It.clone().requires_grad_(), pt.clone().requires_grad_()

    def cv() -> None:
        for i in range(n):
            for j in range(k):
                cv2.ximgproc.guidedFilter(guide[i], src[i, j], r, EPS)

    def nograd() -> None:
        with torch.inference_mode():
            guided_filter(It, pt, r, EPS)

    def fwd_bwd() -> None:
        guided_filter(Ig, pg, r, EPS).sum().backward()
        Ig.grad = pg.grad = None

    load = os.getloadavg()[0]
    t = interleaved_medians(
        {"cv2": cv, "nograd": nograd, "fwd": lambda: guided_filter(Ig, pg, r, EPS), "fwd+bwd": fwd_bwd}, runs
    )
    row: dict[str, Any] = {"shape": f"{n}x3x{hw}x{hw}, K={k}", "r": r, "load_1min": load}
    row.update({f"{name}_ms": 1000 * s for name, s in t.items()})
    row.update({f"ratio_{name}": t["cv2"] / s for name, s in t.items() if name != "cv2"})
    return row


def table(rows: list[dict[str, Any]], torch_backend: bool) -> str:
    names = ["cv2", "nograd", "fwd", "fwd+bwd"] + (["torch"] if torch_backend else [])
    head = "| guide | r | " + " | ".join(f"{n} ms/MP" for n in names) + " | "
    head += " | ".join(f"{n} / cv2 speed" for n in names[1:]) + " | load |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        cells = [("gray" if row["guide_channels"] == 1 else "colour"), str(row["r"])]
        cells += [f"{row[f'{n}_ms_per_mp']:.1f}" for n in names]
        cells += [f"{row[f'ratio_{n}']:.2f}x" for n in names[1:]]
        cells.append(f"{row['load_1min']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(runs: int = 7, torch_backend: bool = False) -> dict[str, Any]:
    """All figures (the entry point ``bench/gfn_bench.py --sections guided`` calls)."""
    results: dict[str, Any] = {"machine": machine_info(), "runs": runs, "eps": EPS}
    results["megapixel"] = bench_megapixel(runs, torch_backend)
    results["gfn_shape"] = bench_gfn_shape(runs)
    results["load_avg_at_end"] = os.getloadavg()
    results["table"] = table(results["megapixel"], torch_backend)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="timed repetitions per variant (median); >= 5")
    ap.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    ap.add_argument("--torch-backend", action="store_true", help="also time the pure-torch backend (slow)")
    ap.add_argument("--save", action="store_true", help="write JSON under bench/results/guided_bench/")
    args = ap.parse_args()
    if args.runs < 5:
        ap.error(f"--runs must be >= 5 (medians of several runs), got {args.runs}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    results = run(args.runs, args.torch_backend)
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, opencv {m['opencv']}, threads {args.threads}")
    print(f"load average at start {m['load_avg']}, at end {results['load_avg_at_end']}")
    print(f"1 MP ({args.runs} interleaved runs, medians; speed ratio = cv2 time / our time):")
    print(results["table"])
    g = results["gfn_shape"]
    print(
        f"GFN training shape {g['shape']}, r={g['r']}: cv2 per image/class {g['cv2_ms']:.1f} ms, "
        f"nograd {g['nograd_ms']:.1f} ms ({g['ratio_nograd']:.2f}x), fwd {g['fwd_ms']:.1f} ms "
        f"({g['ratio_fwd']:.2f}x), fwd+bwd {g['fwd+bwd_ms']:.1f} ms ({g['ratio_fwd+bwd']:.2f}x)"
    )
    if args.save:
        out = ROOT / "bench" / "results" / "guided_bench"
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"guided-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps({"args": vars(args), **results}, indent=2, default=float))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
