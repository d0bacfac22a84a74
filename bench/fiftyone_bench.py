"""Wall time of an auto-labelling run through the FiftyOne operator.

    python bench/fiftyone_bench.py [--n 200] [--size 96] [--rounds 3] [--init auto] [--set key=value ...]
                                   [--out REPORT.json]

Builds the built-in example (``--n`` images) as a FiftyOne dataset on a temporary database and runs
``@gfn-autolabel/gfn/auto_label`` on it the way the App would for a target this large: as a
delegated operation (queued, then executed by ``DelegatedOperationService`` in this process, like
``fiftyone delegated launch``). Prints machine info, the settings, per-round engine seconds and
mIoU, and the wall time split into engine and plugin overhead (building the target, writing the
fields, storing the run); then the cost of the label-free review signals (confidence heatmaps from
the stored probabilities and their field) per round against a reference measured in the same run,
writing the round's mask field (median of ``--repeat`` runs each); ``--out`` also writes it as
JSON. (The engine caps its training crop at the images' size, so the 96 px example trains on 96 px
crops without ``--set crop_size=96``.)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="example images (default 200)")
    p.add_argument("--size", type=int, default=96, help="example image side in pixels (default 96)")
    p.add_argument("--rounds", type=int, default=3, help="refinement rounds (default 3)")
    p.add_argument("--init", default="auto", help="initial-mask route (default auto)")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="other RunConfig settings, values as JSON (e.g. epochs=2 pretrained=false)",
    )
    p.add_argument("--repeat", type=int, default=3, help="repetitions of the signals timing (default 3)")
    p.add_argument("--out", default=None, help="also write the report as JSON to this file")
    return p.parse_args(argv)


def machine_info() -> dict:
    import fiftyone as fo
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "fiftyone": fo.__version__,
        "cuda": torch.cuda.is_available(),
        "load_average": os.getloadavg(),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tmp = Path(tempfile.mkdtemp(prefix="gfn_fiftyone_bench_"))
    (tmp / "plugins").mkdir()
    (tmp / "plugins" / "gfn_fiftyone").symlink_to(ROOT / "gfn_fiftyone", target_is_directory=True)
    os.environ.update(
        {
            "FIFTYONE_DATABASE_DIR": str(tmp / "db"),
            "FIFTYONE_PLUGINS_DIR": str(tmp / "plugins"),
            "FIFTYONE_DEFAULT_DATASET_DIR": str(tmp / "datasets"),
            "FIFTYONE_DO_NOT_TRACK": "true",
            "FIFTYONE_DATABASE_VALIDATION": "false",
            "GFN_FIFTYONE_RUNS_DIR": str(tmp / "runs"),
        }
    )
    sys.path.insert(0, str(ROOT))
    import fiftyone as fo
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    from core.config import parse_key_values
    from core.data.example import make_example
    from core.refine.config import RunConfig

    engine = parse_key_values(args.set)
    config = RunConfig.from_dict({**engine, "init": args.init, "rounds": args.rounds})
    info = machine_info()
    print("machine:", json.dumps(info))
    print("settings:", json.dumps({"n": args.n, "size": args.size, **config.to_dict()}))
    try:
        t0 = time.perf_counter()
        example = make_example(tmp / "example", n=args.n, size=args.size)
        ds = fo.Dataset("gfn-bench")
        ds.add_samples(
            [
                fo.Sample(
                    filepath=str(s.image_path),
                    ground_truth=fo.Classification(label=s.labels[0]),
                    gt=fo.Segmentation(mask_path=str(s.mask_path)),
                )
                for s in example
            ]
        )
        ds.mask_targets = {"gt": example.classmap.to_dict()}
        ds.save()
        setup_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        params = {
            "label_field": "ground_truth",
            "init": args.init,
            "rounds": args.rounds,
            "output_prefix": "gfn",
            "gt_field": "gt",
            "engine_options": engine,
        }
        queued = foo.execute_operator("@gfn-autolabel/gfn/auto_label", ctx={"dataset": ds, "params": params})
        delegated = bool(queued.delegated)
        if delegated:
            results = DelegatedOperationService().execute_queued_operations(dataset_name=ds.name)
            if len(results) != 1 or results[0].error:
                raise RuntimeError(f"delegated run failed: {results[0].error if results else 'nothing ran'}")
            summary = results[0].result
        else:
            summary = queued.result
        wall = time.perf_counter() - t0

        res = ds.load_run_results("gfn")
        rows = [
            {k: r.get(k) for k in ("round", "route", "miou", "changed", "reliability", "seconds")} for r in res.rounds
        ]
        engine_s = sum(r["seconds"] or 0.0 for r in rows)
        signals_timing = time_signals(ds, Path(summary["run_dir"]), args.repeat)
        report = {
            "machine": info,
            "signals": signals_timing,
            "n_images": args.n,
            "size": args.size,
            "config": config.to_dict(),
            "delegated": delegated,
            "setup_seconds": setup_s,
            "wall_seconds": wall,
            "engine_seconds": engine_s,
            "plugin_overhead_seconds": wall - engine_s,
            "best_round": summary["best_round"],
            "stopped_reason": summary["stopped_reason"],
            "rounds": rows,
        }
        print(f"{'round':>5} {'route':>8} {'mIoU':>7} {'changed':>8} {'reliab.':>8} {'seconds':>8}")
        for r in rows:
            print(
                f"{r['round']:>5} {r['route']!s:>8} {r['miou'] or 0:7.4f} {r['changed'] or 0:8.4f} "
                f"{r['reliability'] or 0:8.4f} {r['seconds'] or 0:8.1f}"
            )
        print(
            f"wall time through the operator ({'delegated' if delegated else 'immediate'}): {wall:.1f}s "
            f"(engine {engine_s:.1f}s, plugin {wall - engine_s:.1f}s) for {args.n} images, "
            f"best round {summary['best_round']} ({summary['stopped_reason']})"
        )
        for row in signals_timing["rounds"]:
            print(
                f"round {row['round']}: confidence maps + heatmap field {row['signals_ms_per_image']:.2f} ms/image, "
                f"reference mask field {row['reference_ms_per_image']:.2f} ms/image (medians of {args.repeat})"
            )
        print(f"load average at the end: {os.getloadavg()}")
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2))
            print(f"wrote {out}")
        ds.delete()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def time_signals(ds, run_dir: Path, repeat: int) -> dict:
    """Per round: median seconds of the review signals (confidence PNGs from the probabilities + the
    Heatmap field) and of the reference, the round's Segmentation field write, in the same process."""
    import statistics

    from core.classmap import ClassMap
    from core.refine.runner import load_run
    from gfn_fiftyone import convert, signals
    from gfn_fiftyone.naming import RunNames

    run = load_run(run_dir)
    names = RunNames("gfn")
    ids = dict(zip((Path(p).stem for p in ds.values("filepath")), ds.values("id")))
    targets = ClassMap(tuple(ds.mask_targets["gfn"][i] for i in sorted(ds.mask_targets["gfn"])))
    rows = []
    for info in run.rounds:
        masks = {p.stem: p for p in sorted(info.masks_dir.glob("*.png"))}
        sig, ref = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            maps = signals.write_confidence_maps(run_dir, info)
            signals.write_heatmap_field(ds, names.confidence(info.index), maps, ids)
            sig.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            convert.write_masks_field(ds, names.round(info.index), masks, ids, targets)
            ref.append(time.perf_counter() - t0)
        n = max(len(masks), 1)
        rows.append(
            {
                "round": info.index,
                "signals_ms_per_image": 1000 * statistics.median(sig) / n,
                "reference_ms_per_image": 1000 * statistics.median(ref) / n,
                "signals_seconds": sig,
                "reference_seconds": ref,
            }
        )
    return {"repeat": repeat, "rounds": rows, "load_average": os.getloadavg()}


if __name__ == "__main__":
    sys.exit(main())
