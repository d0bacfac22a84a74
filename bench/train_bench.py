"""Benchmark of the training recipe on CPU: throughput side by side, and quality at a time budget.

Modes:
  throughput (default)  images/s of training steps (data loading included) of several recipes built
                        in the same process and timed in turn (round-robin, so a load change on the
                        shared machine hits all of them): median over ``--steps`` timed steps each,
                        after ``--warmup`` steps. Recipes: ``legacy`` (the SGD recipe before issue 10
                        at its default crop 321), ``default`` (``TrainConfig()``), and the variants
                        of ``VARIANTS`` (one knob of the default changed at a time).
  quality               ``--time-budget S``: ``gfn-autolabel train`` with its defaults (plus ``--set``
                        items) on ECSSD dev, ``gfn-autolabel predict`` on the Weizmann horses with its
                        defaults, mIoU over {background, object} from the pooled confusion matrix.

Usage:
  python bench/train_bench.py [--variants legacy,default] [--steps 7] [--threads 2]
  python bench/train_bench.py --time-budget 720 [--set freeze_stages=2] [--label NAME]
Results: ``bench/results/train_bench/*.json`` and ``.txt``, with the machine, the load average at
start and end and the torch threads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from core.config import parse_key_values  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "train_bench"
DATA = ROOT.parent / "shared" / "data"

VARIANTS: dict[str, dict[str, Any]] = {
    "legacy": {"legacy": True},
    "legacy@256": {"legacy": True, "crop_size": 256},
    "default": {},
    "default@321": {"crop_size": 321},
    "no_channels_last": {"channels_last": False},
    "no_freeze": {"freeze_stages": 0},
    "freeze2": {"freeze_stages": 2},
    "freeze4": {"freeze_stages": 4},
    "no_cache": {"cache_images": False},
    "sgd_step": {"optimizer": "sgd", "schedule": "step", "lr": 0.007, "backbone_lr_mult": 1.0},
}
"""Named recipes: TrainConfig overrides on top of ``TrainConfig()`` (or ``TrainConfig.legacy()``)."""


def machine_info(threads: int) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "torch_threads": threads,
        "load_avg_at_start": os.getloadavg(),
    }


def recipe(name: str) -> TrainConfig:
    if name not in VARIANTS:
        raise SystemExit(f"unknown variant {name!r}; known: {list(VARIANTS)}")
    fields = dict(VARIANTS[name])
    return TrainConfig.legacy(**fields) if fields.pop("legacy", False) else TrainConfig.from_dict(fields)


def pairs_of(folder: Path) -> list[tuple[Path, Path]]:
    return [
        (p, folder / "masks" / f"{p.stem}.png")
        for p in sorted((folder / "images").iterdir())
        if (folder / "masks" / f"{p.stem}.png").is_file()
    ]


# ---------------------------------------------------------------- throughput
def make_stepper(config: TrainConfig, pairs: list) -> Callable[[], int]:
    """One training step of ``config`` as the trainer runs it (same set-up, data loading included);
    returns the batch size."""
    from torch.utils.data import DataLoader

    from core.network import GFNConfig, build_model
    from core.network.backbones import freeze_stages
    from core.training.data import PairDataset
    from core.training.schedule import build_optimizer
    from core.training.trainer import _EpochSampler, _freezing, _param_groups, segmentation_loss, set_train_mode

    gcfg = GFNConfig()
    torch.manual_seed(0)
    model = build_model(gcfg)
    freeze_bn, n_frozen = _freezing(config, model, gcfg)
    if n_frozen:
        freeze_stages(model.backbone, n_frozen)
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    ds = PairDataset(
        pairs,
        num_classes=2,
        crop_size=config.crop_size,
        scale_range=config.scale_range,
        max_side=config.max_side,
        seed=0,
    )
    if config.cache_images:
        ds.preload()
    sampler = _EpochSampler(len(ds), 0)
    loader = DataLoader(ds, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers)
    opt = build_optimizer(config, _param_groups(model, config.lr, config.backbone_lr_mult))
    set_train_mode(model, freeze_bn, n_frozen)
    state = {"it": iter(loader), "epoch": 0}

    def step() -> int:
        try:
            x, y = next(state["it"])
        except StopIteration:
            state["epoch"] += 1
            ds.epoch = state["epoch"]
            sampler.set_epoch(state["epoch"])
            state["it"] = iter(loader)
            x, y = next(state["it"])
        loss = segmentation_loss(model(x.contiguous(memory_format=fmt)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return x.shape[0]

    return step


def bench_throughput(names: list[str], pairs: list, steps: int, warmup: int) -> dict[str, Any]:
    steppers = {n: make_stepper(recipe(n), pairs) for n in names}
    for n in names:
        for _ in range(warmup):
            steppers[n]()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(steps):
        for n in names:
            t, c = time.perf_counter(), time.process_time()
            b = steppers[n]()
            wall[n].append(b / (time.perf_counter() - t))
            cpu[n].append(b / (time.process_time() - c))
    out = {}
    for n in names:
        cfg = recipe(n)
        out[n] = {
            "img_per_s": statistics.median(wall[n]),
            "img_per_cpu_s": statistics.median(cpu[n]),
            "img_per_s_all": [round(v, 3) for v in wall[n]],
            "crop_size": cfg.crop_size,
            "overrides": VARIANTS[n],
        }
    return out


# ---------------------------------------------------------------- quality
def cli(args: list[str], log_path: Path) -> float:
    """Run ``python -m core ARGS`` (its output, without the progress bars, appended to ``log_path``);
    returns seconds."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "core", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = [line.split("\r")[-1] for line in proc.stdout.splitlines()]
    with open(log_path, "a") as log:
        log.write(f"$ python -m core {' '.join(args)}\n" + "".join(f"{x}\n" for x in lines if x.strip()))
    if proc.returncode:
        raise SystemExit(f"python -m core {args[0]} failed (exit {proc.returncode}); see {log_path}")
    return time.perf_counter() - t


