"""Benchmark of one review pass: how much do a few human-corrected masks lift the others?

    python bench/review_bench.py [--data ../shared/data] [--rounds 2] [--fraction 0.1] [--limit N]
                                 [--out DIR] [--set KEY=VALUE ...] [-v]

On ``weizmann_horse`` (image-level label "horse" only; the ground truth is read to score and, below,
to play the reviewer):

1. run A, label-free (the reference, measured in the same process);
2. the ``--fraction`` least reliable images of A's final masks (A's own reliability, no ground
   truth) are "corrected": their ground-truth masks become fixed labels (``core.refine.fixed``);
3. run B: the same settings and seed with those fixed labels. B starts from A's round 0 (round 0
   does not depend on the fixed labels; the fixed images' round-0 masks are replaced exactly as a
   fresh run would), so only the refinement rounds are run again.

Printed: the machine and its load, both runs' per-round mIoU (confusion matrix over the set) and mean
per-image object IoU on the OTHER images (those not corrected) and on all, the final (label-free
chosen) round of each, and the lift B - A. Everything also goes to ``OUT/review.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "loadavg": os.getloadavg(),
    }


def scores(dataset, masks_dir: Path, stems: list[str]) -> dict:
    """mIoU and mean per-image object IoU of ``masks_dir`` on the images ``stems``."""
    from core.refine.evaluate import evaluate_round

    sub = dataset.with_samples([s for s in dataset if s.stem in set(stems)])
    ev = evaluate_round(sub, masks_dir) or {}
    return {"miou": ev.get("miou"), "mean_image_iou": ev.get("mean_image_iou"), "n": len(sub)}


def seed_from(run_b: Path, run_a: Path, config, dataset, fixed_masks: dict) -> None:
    """Start ``run_b`` from ``run_a``'s finished round 0 with the fixed labels in place (what
    ``run_autolabel(..., fixed=...)`` does to round 0), so that B then resumes at round 1."""
    from core.refine import fixed, rundir
    from core.refine import records as rec
    from core.refine.evaluate import evaluate_round

    if run_b.exists():
        shutil.rmtree(run_b)
    rundir.prepare(run_b, config, dataset, resume=False, overwrite=False)
    shutil.copytree(rundir.round_dir(run_a, 0), rundir.round_dir(run_b, 0))
    (rundir.round_dir(run_b, 0) / rundir.DONE).unlink(missing_ok=True)
    stored = fixed.prepare(run_b, fixed.check_all(fixed_masks, dataset), fresh=True)
    r0 = rundir.round_dir(run_b, 0)
    records, prov = rec.read_scores(r0)
    fixed.override_round(r0, records, prov, stored, config)
    metrics = rundir.read_json(r0 / "metrics.json")
    metrics.update(gt=evaluate_round(dataset, r0 / "masks"), label_free=rec.summarise(records))
    rundir.write_json(r0 / "metrics.json", metrics)
    rundir.mark_done(run_b, 0)


def run(name: str, dataset, out: Path, config, *, resume: bool = False, fixed=None) -> dict:
    from core.refine.runner import run_autolabel

    rows: list[dict] = []

    def on_round(info) -> None:
        row = {
            "round": info.index,
            "all": scores(dataset, info.masks_dir, dataset.stems),
            "reliability": info.reliability,
            "seconds": info.metrics.get("seconds", {}).get("total"),
            "loadavg": os.getloadavg(),
        }
        rows.append(row)
        print(
            f"  {name} round {info.index}: mIoU {row['all']['miou']:.4f} / image IoU "
            f"{row['all']['mean_image_iou']:.4f} (all images); "
            f"{row['seconds'] or 0:.0f}s; load {row['loadavg'][0]:.1f}",
            flush=True,
        )

    t0, cpu0 = time.perf_counter(), time.process_time()
    res = run_autolabel(dataset, out, config, resume=resume, overwrite=not resume, on_round=on_round, fixed=fixed)
    final = res.final_masks_dir
    return {
        "rounds": rows,
        "best_round": res.best_round,
        "status": res.status,
        "stopped": res.stopped_reason,
        "final_all": scores(dataset, final, dataset.stems),
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
        "result": res,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "review")
    p.add_argument("--rounds", type=int, default=2, help="refinement rounds of both runs (default 2)")
    p.add_argument("--fraction", type=float, default=0.1, help="share of images corrected (default 0.1)")
    p.add_argument("--limit", type=int, help="first N images only (a quick check, not the benchmark)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="RunConfig overrides (JSON values)")
    p.add_argument("--reuse-a", action="store_true", help="take run A from OUT/A when it is finished")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from core.config import parse_key_values
    from core.data.readers import read_image_folder
    from core.refine.config import RunConfig
    from core.refine.runner import load_run

    horse = args.data / "weizmann_horse"
    dataset = read_image_folder(horse / "images", label="horse", masks=horse / "masks")
    if args.limit:
        dataset = dataset.with_samples(list(dataset)[: args.limit])
    config = RunConfig.from_dict({"rounds": args.rounds, **parse_key_values(args.set, "--set")})
    info = machine()
    print(f"machine: {json.dumps(info)}")
    print(f"weizmann_horse: {len(dataset)} images; settings: {json.dumps(config.to_dict())}", flush=True)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    print("run A (label-free, the reference):", flush=True)
    if args.reuse_a and (out / "A" / "run.json").is_file():
        res_a = load_run(out / "A")
        a = {"reused": True, "result": res_a, "rounds": [], "seconds": None, "cpu_seconds": None}
    else:
        a = run("A", dataset, out / "A", config)
        res_a = a["result"]
    # the reviewer's pick: A's least reliable final masks (A's own label-free reliability)
    rel = res_a.round(res_a.best_round).scores
    n_fix = max(1, round(args.fraction * len(dataset)))
    worst = sorted(dataset.stems, key=lambda s: (rel[s], s))[:n_fix]
    others = [s for s in dataset.stems if s not in set(worst)]
    truth = {s.stem: s.require_mask() for s in dataset if s.stem in set(worst)}
    a_final_others = scores(dataset, res_a.final_masks_dir, others)
    a_final_all = scores(dataset, res_a.final_masks_dir, dataset.stems)
    a_worst = scores(dataset, res_a.final_masks_dir, worst)
    print(
        f"corrected: the {n_fix} least reliable of A's final masks (reliability {rel[worst[0]]:.3f}.."
        f"{rel[worst[-1]]:.3f}; their mIoU in A {a_worst['miou']:.4f}); the other {len(others)} are scored",
        flush=True,
    )

    print("run B (the corrected masks fixed; round 0 = A's round 0 with them in place):", flush=True)
    seed_from(out / "B", out / "A", config, dataset, truth)
    b = run("B", dataset, out / "B", config, resume=True)
    res_b = b["result"]
    b["final_others"] = scores(dataset, res_b.final_masks_dir, others)
    per_round = {
        name: {r.index: scores(dataset, r.masks_dir, others)["miou"] for r in res.rounds}
        for name, res in (("A", res_a), ("B", res_b))
    }
    print(f"\nmIoU of the other {len(others)} images per round: {json.dumps(per_round)}")
    from core.io.images import read_mask

    b_fixed_ok = all((read_mask(res_b.final_masks_dir / f"{s}.png") == truth[s]).all() for s in worst)
    print(f"B's final masks of the corrected images are the ground truth: {b_fixed_ok}")

    lift_others = b["final_others"]["miou"] - a_final_others["miou"]
    lift_all = b["final_all"]["miou"] - a_final_all["miou"]
    print("\n| run | final round | others mIoU | others image IoU | all mIoU | all image IoU |")
    print("|---|---|---|---|---|---|")
    for name, res, fo_, fa in (
        ("A label-free", res_a, a_final_others, a_final_all),
        (f"B {n_fix} fixed", res_b, b["final_others"], b["final_all"]),
    ):
        print(
            f"| {name} | {res.best_round} | {fo_['miou']:.4f} | {fo_['mean_image_iou']:.4f} | "
            f"{fa['miou']:.4f} | {fa['mean_image_iou']:.4f} |"
        )
    print(f"lift on the other {len(others)}: {lift_others:+.4f} mIoU; on all {len(dataset)}: {lift_all:+.4f} mIoU")
    print(f"load average at the end: {os.getloadavg()}")
    report = {
        "machine": info,
        "loadavg_end": os.getloadavg(),
        "n_images": len(dataset),
        "config": config.to_dict(),
        "corrected": worst,
        "A": {k: v for k, v in a.items() if k != "result"}
        | {"final_others": a_final_others, "final_all": a_final_all, "best_round": res_a.best_round},
        "B": {k: v for k, v in b.items() if k != "result"},
        "others_miou_per_round": per_round,
        "lift_others_miou": lift_others,
        "lift_all_miou": lift_all,
        "fixed_written": b_fixed_ok,
    }
    (out / "review.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print(f"wrote {out / 'review.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
