"""Rounds at scale (issue 11, item 3): ``gfn-autolabel run`` on N = 100, 300, 1,000 images x 3 rounds.

For each N the bench builds an image set from the dev data (``../shared/data``: the Weizmann horses
and the ECSSD images, interleaved in name order; longest side <= 400 px; past the 664 originals the
set goes on with horizontally flipped copies, then unflipped copies again: deterministic), labels
every image ``object`` (class-agnostic, the single-class default path), and runs

    python -m core run --images SET/images --class object --gt SET/masks --out RUN --rounds R
        --set stop.patience=R --set stop.converged_change=0 [--workers W] --no-progress

in a subprocess of its own, with every other setting at its default. ``stop.patience=R`` and
``stop.converged_change=0`` make every N run all R rounds (the collapse guard stays on), so the
sizes are compared on the same work. Per N it records the seconds of each stage of each round
(``round_XX/metrics.json``) per image, the total wall time of the process, its peak RSS (the
largest single process of the run, from ``os.wait4``'s rusage, i.e. the main process or one of its
worker processes), the peak summed RSS and PSS (shared pages split) of the process tree (main
process + worker processes, sampled every 0.5 s with psutil), the run's mIoU against the masks, and
the load average before and after, and the CPU seconds of the run's processes (user + system, from
the same rusage: the main process and the worker processes it waited for), which a loaded machine
inflates far less than the wall time. Cost is linear in N when the seconds per image stay flat.

Usage:
  python bench/scale.py [--sizes 100,300,1000] [--rounds 3] [--workers W] [--label NAME]
Results: ``bench/results/scale/<label>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

log = logging.getLogger("bench.scale")

RESULTS = ROOT / "bench" / "results" / "scale"
DATA = ROOT.parent / "shared" / "data"
SOURCES = ("weizmann_horse", "ecssd")
MAX_SIDE = 400


def full_rounds(rounds: int) -> tuple[str, ...]:
    """Settings that make the run do every one of ``rounds`` rounds (the collapse guard still stops it)."""
    return (f"stop.patience={max(rounds, 1)}", "stop.converged_change=0")


def machine_info() -> dict[str, Any]:
    """CPU, cores, library versions and torch's default threads in a fresh process of this machine."""
    import torch

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
        "affinity_cores": len(os.sched_getaffinity(0)),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "opencv": cv2.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def originals(data: Path) -> list[tuple[str, Path, Path]]:
    """``(stem, image, mask)`` of the dev sets, horses and ECSSD interleaved in name order."""
    lists = []
    for name in SOURCES:
        images = sorted((data / name / "images").glob("*.jpg"))
        if not images:
            raise SystemExit(f"no images in {data / name / 'images'} (see ../shared/data/README.md)")
        lists.append([(f"{name[:5]}_{p.stem}", p, data / name / "masks" / f"{p.stem}.png") for p in images])
    out: list[tuple[str, Path, Path]] = []
    for i in range(max(len(x) for x in lists)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def _fit(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longest side <= ``MAX_SIDE`` (area for the image, nearest for the mask)."""
    h, w = image.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return image, mask
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return (
        cv2.resize(image, size, interpolation=cv2.INTER_AREA),
        cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST),
    )


def build_set(n: int, out: Path, data: Path) -> Path:
    """``out/images/*.jpg`` + ``out/masks/*.png`` with ``n`` images (deterministic); returns ``out``.
    Copy ``c`` of an original (c >= 1) is flipped left-right when ``c`` is odd."""
    src = originals(data)
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    for i in range(n):
        stem, image_path, mask_path = src[i % len(src)]
        copy = i // len(src)
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        if image is None or mask is None:
            raise SystemExit(f"cannot read {image_path} or {mask_path}")
        image, mask = _fit(image, mask)
        if copy % 2:
            image, mask = image[:, ::-1], mask[:, ::-1]
        name = stem if copy == 0 else f"{stem}_c{copy}"
        cv2.imwrite(str(out / "images" / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(out / "masks" / f"{name}.png"), mask)
    return out


class TreeRSS:
    """Samples a process and its descendants every ``period`` s: ``peak`` = the largest summed RSS
    (bytes; shared pages such as torch's libraries count once per process) and ``peak_pss`` = the
    largest summed PSS (shared pages split between the processes: the tree's real footprint)."""

    def __init__(self, pid: int, period: float = 0.5):
        import psutil

        self.proc = psutil.Process(pid)
        self.period = period
        self.peak = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self.timeline: list[tuple[float, float, float]] = []
        """``(time.time(), main process RSS, tree PSS)`` in bytes, one per sample."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            rss, pss, count, main = 0, 0, 0, 0
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
            except psutil.Error:
                break
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    info = p.memory_full_info()
                    rss += info.rss
                    pss += getattr(info, "pss", info.rss)
                    count += 1
                    main = main or info.rss
            self.timeline.append((time.time(), main, pss))
            if rss > self.peak:
                self.peak, self.peak_processes = rss, count
            self.peak_pss = max(self.peak_pss, pss)
            self._stop.wait(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_one(n: int, rounds: int, workers: int | None, work: Path, data: Path, extra: list[str]) -> dict[str, Any]:
    """Build the N-image set, run it in a subprocess, and read back its stages, memory and quality."""
    base = work / f"n{n}"
    if base.exists():
        shutil.rmtree(base)
    t = time.perf_counter()
    build_set(n, base / "set", data)
    log.info("N=%d: set built in %.1f s", n, time.perf_counter() - t)
    cmd = [
        sys.executable,
        "-m",
        "core",
        "run",
        "--images",
        str(base / "set" / "images"),
        "--class",
        "object",
        "--gt",
        str(base / "set" / "masks"),
        "--out",
        str(base / "run"),
        "--rounds",
        str(rounds),
        "--no-progress",
        *[a for s in (*full_rounds(rounds), *extra) for a in ("--set", s)],
        *(["--workers", str(workers)] if workers is not None else []),
    ]
    log.info("N=%d: %s", n, " ".join(cmd))
    load_before = os.getloadavg()
    t0, t_start = time.perf_counter(), time.time()
    with open(base / "run.log", "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeRSS(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
    load_after = os.getloadavg()
    if proc.returncode not in (0, 3):
        tail = (base / "run.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"N={n}: run exited with {proc.returncode}; log {base / 'run.log'}:\n{tail}")
    summary = json.loads((base / "run" / "run.json").read_text())
    stages: list[dict[str, Any]] = []
    for r in summary["rounds_done"]:
        metrics = json.loads((base / "run" / f"round_{r:02d}" / "metrics.json").read_text())
        seconds = metrics["seconds"]
        gt = metrics.get("gt") or {}
        stages.append(
            {
                "round": r,
                "seconds": seconds,
                "per_image": {k: v / n for k, v in seconds.items()},
                "miou": gt.get("miou"),
            }
        )
    in_rounds = sum(s["seconds"]["total"] for s in stages)
    start = t_start
    for s in stages:  # memory peaks per round: between the previous round's DONE marker and this one's
        done = (base / "run" / f"round_{s['round']:02d}" / "DONE").stat().st_mtime
        window = [(m, p) for t, m, p in sampler.timeline if start < t <= done]
        s["peak_main_rss_mb"] = max((m for m, _ in window), default=0) / 2**20
        s["peak_tree_pss_mb"] = max((p for _, p in window), default=0) / 2**20
        start = done
    return {
        "n": n,
        "rounds_done": summary["rounds_done"],
        "status": summary["status"],
        "stopped_reason": summary["stopped_reason"],
        "best_round": summary["best_round"],
        "exit_code": proc.returncode,
        "wall_seconds": wall,
        "wall_per_image": wall / n,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "cpu_per_image": (usage.ru_utime + usage.ru_stime) / n,
        "rounds_seconds": in_rounds,
        "outside_rounds_seconds": wall - in_rounds,
        "stages": stages,
        "peak_rss_largest_process_mb": usage.ru_maxrss / 1024,
        "peak_rss_tree_mb": sampler.peak / 2**20,
        "peak_pss_tree_mb": sampler.peak_pss / 2**20,
        "processes_at_tree_peak": sampler.peak_processes,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "command": cmd,
    }


STAGE_ORDER = ("initial", "train", "predict", "postprocess", "filter", "total")


def stage_table(runs: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: milliseconds per image of every round's stages, one column per N."""
    head = "| round / stage | " + " | ".join(f"N={r['n']} ms/img" for r in runs) + " |"
    lines = [head, "|---|" + "---:|" * len(runs)]
    keys: list[tuple[int, str]] = []
    for run in runs:
        for s in run["stages"]:
            for k in sorted(s["seconds"], key=lambda k: STAGE_ORDER.index(k) if k in STAGE_ORDER else 99):
                if (s["round"], k) not in keys:
                    keys.append((s["round"], k))
    for rnd, k in keys:
        cells = []
        for run in runs:
            v = next((s["per_image"].get(k) for s in run["stages"] if s["round"] == rnd), None)
            cells.append("-" if v is None else f"{1000 * v:.0f}")
        lines.append(f"| {rnd} {k} | " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    runs = result["runs"]
    m = result["machine"]
    ref = runs[0]
    lines = [
        f"# Rounds at scale: {result['label']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['affinity_cores']} usable), {m['cpu_capability']}, "
        f"torch {m['torch']} ({m['torch_threads']} threads by default), OpenCV {m['opencv']}. "
        f"Rounds {result['rounds']}, workers {result['workers'] or 'default (one per core)'}, "
        f"extra settings {result['extra_settings'] or 'none'}.",
        "",
        f"Command: `{result['command']}`",
        "",
        "| N | rounds done | status | wall s | s/img | vs N="
        f"{ref['n']} | CPU s/img | vs N={ref['n']} | peak RSS largest process MB | x N={ref['n']} "
        "| peak RSS tree MB | peak PSS tree MB "
        f"| x N={ref['n']} "
        "| mIoU r0 -> last | load before | load after |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in runs:
        mious = [s["miou"] for s in r["stages"] if s["miou"] is not None]
        miou = f"{mious[0]:.3f} -> {mious[-1]:.3f}" if mious else "-"
        lines.append(
            f"| {r['n']} | {r['rounds_done']} | {r['status']} | {r['wall_seconds']:.0f} | "
            f"{r['wall_per_image']:.2f} | {r['wall_per_image'] / ref['wall_per_image']:.2f}x | "
            f"{r['cpu_per_image']:.2f} | {r['cpu_per_image'] / ref['cpu_per_image']:.2f}x | "
            f"{r['peak_rss_largest_process_mb']:.0f} | "
            f"{r['peak_rss_largest_process_mb'] / ref['peak_rss_largest_process_mb']:.2f}x | "
            f"{r['peak_rss_tree_mb']:.0f} | {r['peak_pss_tree_mb']:.0f} | "
            f"{r['peak_pss_tree_mb'] / ref['peak_pss_tree_mb']:.2f}x | {miou} | "
            f"{' '.join(f'{x:.2f}' for x in r['load_avg_before'])} | "
            f"{' '.join(f'{x:.2f}' for x in r['load_avg_after'])} |"
        )
    lines += ["", "Peak memory per round, MB (main process RSS / process tree PSS):", ""]
    lines.append("| round | " + " | ".join(f"N={r['n']}" for r in runs) + " |")
    lines.append("|---|" + "---:|" * len(runs))
    for rnd in sorted({s["round"] for r in runs for s in r["stages"]}):
        cells = []
        for r in runs:
            s = next((s for s in r["stages"] if s["round"] == rnd), None)
            cells.append("-" if s is None else f"{s['peak_main_rss_mb']:.0f} / {s['peak_tree_pss_mb']:.0f}")
        lines.append(f"| {rnd} | " + " | ".join(cells) + " |")
    lines += ["", "Seconds per stage per image (ms/img; `total` includes the round's evaluation and writing):", ""]
    lines += stage_table(runs)
    lines += [
        "",
        "Outside the rounds (start-up, image checks, final copy, report): "
        + ", ".join(f"N={r['n']}: {r['outside_rounds_seconds']:.0f} s" for r in runs),
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,300,1000", help="comma-separated N (default 100,300,1000)")
    p.add_argument("--rounds", type=int, default=3, help="refinement rounds after round 0 (default 3)")
    p.add_argument("--workers", type=int, default=None, help="run --workers (default: the run's, one per core)")
    p.add_argument("--data", type=Path, default=DATA, help=f"dev data root (default {DATA})")
    p.add_argument("--work-dir", type=Path, default=None, help="where sets and runs go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the sets and runs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra run --set items")
    p.add_argument("--label", default=None, help="results name (default scale_<sizes>_w<workers>)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--sizes must be comma-separated integers, got {args.sizes!r}") from None
    if not sizes or min(sizes) < 1 or args.rounds < 0:
        raise SystemExit(f"--sizes must be positive integers and --rounds >= 0, got {args.sizes!r}, {args.rounds}")
    label = args.label or f"scale_{'-'.join(map(str, sizes))}_w{args.workers or 'default'}"
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="gfn_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "label": label,
        "machine": machine_info(),
        "rounds": args.rounds,
        "workers": args.workers,
        "extra_settings": args.set,
        "command": "python bench/scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_avg_at_start": os.getloadavg(),
        "runs": [],
    }
    try:
        for n in sizes:
            run = run_one(n, args.rounds, args.workers, work, args.data, args.set)
            result["runs"].append(run)
            log.info(
                "N=%d: %.0f s (%.2f s/img), peak RSS %.0f MB (largest process) / %.0f MB (tree), load %s -> %s",
                n,
                run["wall_seconds"],
                run["wall_per_image"],
                run["peak_rss_largest_process_mb"],
                run["peak_rss_tree_mb"],
                run["load_avg_before"],
                run["load_avg_after"],
            )
            result["load_avg_at_end"] = os.getloadavg()
            (RESULTS / f"{label}.json").write_text(json.dumps(result, indent=2) + "\n")
            (RESULTS / f"{label}.md").write_text(markdown(result))
    finally:
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    sys.stdout.write(markdown(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
