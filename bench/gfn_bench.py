"""Benchmark of the Guided Filter Network on CPU: quality, ablation, speed.

Sections (``--sections``, default all):
  speed     forward images/s at 320x320 (whole GFN, backbone alone), training images/s, peak RSS,
            guided filter ms per megapixel vs ``cv2.ximgproc.guidedFilter`` at the same radius.
  quality   fully supervised sanity: train on ECSSD ground truth (MobileNetV2, ImageNet init, time
            budget), choose the GF's r/eps on held-out ECSSD images, evaluate on Weizmann horses.
  ablation  the same setting with a shorter budget per row: baseline, +GF, +HGL, +BG, all.
  guided    the guided filter (no grad, differentiable forward, forward+backward) vs OpenCV at 1 MP
            for r = 2..32, gray and colour guides (bench/guided_bench.py; not in the default).

Usage: python bench/gfn_bench.py [--data ../shared/data] [--sections speed,quality,ablation]
mIoU is over {background, object} from the confusion matrix pooled over the whole set, plus the
mean per-image object IoU. Timings are medians of several runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import multiprocessing
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


# ---------------------------------------------------------------- ablation at equal CPU seconds
ABLATION_ROWS = "baseline,bg,hgl,gf,all,all:gf_mode=fast,gf:gf_mode=fast"
"""Default rows: the paper's module sets with the current design, then the redesigned guided filter."""


def parse_row(spec: str) -> tuple[str, dict[str, Any]]:
    """``"all:gf_mode=fast,decoder_channels=64"`` -> ``("all", {"gf_mode": "fast", "decoder_channels": 64})``."""
    name, _, rest = spec.partition(":")
    fields: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"ablation row {spec!r}: expected NAME[:FIELD=VALUE,...], got {item!r}")
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value
    GFNConfig.for_ablation(name, pretrained=False, **fields)  # refuse bad rows before any training
    return name, fields


def row_config(spec: str) -> GFNConfig:
    name, fields = parse_row(spec)
    return GFNConfig.for_ablation(name, **fields)


def forward_speed(specs: list[str], runs: int, size: int = 320, batch: int = 4) -> dict[str, dict[str, float]]:
    """Forward images/s of each row at ``size`` px, measured in this process, interleaved row by row
    (``runs`` rounds, medians), as wall images/s and images per CPU-second."""
    torch.manual_seed(0)
    models = {s: build_model(dataclasses.replace(row_config(s), pretrained=False)).eval() for s in specs}
    x = torch.randn(batch, 3, size, size)
    wall: dict[str, list[float]] = {s: [] for s in specs}
    cpu: dict[str, list[float]] = {s: [] for s in specs}
    with torch.inference_mode():
        for s in specs:
            models[s](x)  # warm-up
        for _ in range(runs):
            for s in specs:
                t, c = time.perf_counter(), time.process_time()
                models[s](x)
                wall[s].append(time.perf_counter() - t)
                cpu[s].append(time.process_time() - c)
    return {
        s: {"img_per_s": batch / statistics.median(wall[s]), "img_per_cpu_s": batch / statistics.median(cpu[s])}
        for s in specs
    }


_DATASET: Any = None  # the training pairs of this worker process, decoded once (shared by its jobs)


def _worker_init(threads: int, train_pairs: list[tuple[Path, Path]], tcfg: TrainConfig) -> None:
    global _DATASET
    from core.training.data import PairDataset

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    _DATASET = PairDataset(
        train_pairs,
        num_classes=2,
        crop_size=tcfg.crop_size,
        scale_range=tcfg.scale_range,
        max_side=tcfg.max_side,
        seed=tcfg.seed,
    )
    _DATASET.preload()