def bench_quality(
    budget: float,
    epochs: int,
    data: Path,
    threads: int,
    sets: list[str],
    legacy: bool,
    modules: str | None,
    gf_mode: str | None,
    work: Path,
    log_path: Path,
) -> dict[str, Any]:
    from core.metrics import evaluate_masks
    from core.network.checkpoint import load_checkpoint

    model, pred = work / "model.pt", work / "pred"
    extra = (["--legacy-recipe"] if legacy else []) + (["--modules", modules] if modules else [])
    extra += ["--gf-mode", gf_mode] if gf_mode else []
    for item in sets:
        extra += ["--set", item]
    length = ["--time-budget", str(budget)] if budget > 0 else ["--epochs", str(epochs)]
    train_s = cli(
        [
            "-v",
            "train",
            "--images",
            str(data / "ecssd" / "images"),
            "--masks",
            str(data / "ecssd" / "masks"),
            "--out",
            str(model),
            *length,
            "--threads",
            str(threads),
            *extra,
        ],
        log_path,
    )
    ck = load_checkpoint(model)
    predict_s = cli(
        [
            "predict",
            "--model",
            str(model),
            "--images",
            str(data / "weizmann_horse" / "images"),
            "--out",
            str(pred),
            "--threads",
            str(threads),
        ],
        log_path,
    )
    horses = pairs_of(data / "weizmann_horse")
    res = evaluate_masks(
        {p.stem: pred / f"{p.stem}.png" for p, _ in horses},
        {p.stem: m for p, m in horses},
        num_classes=2,
        class_names=["background", "object"],
    )
    rec = ck.training
    assert rec is not None, f"{model}: checkpoint without a training record"
    steps, seconds = rec.steps, rec.seconds
    batch = rec.train_config["batch_size"]
    return {
        "horse_miou": res.miou,
        "horse_mean_image_iou": res.mean_image_iou,
        "horse_boundary_f": res.boundary_f,
        "epochs": rec.epochs,
        "steps": steps,
        "train_seconds_in_trainer": seconds,
        "train_img_per_s": steps * batch / seconds if steps and seconds else None,
        "train_command_s": train_s,
        "predict_command_s": predict_s,
        "train_config": rec.train_config,
        "legacy": legacy,
        "modules": modules,
        "gf_mode": gf_mode,
        "set": sets,
    }


