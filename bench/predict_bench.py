"""Prediction speed end to end, torch vs ONNX Runtime, against eager MobileNetV2 features (issue 11).

Rows (images/s on real photos, the Weizmann horses by default, network at ``--max-side`` 320):

  reference      eager torchvision MobileNetV2 ``features`` on the images already decoded, downscaled
                 and normalised, batch 1 (the issue's yardstick; random weights: same arithmetic)
  predict torch  ``core.training.predict.predict(model, paths, max_side=320, runtime="torch")``
  predict onnx   the same with ``runtime="onnx"`` (the model exported once before the runs; the
                 export time is a row of its own)
  cli torch      ``gfn-autolabel predict --model M --images DIR --out DIR --max-side 320`` in process:
                 checkpoint load, decoding, network, writing the masks
  cli onnx cold  the same on ONNX Runtime with an empty ONNX cache (a new ``GFN_AUTOLABEL_ONNX_CACHE``
                 folder each call): checkpoint load, export, decoding, network, writing the masks
  cli onnx warm  the same with the graph already in the cache (every call after the first with the
                 same checkpoint): no export, no torch model
  cli onnx warm, own process  ``python -m core predict ...`` as a user runs it: the same as the warm
                 row plus starting Python and importing torch, ONNX Runtime, OpenCV, ...

After the timed rounds, one stage breakdown (seconds for all the images, each stage alone, one
after the other) shows where the CLI's time goes: checking the pictures, the model (cold: load +
export + session; warm: hash + cache read + session), decoding, the network, the argmax and
upsampling, PNG encoding, and the rest of the CLI (the CLI's own time minus these).

The rows run interleaved (one of each per round, ``--runs`` rounds) and the medians are reported
with the ratio to the reference of the same run, the machine and its load average.

``--int8`` also measures ONNX Runtime static int8 quantisation (QDQ, per channel, MinMax on
``--calib`` images; ``reduce_range`` on and off) against the float graph: speed on the same images
and mIoU on the horses (needs a trained ``--model``). ``--openvino`` measures OpenVINO (if it can
be imported, e.g. installed with ``pip install --target DIR openvino`` and ``PYTHONPATH=DIR``) on
the float graph against ONNX Runtime.

Usage: python bench/predict_bench.py [--model model.pt] [--data ../shared/data] [--runs 5] [--n 164]
       [--int8 --calib ../shared/data/ecssd/images] [--openvino] [--json bench/results/predict_bench.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.inference import clear_cache, export_onnx, runner_for  # noqa: E402
from core.inference.cache import ENV  # noqa: E402
from core.inference.export import INPUT  # noqa: E402
from core.inference.session import cpu_count, make_session  # noqa: E402
from core.network import GFNConfig, build_model  # noqa: E402
from core.network.preprocess import to_input  # noqa: E402
from core.training.data import limit_side, load_image, load_mask  # noqa: E402
from core.training.evaluate import confusion, miou  # noqa: E402
from core.training.predict import predict  # noqa: E402

log = logging.getLogger("predict_bench")


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return {
        "cpu": cpu,
        "cores_available": cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "load_avg_at_start": os.getloadavg(),
    }


def timed(fn: Callable[[], int]) -> float:
    """Images per second of one call of ``fn`` (which returns how many images it handled)."""
    t = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t)


def load_model(path: str | None) -> tuple[torch.nn.Module, str]:
    if path:
        from core.network import load_checkpoint

        return load_checkpoint(path).model.eval(), path
    return build_model(GFNConfig(pretrained=False)).eval(), "GFN default config, random weights"


def speed_rows(args: argparse.Namespace, model: torch.nn.Module, paths: list[Path]) -> dict[str, Any]:
    import torchvision

    from core.cli import main as cli

    ref_net = torchvision.models.mobilenet_v2().features.eval()
    ref_inputs = [to_input(limit_side(load_image(p), args.max_side)) for p in paths]

    def reference() -> int:
        with torch.inference_mode():
            for x in ref_inputs:
                ref_net(x)
        return len(ref_inputs)

    def run_predict(runtime: str) -> Callable[[], int]:
        return lambda: sum(1 for _ in predict(model, paths, max_side=args.max_side, runtime=runtime))

    tmp = Path(tempfile.mkdtemp(prefix="predict_bench_"))
    images_dir = Path(paths[0]).parent
    ckpt = args.model

    warm_cache = tmp / "onnx_cache_warm"

    def run_cli(runtime: str, cache: str = "warm") -> Callable[[], int]:
        def go() -> int:
            out = tmp / f"out_{runtime}_{cache}"
            argv = ["predict", "--model", ckpt, "--images", str(images_dir), "--out", str(out), "--overwrite"]
            folder = warm_cache if cache == "warm" else Path(tempfile.mkdtemp(prefix="cold_", dir=tmp))
            os.environ[ENV] = str(folder)
            try:
                if cli([*argv, "--max-side", str(args.max_side), "--runtime", runtime]) != 0:
                    raise RuntimeError(f"the predict command failed ({runtime})")
            finally:
                if cache == "cold":
                    shutil.rmtree(folder, ignore_errors=True)
            return len(list(out.glob("*.png")))

        return go

    def run_cli_process() -> int:
        out = tmp / "out_process"
        argv = ["predict", "--model", ckpt, "--images", str(images_dir), "--out", str(out), "--overwrite"]
        env = {**os.environ, ENV: str(warm_cache), "OMP_WAIT_POLICY": "PASSIVE"}
        cmd = [sys.executable, "-m", "core", *argv, "--max-side", str(args.max_side)]
        subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True)
        return len(list(out.glob("*.png")))

    exports = []
    for _ in range(3):
        clear_cache()
        t = time.perf_counter()
        runner_for(model, "onnx")
        exports.append(time.perf_counter() - t)
    rows: dict[str, Callable[[], int]] = {
        "reference (eager MobileNetV2 features)": reference,
        "predict torch": run_predict("torch"),
        "predict onnx": run_predict("onnx"),
    }
    if ckpt and len(paths) == len(list(images_dir.glob("*.jpg"))):
        rows["cli torch"] = run_cli("torch")
        rows["cli onnx cold (empty cache)"] = run_cli("onnx", "cold")
        rows["cli onnx warm (cached graph)"] = run_cli("onnx", "warm")
        rows["cli onnx warm, own process"] = run_cli_process
        run_cli("onnx", "warm")()  # fills the warm cache
    with torch.inference_mode():  # warm-up (allocators, the session's first run)
        ref_net(ref_inputs[0])
    for runtime in ("torch", "onnx"):
        list(predict(model, paths[:4], max_side=args.max_side, runtime=runtime))
    figures: dict[str, list[float]] = {k: [] for k in rows}
    for r in range(args.runs):
        for name, fn in rows.items():
            figures[name].append(timed(fn))
        log.info("run %d/%d: %s", r + 1, args.runs, {k: round(v[-1], 2) for k, v in figures.items()})
    ratios = {k: [v / ref for v, ref in zip(vs, figures[next(iter(rows))])] for k, vs in figures.items()}
    return {
        "stages_s": stage_breakdown(args, paths, run_cli("onnx", "cold"), run_cli("onnx", "warm"), warm_cache)
        if ckpt
        else {},
        "tmp": str(tmp),
        "images": len(paths),
        "max_side": args.max_side,
        "export_s_median": statistics.median(exports),
        "images_per_s": {k: v for k, v in figures.items()},
        "median_images_per_s": {k: statistics.median(v) for k, v in figures.items()},
        "median_ratio_to_reference": {k: statistics.median(v) for k, v in ratios.items()},
    }


def stage_breakdown(
    args: argparse.Namespace, paths: list[Path], cold: Callable[[], int], warm: Callable[[], int], warm_cache: Path
) -> dict[str, dict[str, float]]:
    """Seconds for all ``paths`` per stage of ``predict`` (each stage alone), for a cold and a warm call."""
    from core.inference.cache import OnnxCache
    from core.inference.checkpoint_runner import load_runner
    from core.io.images import check_images, encode_png, image_size, read_image
    from core.training.predict import _finish

    out: dict[str, dict[str, float]] = {}
    for name, call in (("cold", cold), ("warm", warm)):
        st: dict[str, float] = {}
        t = time.perf_counter()
        check_images(paths)
        st["check pictures"] = time.perf_counter() - t
        t = time.perf_counter()
        cache = OnnxCache(warm_cache if name == "warm" else tempfile.mkdtemp(prefix="predict_bench_stage_"))
        loaded = load_runner(args.model, cache=cache)
        if name == "cold":
            shutil.rmtree(cache.folder, ignore_errors=True)
        st["model (" + ", ".join(f"{k} {v:.2f}" for k, v in loaded.seconds.items()) + ")"] = time.perf_counter() - t
        t = time.perf_counter()
        smalls = [limit_side(read_image(p, max_side=args.max_side), args.max_side) for p in paths]
        st["decode + downscale"] = time.perf_counter() - t
        t = time.perf_counter()
        probs = [loaded.runner(x[None])[0] for x in smalls]
        st["network (batch 1)"] = time.perf_counter() - t
        t = time.perf_counter()
        masks = [_finish(p, image_size(path)).mask for p, path in zip(probs, paths)]
        st["upsample + argmax"] = time.perf_counter() - t
        t = time.perf_counter()
        for m in masks:
            encode_png(m)
        st["PNG encode"] = time.perf_counter() - t
        parts = sum(st.values())
        t = time.perf_counter()
        call()
        st["whole CLI call"] = time.perf_counter() - t
        st["CLI minus the stages (overlap < 0 < overhead)"] = st["whole CLI call"] - parts
        out[name] = st
        log.info("stages %s: %s", name, {k: round(v, 3) for k, v in st.items()})
    return out


def _session_speed(sessions: dict[str, Any], inputs: list[np.ndarray], runs: int) -> dict[str, float]:
    figures: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(runs):
        for name, run in sessions.items():
            figures[name].append(timed(lambda run=run: sum(1 for x in inputs if run(x) is not None)))
    return {k: statistics.median(v) for k, v in figures.items()}


def int8_rows(args: argparse.Namespace, model: torch.nn.Module, paths: list[Path], data: Path) -> dict[str, Any]:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    calib = [limit_side(load_image(p), args.max_side) for p in sorted(Path(args.calib).glob("*.jpg"))[: args.n_calib]]
    tmp = Path(tempfile.mkdtemp(prefix="predict_bench_int8_"))
    (tmp / "float.onnx").write_bytes(export_onnx(model))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calib)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {INPUT: x[None]}

    for rr in (False, True):
        quantize_static(
            str(tmp / "float.onnx"),
            str(tmp / f"int8_rr{int(rr)}.onnx"),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=rr,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],
            calibrate_method=CalibrationMethod.MinMax,
        )
    names = {"float": "float.onnx", "int8": "int8_rr0.onnx", "int8 reduce_range": "int8_rr1.onnx"}
    sessions = {k: make_session(tmp / f) for k, f in names.items()}
    runs = {k: (lambda x, s=s: s.run(None, {INPUT: x[None]})) for k, s in sessions.items()}
    inputs = [limit_side(load_image(p), args.max_side) for p in paths]
    speed = _session_speed(runs, inputs, args.runs)
    quality = {}
    for k, s in sessions.items():
        cm = np.zeros((2, 2), np.int64)
        for p in paths:
            image = load_image(p)
            probs = s.run(None, {INPUT: limit_side(image, args.max_side)[None]})[0][0]
            if probs.shape[-2:] != image.shape[:2]:
                probs = torch.nn.functional.interpolate(
                    torch.from_numpy(probs)[None], size=image.shape[:2], mode="bilinear", align_corners=False
                )[0].numpy()
            cm += confusion(probs.argmax(0), load_mask(data / "masks" / f"{p.stem}.png"), 2)
        quality[k] = miou(cm)[0]
    return {
        "calibration_images": len(calib),
        "median_images_per_s": speed,
        "speed_ratio_to_float": {k: v / speed["float"] for k, v in speed.items()},
        "miou": quality,
        "miou_drop": {k: quality["float"] - v for k, v in quality.items()},
    }


def openvino_rows(args: argparse.Namespace, model: torch.nn.Module, paths: list[Path]) -> dict[str, Any]:
    import openvino as ov

    tmp = Path(tempfile.mkdtemp(prefix="predict_bench_ov_"))
    (tmp / "float.onnx").write_bytes(export_onnx(model))
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(tmp / "float.onnx"),
        "CPU",
        {"INFERENCE_NUM_THREADS": cpu_count(), "PERFORMANCE_HINT": "LATENCY"},
    )
    request = compiled.create_infer_request()
    session = make_session(tmp / "float.onnx")
    inputs = [limit_side(load_image(p), args.max_side) for p in paths]
    err = max(
        float(np.abs(request.infer({0: x[None]})[0] - session.run(None, {INPUT: x[None]})[0]).max()) for x in inputs[:8]
    )
    runs = {
        "onnxruntime": lambda x: session.run(None, {INPUT: x[None]}),
        "openvino": lambda x: request.infer({0: x[None]}),
    }
    speed = _session_speed(runs, inputs, args.runs)
    return {"openvino": ov.__version__, "max_abs_diff_probs": err, "median_images_per_s": speed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint (default: a random-weight default GFN; speed only)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--set", default="weizmann_horse", help="folder under --data with images/ and masks/")
    ap.add_argument("--max-side", type=int, default=320)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--n", type=int, default=None, help="first N images (default all)")
    ap.add_argument("--int8", action="store_true")
    ap.add_argument("--calib", default=str(ROOT.parent / "shared" / "data" / "ecssd" / "images"))
    ap.add_argument("--n-calib", type=int, default=64)
    ap.add_argument("--openvino", action="store_true")
    ap.add_argument("--no-speed", action="store_true", help="skip the end-to-end rows")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    data = Path(args.data) / args.set
    paths = sorted((data / "images").glob("*.jpg"))[: args.n]
    if not paths:
        raise SystemExit(f"no images in {data / 'images'}")
    model, model_name = load_model(args.model)
    results: dict[str, Any] = {"machine": machine_info(), "model": model_name, "set": str(data)}
    if not args.no_speed:
        results["speed"] = speed_rows(args, model, paths)
    if args.int8:
        if not args.model:
            raise SystemExit("--int8 needs a trained --model (it measures mIoU)")
        results["int8"] = int8_rows(args, model, paths, data)
    if args.openvino:
        results["openvino"] = openvino_rows(args, model, paths)
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    if "speed" in results:
        shutil.rmtree(results["speed"].pop("tmp"), ignore_errors=True)
    if "speed" in results:
        s = results["speed"]
        head = f"{s['images']} images, max_side {s['max_side']}, medians of {args.runs} runs"
        for name, st in s.get("stages_s", {}).items():
            print(f"\nstages of one CLI call, {name} cache (s for {s['images']} images, each stage alone):")
            for k, v in st.items():
                print(f"  {k:60s} {v:7.3f}")
        print(f"\n{head}; ONNX export {s['export_s_median']:.2f} s")
        for k, v in s["median_images_per_s"].items():
            print(f"  {k:40s} {v:6.2f} img/s  {s['median_ratio_to_reference'][k]:.2f}x reference")
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores_available']} cores; load {m['load_avg_at_start']} -> {m['load_avg_at_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