def train_cpu_budget(model: torch.nn.Module, ds: Any, tcfg: TrainConfig, budget_cpu_s: float) -> dict[str, Any]:
    """Train ``model`` with the recipe ``tcfg`` until this process has used ``budget_cpu_s`` CPU
    seconds (``time.process_time()``: every thread of the process, data augmentation included), the
    cosine schedule running over the CPU budget. The pieces are the trainer's public ones
    (optimiser, schedule, loss, train mode, frozen stages); only the clock differs."""
    from torch.utils.data import DataLoader

    from core.network.backbones import freeze_stages
    from core.training.schedule import build_optimizer, lr_factor
    from core.training.trainer import segmentation_loss, set_train_mode

    pretrained = bool(getattr(model, "config", GFNConfig()).pretrained)
    freeze_bn = pretrained if tcfg.freeze_bn is None else tcfg.freeze_bn
    n_frozen = tcfg.freeze_stages if tcfg.freeze_stages is not None else (3 if pretrained else 0)
    frozen = freeze_stages(model.backbone, n_frozen) if n_frozen else []  # type: ignore[arg-type]
    bb = {id(p) for p in model.backbone.parameters()}  # type: ignore[union-attr]
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if id(p) in bb], "lr_mult": tcfg.backbone_lr_mult},
        {"params": [p for p in params if id(p) not in bb], "lr_mult": 1.0},
    ]
    groups = [g for g in groups if g["params"]]
    opt = build_optimizer(tcfg, groups)
    fmt = torch.channels_last if tcfg.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)  # type: ignore[call-overload]
    ds.seed = tcfg.seed
    gen = torch.Generator().manual_seed(tcfg.seed)
    c0, t0 = time.process_time(), time.perf_counter()
    steps, seen, losses, epoch = 0, 0, [], 0
    done = False
    while not done:
        ds.epoch = epoch
        loader = DataLoader(ds, batch_size=tcfg.batch_size, shuffle=True, generator=gen, num_workers=0)
        set_train_mode(model, freeze_bn, n_frozen)
        for x, y in loader:
            frac = (time.process_time() - c0) / budget_cpu_s
            if frac >= 1:
                done = True
                break
            lr = tcfg.lr * lr_factor(tcfg, frac, epoch, tcfg.step_epochs)
            for g in opt.param_groups:
                g["lr"] = lr * g["lr_mult"]
            loss = segmentation_loss(model(x.to(memory_format=fmt)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps, seen = steps + 1, seen + x.shape[0]
            losses.append(float(loss.detach()))
        epoch += 1
    model.eval()
    model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    for p in frozen:
        p.requires_grad_(True)
    cpu = time.process_time() - c0
    return {
        "steps": steps,
        "images": seen,
        "epochs": round(seen / len(ds), 2),
        "cpu_s": round(cpu, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "train_img_per_cpu_s": seen / cpu if cpu else 0.0,
        "loss_first_last": [round(float(np.mean(losses[:10])), 4), round(float(np.mean(losses[-10:])), 4)],
    }


def _ablation_job(
    spec: str, seed: int, budget: float, tcfg: TrainConfig, horse: list, val: list, eval_side: int | None
) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = build_model(row_config(spec))
    row: dict[str, Any] = {"row": spec, "seed": seed}
    row["train"] = train_cpu_budget(model, _DATASET, dataclasses.replace(tcfg, seed=seed), budget)
    c = time.process_time()
    row["horse"] = evaluate(model, horse, eval_side)
    row["ecssd_val"] = evaluate(model, val, eval_side)
    row["eval_cpu_s"] = round(time.process_time() - c, 1)
    row["load_avg"] = os.getloadavg()
    log.info(
        "%s seed %d: horse %.4f, ECSSD val %.4f (%s)",
        spec,
        seed,
        row["horse"]["miou"],
        row["ecssd_val"]["miou"],
        json.dumps(row["train"]),
    )
    return row


def summarize(rows: list[dict[str, Any]], specs: list[str]) -> list[dict[str, Any]]:
    """Per row spec: mean, std and min/max over seeds of horse and ECSSD-val mIoU."""
    out = []
    for s in specs:
        got = [r for r in rows if r["row"] == s]
        if not got:
            continue
        entry: dict[str, Any] = {"row": s, "seeds": sorted(r["seed"] for r in got)}
        for key in ("horse", "ecssd_val"):
            v = [r[key]["miou"] for r in got]
            entry[key] = {
                "mean": float(np.mean(v)),
                "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                "min": min(v),
                "max": max(v),
            }
        entry["steps_mean"] = float(np.mean([r["train"]["steps"] for r in got]))
        entry["train_img_per_cpu_s"] = float(np.mean([r["train"]["train_img_per_cpu_s"] for r in got]))
        out.append(entry)
    return out


def markdown_table(summary: list[dict[str, Any]], speed: dict[str, dict[str, float]], budget: float) -> str:
    lines = [
        "| row | horse mIoU mean ± std [min, max] | ECSSD val mIoU mean ± std [min, max] "
        f"| steps in {budget:.0f} CPU-s | train img/CPU-s | forward img/CPU-s at 320 |",
        "|---|---|---|---|---|---|",
    ]
    for e in summary:
        h, v = e["horse"], e["ecssd_val"]
        fwd = speed.get(e["row"], {}).get("img_per_cpu_s", float("nan"))
        lines.append(
            f"| {e['row']} | {h['mean']:.3f} ± {h['std']:.3f} [{h['min']:.3f}, {h['max']:.3f}] "
            f"| {v['mean']:.3f} ± {v['std']:.3f} [{v['min']:.3f}, {v['max']:.3f}] "
            f"| {e['steps_mean']:.0f} | {e['train_img_per_cpu_s']:.2f} | {fwd:.1f} |"
        )
    return "\n".join(lines)


def bench_ablation(args: argparse.Namespace, ecssd: list, horse: list, dump: Callable[[dict], None]) -> dict[str, Any]:
    """Each row trained on ECSSD dev minus the validation split for ``--ablation-cpu-budget`` CPU
    seconds per seed with ``TrainConfig()``'s recipe, evaluated on the dev horses and the split."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    specs = args.ablation_rows.split(",")
    for s in specs:
        parse_row(s)
    seeds = [int(s) for s in args.seeds.split(",")]
    val, tr = ecssd[: args.n_val], ecssd[args.n_val :]
    tcfg = TrainConfig()
    eval_side = tcfg.max_side
    out: dict[str, Any] = {
        "rows": specs,
        "seeds": seeds,
        "cpu_budget_s": args.ablation_cpu_budget,
        "jobs": args.jobs,
        "threads_per_job": args.threads,
        "train_config": tcfg.to_dict(),
        "n_train": len(tr),
        "n_val": len(val),
        "n_horse": len(horse),
        "eval_max_side": eval_side,
    }
    out["forward_speed_320"] = forward_speed(specs, args.runs)
    log.info("forward speed at 320: %s", json.dumps(out["forward_speed_320"]))
    dump(out)
    rows: list[dict[str, Any]] = []
    jobs = [(s, seed) for seed in seeds for s in specs]  # seed-major: a cut-short run has whole seeds
    ctx = multiprocessing.get_context("spawn")  # no fork of a process whose OpenMP pool is running
    with ProcessPoolExecutor(
        args.jobs, mp_context=ctx, initializer=_worker_init, initargs=(args.threads, tr, tcfg)
    ) as pool:
        futures = [
            pool.submit(_ablation_job, s, seed, args.ablation_cpu_budget, tcfg, horse, val, eval_side)
            for s, seed in jobs
        ]
        for f in as_completed(futures):
            rows.append(f.result())
            out["runs"] = sorted(rows, key=lambda r: (r["seed"], specs.index(r["row"])))
            out["summary"] = summarize(rows, specs)
            dump(out)
    out["table_md"] = markdown_table(out["summary"], out["forward_speed_320"], args.ablation_cpu_budget)
    log.info("ablation at %.0f CPU-s per row:\n%s", args.ablation_cpu_budget, out["table_md"])
    return out


def merge_ablations(paths: list[Path], out_dir: Path) -> int:
    """One table from the runs of several ablation JSON files (same budget and rows)."""
    parts = [json.loads(p.read_text()) for p in paths]
    abl = [p["ablation"] for p in parts]
    budgets = {a["cpu_budget_s"] for a in abl}
    if len(budgets) != 1:
        raise SystemExit(f"the files have different CPU budgets {sorted(budgets)}: {[str(p) for p in paths]}")
    specs = list(dict.fromkeys(s for a in abl for s in a["rows"]))
    runs = [r for a in abl for r in a.get("runs", [])]
    speed = abl[0]["forward_speed_320"]
    merged = {
        "merged_from": [str(p) for p in paths],
        "machines": [p["machine"] for p in parts],
        "ablation": {**abl[0], "rows": specs, "runs": runs, "seeds": sorted({r["seed"] for r in runs})},
    }
    merged["ablation"]["summary"] = summarize(runs, specs)
    merged["ablation"]["table_md"] = markdown_table(merged["ablation"]["summary"], speed, budgets.pop())
    out = out_dir / f"ablation-merged-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(merged, indent=2, default=float))
    out.with_suffix(".md").write_text(merged["ablation"]["table_md"] + "\n")
    print(merged["ablation"]["table_md"])  # CLI output
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--sections", default="speed,quality,ablation")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5, help="timing repetitions (median)")
    ap.add_argument("--budget", type=float, default=840, help="quality training budget, seconds")
    ap.add_argument(
        "--ablation-cpu-budget", type=float, default=120, help="training CPU seconds (process_time) per row and seed"
    )
    ap.add_argument("--ablation-rows", default=ABLATION_ROWS, help="comma-separated NAME[:FIELD=VALUE...] rows")
    ap.add_argument("--seeds", default="0,1,2", help="ablation seeds")
    ap.add_argument("--jobs", type=int, default=2, help="ablation runs in parallel (each with --threads threads)")
    ap.add_argument(
        "--merge",
        nargs="+",
        default=None,
        help="only merge the runs of these ablation JSON files (e.g. seeds run in parallel) into one table",
    )
    ap.add_argument("--out-dir", default=str(ROOT / "bench" / "results" / "gfn_bench"), help="ablation JSON + table")
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--max-side", type=int, default=256)
    ap.add_argument("--n-val", type=int, default=50, help="ECSSD images held out (GF grid search, ablation val)")
    ap.add_argument("--save-dir", default="/tmp/gfn_bench")
    ap.add_argument("--limit", type=int, default=None, help="use only this many images per set (smoke runs)")
    ap.add_argument("--json", default=None, help="write all figures to this JSON file")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    import cv2

    cv2.setNumThreads(args.threads)
    if args.merge:
        return merge_ablations([Path(p) for p in args.merge], Path(args.out_dir))
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
    if "guided" in sections:  # the guided filter vs OpenCV at 1 MP, r = 2..32 (bench/guided_bench.py)
        sys.path.insert(0, str(ROOT / "bench"))
        import guided_bench

        results["guided"] = guided_bench.run(max(5, args.runs))
        log.info("guided filter vs cv2.ximgproc.guidedFilter:\n%s", results["guided"]["table"])
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
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out_dir = Path(args.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"ablation-{args.ablation_cpu_budget:.0f}cpus-{stamp}.json"

        def dump_ablation(part: dict) -> None:
            results["ablation"] = part
            path.write_text(json.dumps(results, indent=2, default=float))
            dump()

        dump_ablation(bench_ablation(args, ecssd, horse, dump_ablation))
        results["machine"]["load_avg_at_end"] = os.getloadavg()
        dump_ablation(results["ablation"])
        path.with_suffix(".md").write_text(results["ablation"]["table_md"] + "\n")
    results["peak_rss_mb_total"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    dump()
    log.info("done: %s", json.dumps(results, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
