"""Benchmark of the whole engine (initial masks + refinement rounds) on real photos with human masks.

    python bench/quality.py [--data ../shared/data] [--settings horse transfer ecssd] [--out DIR]
                            [--limit N] [--set key=value ...]

Settings (image-level labels only; ground truth is read only to score every round):

1. ``horse``:    weizmann_horse, ``--class horse``, no source          target mIoU >= 0.86
2. ``transfer``: weizmann_horse with ecssd images + masks as source     target mIoU >= 0.93
3. ``ecssd``:    ecssd, ``--class object``, no source                   target mIoU >= 0.82

Also checked: the final round beats round 0, the label-free choice is within 0.01 mIoU of the best
round, setting 1 runs within 15 minutes. Prints machine info, the settings, the table route x round
(mIoU, mean per-image IoU, changed fraction, reliability) and seconds per image per stage; writes
everything as JSON to ``OUT/quality.json``.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"horse": 0.86, "transfer": 0.93, "ecssd": 0.82}
TIME_LIMIT_S = {"horse": 15 * 60}
SETTING_BASE = {
    "transfer": {"init": "transfer", "init_options": {"train": {"epochs": 4, "crop_size": 224}}},
    "ecssd": {"init": "grabcut", "init_options": {"coarse": "centre"}},
}
"""RunConfig settings of each setting before ``--set`` (engine defaults otherwise): the transfer
network trains 4 epochs at crop 224 on ecssd (CPU budget; the route's default is 10 epochs at 321);
ecssd starts from GrabCut in a centre box (0.47 s/image, against 0.81 for ``auto``'s coarse maps)."""


def machine_info() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def load_setting(name: str, data: Path, limit: int | None):
    """``(dataset, source)`` of a setting; ``limit`` keeps the first N images (quick checks)."""
    from core.data.readers import read_image_folder

    horse, ecssd = data / "weizmann_horse", data / "ecssd"
    for d in (horse, ecssd):
        if not (d / "images").is_dir():
            raise FileNotFoundError(f"benchmark data {d}/images not found; pass --data DIR")
    if name in ("horse", "transfer"):
        ds = read_image_folder(horse / "images", label="horse", masks=horse / "masks")
    elif name == "ecssd":
        ds = read_image_folder(ecssd / "images", label="object", masks=ecssd / "masks")
    else:
        raise ValueError(f"unknown setting {name!r}; known: {list(TARGETS)}")
    if limit:
        ds = ds.with_samples(ds.samples[:limit])
    source = read_image_folder(ecssd / "images", label="horse", masks=ecssd / "masks") if name == "transfer" else None
    return ds, source


def per_image_seconds(result) -> dict:
    n = max(len(result.rounds[0].scores), 1)
    out: dict[str, float] = {}
    for r in result.rounds:
        for stage, s in r.metrics.get("seconds", {}).items():
            if stage != "total":
                out[stage] = out.get(stage, 0.0) + s / n
    return {k: round(v, 3) for k, v in out.items()}


INIT_KEYS = ("init", "post.chain", "post.params", "seed")
"""RunConfig settings (dotted names, or sections of them) that decide round 0: a round 0 may be reused
between runs that agree on them."""


def decides_round0(name: str) -> bool:
    """Whether the dotted setting ``name`` is (inside) one of ``INIT_KEYS``."""
    return any(name == k or name.startswith(f"{k}.") for k in INIT_KEYS)


def seed_round0(run_dir: Path, donor: Path, config, dataset) -> None:
    """Start ``run_dir`` from ``donor``'s finished round 0 (tuning the refinement without redoing it)."""
    import shutil

    from core.refine import rundir
    from core.refine.config import RunConfig

    theirs = RunConfig.from_dict(rundir.read_json(donor / rundir.CONFIG))
    diff = [k for k in config.differences(theirs) if decides_round0(k)]
    if diff:
        raise SystemExit(f"--reuse-init {donor}: round 0 was made with different {diff}")
    if not rundir.is_done(donor, 0):
        raise SystemExit(f"--reuse-init {donor}: round 0 is not finished there")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    rundir.prepare(run_dir, config, dataset, resume=False, overwrite=False)
    shutil.copytree(rundir.round_dir(donor, 0), rundir.round_dir(run_dir, 0))


def run_setting(
    name: str, data: Path, out: Path, overrides: dict, limit: int | None, resume: bool, reuse_init: Path | None = None
) -> dict:
    from core.refine.config import RunConfig
    from core.refine.report import format_table
    from core.refine.runner import round_row, run_autolabel

    ds, source = load_setting(name, data, limit)
    base = SETTING_BASE.get(name, {})
    config = RunConfig.from_dict({**base, **overrides})
    print(
        f"\n=== {name}: {len(ds)} images, classes {list(ds.classmap.foreground)}"
        f"{', source ' + str(len(source)) + ' ecssd images' if source else ''}",
        flush=True,
    )
    print(f"settings: {json.dumps(config.to_dict())}", flush=True)
    t0 = time.perf_counter()
    if reuse_init is not None:
        seed_round0(out / name, reuse_init / name, config, ds)
        resume = True
    cpu0 = time.process_time()
    res = run_autolabel(ds, out / name, config, source=source, resume=resume, overwrite=not resume)
    secs = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(format_table(res), flush=True)
    rows = [round_row(r, res.best_round) for r in res.rounds]
    mious = [r["miou"] for r in rows]
    best_gt = max(m for m in mious if m is not None)
    final = res.round(res.best_round).miou
    report = {
        "setting": name,
        "n_images": len(ds),
        "config": config.to_dict(),
        "rounds": rows,
        "best_round": res.best_round,
        "best_round_gt": res.best_round_gt,
        "stopped": res.stopped_reason,
        "final_miou": final,
        "round0_miou": mious[0],
        "best_miou": best_gt,
        "seconds": secs,
        "cpu_seconds": cpu,
        "seconds_per_image": per_image_seconds(res),
        "checks": {
            "target": {"want": TARGETS[name], "got": final, "ok": final is not None and final >= TARGETS[name]},
            "beats_round0": {
                "margin": None if final is None else final - mious[0],
                "ok": final is not None and final > mious[0],
            },
            "label_free_within_0.01": {"gap": best_gt - final, "ok": best_gt - final <= 0.01},
        },
    }
    if name in TIME_LIMIT_S and not limit:
        report["checks"]["time"] = {"want_s": TIME_LIMIT_S[name], "got_s": secs, "ok": secs <= TIME_LIMIT_S[name]}
    print(
        f"seconds per image per stage (all rounds): {report['seconds_per_image']}; total {secs:.0f}s wall, "
        f"{cpu:.0f}s CPU (wall on an idle 2-core machine is about CPU / 2; other jobs share this one)"
    )
    for k, c in report["checks"].items():
        print(f"check {k}: {'OK ' if c['ok'] else 'MISS'} {json.dumps({a: b for a, b in c.items() if a != 'ok'})}")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--settings", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quality")
    p.add_argument("--limit", type=int, help="first N images only (a quick check, not the benchmark)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="RunConfig overrides (JSON values)")
    p.add_argument("--resume", action="store_true", help="resume the runs in OUT instead of starting again")
    p.add_argument(
        "--reuse-init",
        type=Path,
        metavar="OUT",
        help="take round 0 from an earlier benchmark output (tuning only; its time is then not counted)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from core.config import parse_key_values

    try:
        overrides = parse_key_values(args.set)
    except ValueError as exc:
        p.error(str(exc))
    info = machine_info()
    print(f"machine: {json.dumps(info)}", flush=True)
    reports = [
        run_setting(n, args.data, args.out, overrides, args.limit, args.resume, args.reuse_init) for n in args.settings
    ]
    print("\n=== summary (route x round: mIoU / mean image IoU)")
    for rep in reports:
        cells = "  ".join(
            f"r{r['round']}: {r['miou']:.3f}/{r['mean_image_iou']:.3f}{'*' if r['best'] else ''}" for r in rep["rounds"]
        )
        print(f"{rep['setting']:9s} ({rep['rounds'][0]['route']}) {cells}  [{rep['seconds']:.0f}s]")
    args.out.mkdir(parents=True, exist_ok=True)
    from core.io.atomic import write_text_atomic

    write_text_atomic(args.out / "quality.json", json.dumps({"machine": info, "reports": reports}, indent=2))
    print(f"wrote {args.out / 'quality.json'}")
    return 0 if all(c["ok"] for rep in reports for c in rep["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