# ---------------------------------------------------------------- main
def write(result: dict[str, Any], stem: str, lines: list[str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {RESULTS / stem}.json / .txt")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help=f"folder with ecssd/ and weizmann_horse/ (default {DATA})")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="legacy,default", help=f"throughput: comma-separated, of {list(VARIANTS)}")
    ap.add_argument("--steps", type=int, default=7, help="throughput: timed steps per variant (median)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--time-budget", type=float, help="quality mode: train this many seconds")
    ap.add_argument("--epochs", type=int, help="quality mode at equal steps: train this many epochs (no budget)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="quality: TrainConfig override")
    ap.add_argument("--legacy-recipe", action="store_true", help="quality: train with the legacy recipe")
    ap.add_argument("--modules", default=None, help="quality: GFN module set (train --modules), default train's")
    ap.add_argument("--gf-mode", default=None, help="quality: the network's guided filter (train --gf-mode)")
    ap.add_argument("--label", default=None, help="name of the result files (default from the settings)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    parse_key_values(args.set)  # refuse a malformed item before minutes of training
    info = machine_info(args.threads)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    head = [
        f"machine: {info['cpu']}, {info['cores']} cores, {info['cpu_capability']}, torch {info['torch']}, "
        f"{args.threads} threads; load at start {tuple(round(v, 2) for v in info['load_avg_at_start'])}"
    ]
    if args.time_budget is None and args.epochs is None:
        names = args.variants.split(",")
        pairs = pairs_of(args.data / "ecssd")
        res = bench_throughput(names, pairs, args.steps, args.warmup)
        info["load_avg_at_end"] = os.getloadavg()
        lines = [*head, f"training throughput on ECSSD (batch 8, data loading included), median of {args.steps} steps:"]
        base = res[names[0]]["img_per_s"]
        for n in names:
            r = res[n]
            lines.append(
                f"  {n:18s} crop {r['crop_size']}: {r['img_per_s']:6.2f} img/s ({r['img_per_s'] / base:4.2f}x "
                f"{names[0]}), {r['img_per_cpu_s']:5.2f} img per CPU-s"
            )
        lines.append(f"load at end {tuple(round(v, 2) for v in info['load_avg_at_end'])}")
        write({"machine": info, "throughput": res}, args.label or f"throughput-{stamp}", lines)
        return 0
    label = args.label or (
        ("legacy" if args.legacy_recipe else "default")
        + (f"_{args.modules}" if args.modules else "")
        + (f"_gf_{args.gf_mode}" if args.gf_mode else "")
        + "".join(f"_{s}" for s in args.set)
    )
    length = f"{args.time_budget:.0f}s" if args.time_budget else f"{args.epochs}ep"
    stem = f"quality-{label}-{length}-{stamp}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="train_bench_") as tmp:
        res = bench_quality(
            args.time_budget or 0,
            args.epochs,
            args.data,
            args.threads,
            args.set,
            args.legacy_recipe,
            args.modules,
            args.gf_mode,
            Path(tmp),
            RESULTS / f"{stem}.log",
        )
    info["load_avg_at_end"] = os.getloadavg()
    lines = [
        *head,
        f"train ECSSD dev ({label}, {length}) -> predict weizmann_horse:",
        f"  horse mIoU {res['horse_miou']:.4f}, mean image IoU {res['horse_mean_image_iou']:.4f}, "
        f"boundary F {res['horse_boundary_f']:.4f}",
        f"  {res['steps']} steps, {res['epochs']} epochs, {res['train_img_per_s'] or 0:.2f} img/s in training; "
        f"train command {res['train_command_s']:.0f}s, predict command {res['predict_command_s']:.0f}s",
        f"load at end {tuple(round(v, 2) for v in info['load_avg_at_end'])}",
    ]
    write({"machine": info, "quality": res}, stem, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
