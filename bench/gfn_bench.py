"""Benchmark of the Guided Filter Network on CPU: quality, ablation, speed.

Sections (``--sections``, default all):
  speed     forward images/s at 320x320 (whole GFN, backbone alone), training images/s, peak RSS,
            guided filter ms per megapixel vs ``cv2.ximgproc.guidedFilter`` at the same radius.
  quality   fully supervised sanity: train on ECSSD ground truth (MobileNetV2, ImageNet init, time
            budget), choose the GF's r/eps on held-out ECSSD images, evaluate on Weizmann horses.
  ablation  the same setting with a shorter budget per row: baseline, +GF, +HGL, +BG, all.

Usage: python bench/gfn_bench.py [--data ../shared/data] [--sections speed,quality,ablation]
mIoU is over {background, object} from the confusion matrix pooled over the whole set, plus the
mean per-image object IoU. Timings are medians of several runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.network import GFNConfig, build_model, save_checkpoint  # noqa: E402
from core.training import TrainConfig, grid_search_gf, predict, train  # noqa: E402
from core.training.data import load_mask  # noqa: E402
from core.training.evaluate import confusion, miou  # noqa: E402

log = logging.getLogger("gfn_bench")


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import cv2
    import torchvision

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "opencv": cv2.__version__,
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg(),
    }


def median_time(fn: Callable[[], Any], runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def pairs_of(folder: Path) -> list[tuple[Path, Path]]:
    imgs = sorted((folder / "images").iterdir())
    return [(p, folder / "masks" / f"{p.stem}.png") for p in imgs if (folder / "masks" / f"{p.stem}.png").exists()]


# ---------------------------------------------------------------- speed
def bench_speed(runs: int) -> dict[str, Any]:
    import cv2

    out: dict[str, Any] = {}
    torch.manual_seed(0)
    model = build_model(GFNConfig()).eval()
    x = torch.randn(4, 3, 320, 320)
    with torch.inference_mode():
        t = median_time(lambda: model(x), runs)
        out["forward_gfn_img_per_s_320"] = 4 / t
        t = median_time(lambda: model.backbone(x), runs)
        out["forward_backbone_img_per_s_320"] = 4 / t
    base = build_model(GFNConfig.for_ablation("baseline")).eval()
    with torch.inference_mode():
        out["forward_baseline_img_per_s_320"] = 4 / median_time(lambda: base(x), runs)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    xb, yb = torch.randn(8, 3, 320, 320), torch.randint(0, 2, (8, 320, 320))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()

    out["train_img_per_s_320_batch8"] = 8 / median_time(step, max(3, runs // 2))
    out["peak_rss_mb_after_model_speed"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    from core.filters import guided_filter

    rng = np.random.default_rng(0)
    h, w = 1000, 1000
    mp = h * w / 1e6
    for c in (1, 3):
        guide = rng.random((h, w, c), dtype=np.float32) if c == 3 else rng.random((h, w), dtype=np.float32)
        src = rng.random((h, w), dtype=np.float32)
        It = torch.from_numpy(guide).permute(2, 0, 1)[None] if c == 3 else torch.from_numpy(guide)[None, None]
        pt = torch.from_numpy(src)[None, None]
        for r in (2, 8, 32):
            with torch.inference_mode():
                ours = median_time(partial(guided_filter, It, pt, r, 1e-2), runs)
            ref = median_time(partial(cv2.ximgproc.guidedFilter, guide, src, r, 1e-2), runs)
            out[f"gf_c{c}_r{r}_ms_per_mp"] = 1000 * ours / mp
            out[f"cv2_c{c}_r{r}_ms_per_mp"] = 1000 * ref / mp
            out[f"gf_over_cv2_c{c}_r{r}"] = ours / ref
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


# ---------------------------------------------------------------- quality
def evaluate(model: torch.nn.Module, pairs: list[tuple[Path, Path]], max_side: int | None) -> dict[str, Any]:
    cm = np.zeros((2, 2), np.int64)
    per_image = []
    t = time.perf_counter()
    for (_img, mpath), pred in zip(pairs, predict(model, [p for p, _ in pairs], batch_size=1, max_side=max_side)):
        gt = (load_mask(mpath) > 0).astype(np.uint8)
        c = confusion((pred.mask > 0).astype(np.uint8), gt, 2)
        cm += c
        union = c[1, :].sum() + c[:, 1].sum() - c[1, 1]
        per_image.append(c[1, 1] / union if union else 1.0)
    m, iou = miou(cm)
    return {
        "miou": m,
        "iou_background": iou[0],
        "iou_object": iou[1],
        "mean_image_iou": float(np.mean(per_image)),
        "n_images": len(pairs),
        "predict_img_per_s": len(pairs) / (time.perf_counter() - t),
    }


def train_and_eval(
    name: str,
    cfg: GFNConfig,
    train_pairs,
    val_pairs,
    test_pairs,
    tcfg: TrainConfig,
    eval_side: int,
    save: Path | None,
    grid: bool,
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build_model(cfg)
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 60:
            last[0] = time.perf_counter()
            log.info("%s: step %d/%d", name, done, total)

    res = train(model, train_pairs, tcfg, progress=progress)
    row: dict[str, Any] = {
        "name": name,
        "modules": list(cfg.modules()),
        "steps": res.iterations,
        "epochs_done": res.epochs_done,
        "stopped": res.stopped_reason,
        "train_seconds": round(res.seconds, 1),
        "train_img_per_s": res.images_per_s,
        "losses": [round(x, 4) for x in res.losses],
    }
    if grid and cfg.use_gf:
        row["horse_default_gf"] = evaluate(model, test_pairs, eval_side)
        r, eps, table = grid_search_gf(
            model, val_pairs, radii=[1, 2, 4, 8], epss=[1e-3, 1e-2, 1e-1], max_side=eval_side
        )
        row["grid"] = {"r": r, "eps": eps, "table": table}
    row["horse"] = evaluate(model, test_pairs, eval_side)
    if val_pairs:
        row["ecssd_val"] = evaluate(model, val_pairs, eval_side)
    if save is not None:
        from core.classmap import ClassMap

        save_checkpoint(save, model, cfg, ClassMap(("background", "object")), extra={"bench": row})
        row["checkpoint"] = str(save)
    log.info("%s: %s", name, json.dumps({k: v for k, v in row.items() if k != "grid"}, default=float))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--sections", default="speed,quality,ablation")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5, help="timing repetitions (median)")
    ap.add_argument("--budget", type=float, default=840, help="quality training budget, seconds")
    ap.add_argument("--ablation-budget", type=float, default=150, help="per ablation row, seconds")
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--max-side", type=int, default=256)
    ap.add_argument("--ablation-crop", type=int, default=192)
    ap.add_argument("--ablation-max-side", type=int, default=256)
    ap.add_argument("--n-val", type=int, default=50, help="ECSSD images held out for the GF grid search")
    ap.add_argument("--save-dir", default="/tmp/gfn_bench")
    ap.add_argument("--limit", type=int, default=None, help="use only this many images per set (smoke runs)")
    ap.add_argument("--json", default=None, help="write all figures to this JSON file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    results: dict[str, Any] = {"machine": machine_info(), "args": vars(args)}
    log.info("machine: %s", json.dumps(results["machine"]))
    sections = args.sections.split(",")
    data = Path(args.data)
    save_dir = Path(args.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)

    def dump() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=float))

    if "speed" in sections:
        results["speed"] = bench_speed(args.runs)
        log.info("speed: %s", json.dumps(results["speed"], default=float))
        dump()
    if "quality" in sections or "ablation" in sections:
        ecssd, horse = pairs_of(data / "ecssd"), pairs_of(data / "weizmann_horse")
        if args.limit:
            ecssd, horse = ecssd[: args.limit], horse[: args.limit]
        val, tr = ecssd[: args.n_val], ecssd[args.n_val :]
        log.info("ECSSD: %d train, %d val; horses: %d", len(tr), len(val), len(horse))
    if "quality" in sections:
        tcfg = TrainConfig(
            epochs=6,
            step_epochs=4,
            batch_size=8,
            crop_size=args.crop,
            max_side=args.max_side,
            time_budget_s=args.budget,
            seed=0,
        )
        results["quality"] = train_and_eval(
            "all", GFNConfig(), tr, val, horse, tcfg, args.max_side, save_dir / "ecssd_gfn_all.pt", grid=True
        )
        dump()
    if "ablation" in sections:
        rows = []
        for name in ("baseline", "gf", "hgl", "bg", "all"):
            tcfg = TrainConfig(
                epochs=6,
                step_epochs=4,
                batch_size=8,
                crop_size=args.ablation_crop,
                max_side=args.ablation_max_side,
                time_budget_s=args.ablation_budget,
                seed=0,
            )
            rows.append(
                train_and_eval(
                    name, GFNConfig.for_ablation(name), tr, [], horse, tcfg, args.ablation_max_side, None, grid=False
                )
            )
            results["ablation"] = rows
            dump()
        log.info("ablation (horse mIoU): %s", {r["name"]: round(r["horse"]["miou"], 4) for r in rows})
    results["peak_rss_mb_total"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    dump()
    log.info("done: %s", json.dumps(results, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
