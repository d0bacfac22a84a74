"""Benchmark of the initial (round-0) routes on real photos with human masks.

Runs each route variant of ``core.initial.make_initial_masks`` on ``weizmann_horse`` (class
"horse") and ``ecssd`` (class "object"), and reports mIoU over {background, object} from the
pooled confusion matrix, the mean per-image object IoU and seconds per image.

    python bench/initial_routes.py                       # all variants, ecssd limited to 200
    python bench/initial_routes.py --sets horse --variants cam grabcut auto
    nohup python bench/initial_routes.py > bench/results/initial_routes.txt 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.classmap import ClassMap  # noqa: E402
from core.data.dataset import Dataset, Sample  # noqa: E402
from core.initial import InitConfig, make_initial_masks  # noqa: E402

log = logging.getLogger("bench.initial_routes")

SETS = {"horse": ("weizmann_horse", "horse"), "ecssd": ("ecssd", "object")}

VARIANTS: dict[str, tuple[str, dict]] = {
    # name: (route, InitConfig overrides)
    "grabcut-centre": ("grabcut", {"coarse": "centre"}),
    "cam-raw": ("cam", {"crf": {"iters": 0}}),
    "cam": ("cam", {}),
    "grabcut": ("grabcut", {}),
    "grabcut-mapbox": ("grabcut", {"box_mode": "map", "box_threshold": 0.4, "prob_fg_threshold": 0.5}),
    "grabcut-activation": ("grabcut", {"coarse": "activation"}),
    "auto": ("auto", {}),
    "auto-ms": ("auto", {"cam_scales": (0.75, 1.0, 1.25)}),
    "otsu": ("otsu", {"train": {"epochs": 6, "crop_size": 256, "time_budget_s": 420}}),
    "transfer-ecssd": ("transfer", {"train": {"epochs": 4, "crop_size": 256, "time_budget_s": 1200}}),
}
"""Variants; ``auto`` is the default route with default settings."""

DEFAULT_VARIANTS = ("grabcut-centre", "cam-raw", "cam", "grabcut-mapbox", "grabcut", "auto", "otsu")

SOURCES = {"transfer-ecssd": ("ecssd", 500)}
"""Variants that need a labelled source set: (set name, number of images); skipped on that set."""

REFERENCE = {
    "horse": {"grabcut-centre": 0.77, "cam-raw": 0.57, "cam": 0.64, "grabcut-mapbox": 0.73},
    "ecssd": {"grabcut-centre": 0.78, "cam": 0.69},
}
"""mIoU measured by the team on the same data (other code) for comparison."""


def load_set(data_root: Path, name: str, limit: int | None) -> Dataset:
    folder, cls = SETS[name]
    root = data_root / folder
    images = sorted((root / "images").glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"no images in {root / 'images'}; pass --data pointing at the shared data folder")
    if limit:
        images = images[:limit]
    samples = [
        Sample(stem=p.stem, image_path=p, labels=(cls,), mask_path=root / "masks" / f"{p.stem}.png") for p in images
    ]
    return Dataset(samples=tuple(samples), classmap=ClassMap.from_names([cls]))


def evaluate(masks: dict[str, np.ndarray], ds: Dataset) -> dict[str, float]:
    """mIoU over {bg, object} from the pooled confusion matrix and mean per-image object IoU."""
    conf = np.zeros((2, 2), np.int64)
    per_image = []
    for s in ds:
        gt = s.load_mask()
        valid = gt != 255
        g = (gt != 0)[valid]
        p = (masks[s.stem] != 0)[valid]
        conf += np.bincount(g.astype(np.int64) * 2 + p, minlength=4).reshape(2, 2)
        union = (g | p).sum()
        per_image.append(1.0 if union == 0 else (g & p).sum() / union)
    ious = [conf[c, c] / max(conf[c].sum() + conf[:, c].sum() - conf[c, c], 1) for c in range(2)]
    return {
        "miou": float(np.mean(ious)),
        "iou_bg": float(ious[0]),
        "iou_obj": float(ious[1]),
        "mean_image_iou": float(np.mean(per_image)),
    }


def machine_info(threads: int) -> str:
    import cv2
    import torch
    import torchvision

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    return (
        f"machine: {cpu}; {os.cpu_count()} cores; torch threads {threads}; load avg {load[0]:.1f}\n"
        f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
        f"opencv {cv2.__version__}, numpy {np.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    ap.add_argument(
        "--otsu-sets",
        nargs="+",
        default=["horse"],
        choices=list(SETS),
        help="sets on which the (slow, GFN-training) otsu variant runs",
    )
    ap.add_argument("--limit", type=int, default=200, help="images per set (first N by name); 0 = all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s"
    )
    import torch

    torch.set_num_threads(args.threads)
    print(machine_info(args.threads), flush=True)
    rows = []
    header = f"{'set':6} {'variant':20} {'n':>4} {'mIoU':>6} {'objIoU':>6} {'imgIoU':>6} {'s/img':>6} {'ref':>5}  notes"
    print(header, flush=True)
    for set_name in args.sets:
        ds = load_set(args.data, set_name, args.limit or None)
        for name in args.variants:
            route, overrides = VARIANTS[name]
            source = None
            if name == "otsu" and set_name not in args.otsu_sets:
                continue
            if name in SOURCES:
                src_name, src_n = SOURCES[name]
                if src_name == set_name:
                    continue
                source = load_set(args.data, src_name, src_n)
            cfg = InitConfig.from_dict({"keep_probs": False, "num_threads": args.threads, **overrides})
            t0 = time.perf_counter()
            try:
                res = make_initial_masks(ds, route=route, source=source, config=cfg)
            except Exception as exc:  # keep benchmarking the other variants
                log.exception("variant %s failed on %s", name, set_name)
                print(f"{set_name:6} {name:20} failed: {exc.__class__.__name__}: {exc}", flush=True)
                continue
            sec = (time.perf_counter() - t0) / len(ds)
            m = evaluate(res.masks, ds)
            notes = ""
            if "n_simple" in res.info:
                notes = f"{res.info['n_simple']} simple images"
            ref = REFERENCE.get(set_name, {}).get(name)
            row = {
                "set": set_name,
                "variant": name,
                "route": route,
                "overrides": overrides,
                "n": len(ds),
                **m,
                "seconds_per_image": sec,
                "reference_miou": ref,
            }
            rows.append(row)
            print(
                f"{set_name:6} {name:20} {len(ds):4d} {m['miou']:6.3f} {m['iou_obj']:6.3f} "
                f"{m['mean_image_iou']:6.3f} {sec:6.2f} {ref if ref is not None else '':>5}  {notes}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
