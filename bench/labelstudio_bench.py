"""Latency and throughput of the Label Studio ML backend's ``/predict`` under concurrent clients.

Starts a stand-in Label Studio file server (stdlib HTTP on 127.0.0.1, checking the API key) that
serves the built-in example's images as ``/data/upload/...``, then ``gfn-autolabel
serve-labelstudio`` (gunicorn + uvicorn workers) on another loopback port, and sends a bounded
number of ``/predict`` requests (one task each, 400-px images by default) from 1, 4 and 8
concurrent clients, ``--repeats`` times per level. Reports the medians over the repeats of p50/p95
latency, throughput and errors (zero expected), next to two references measured in the same run:
the model computation alone in this process (same image, same torch threads) and a plain image
download from the file server, with the machine's details and load average. Nothing leaves the
machine; every loop is bounded in count and time.

    python bench/labelstudio_bench.py --with-model         # a GFN trained for 1 epoch first (the usual case)
    python bench/labelstudio_bench.py                      # initial route (no trained model)
    python bench/labelstudio_bench.py --clients 1,4 --requests 16 --workers 2 --json out.json
    python bench/labelstudio_bench.py --with-model --postprocess grabcut --grabcut-iters 2   # faster chain

Before the load levels, ``--profile`` requests are replayed stage by stage in this process (fetch,
store + decode, network, each post-processing step, encoding, JSON) to show where a request's time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

TOKEN = "bench-token-0123456789"
CONFIG = (
    '<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">'
    '<Label value="ellipse"/><Label value="star"/><Label value="ring"/></BrushLabels></View>'
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def file_server(files: dict[str, bytes]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != f"Token {TOKEN}":
                self.send_response(401)
                self.end_headers()
                return
            body = files.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def machine_info(workers: int, threads: int | None) -> dict:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "backend_workers": workers,
        "backend_threads": threads,
    }


def train_stub_model(model_dir: Path, image_paths: list[Path], masks, max_side: int = 96) -> str:
    """A real GFN trained for one epoch on the example's masks, installed as project 1's model."""
    from core.classmap import ClassMap
    from labelstudio_backend.engine import Engine
    from labelstudio_backend.settings import BackendSettings
    from labelstudio_backend.store import ProjectStore

    cmap = ClassMap.from_names(["ellipse", "star", "ring"])
    settings = BackendSettings(model_dir=model_dir, train_epochs=1, train_max_side=max_side)
    store = ProjectStore(model_dir, "1")
    store.save_classes(cmap)
    out = store.new_model_path("bench-model")
    Engine(settings).train(
        list(zip(image_paths, masks)), cmap, out_path=out, warm_start=None, n_human=len(masks), round_index=1
    )
    store.set_current("bench-model", out, cmap.names)
    return "bench-model"


def references(
    model_dir: Path, ds, tasks: list[dict], ls_url: str, with_model: bool, torch_threads: int, settings_env: dict
) -> dict:
    """Medians, in this process: the engine's computation on one image (with the served settings), and one
    image download."""
    import numpy as np
    import torch

    from core.classmap import ClassMap
    from core.io.images import read_image
    from labelstudio_backend.engine import Engine
    from labelstudio_backend.settings import BackendSettings
    from labelstudio_backend.store import ProjectStore

    torch.set_num_threads(torch_threads)
    engine = Engine(BackendSettings.from_env({**settings_env, "MODEL_DIR": str(model_dir)}))
    cmap = ClassMap.from_names(["ellipse", "star", "ring"])
    cur = ProjectStore(model_dir, "1").current() if with_model else None
    compute, fetch = [], []
    for s in list(ds)[:8]:
        image = read_image(s.image_path)
        t0 = time.perf_counter()
        if cur is not None:
            engine.label(cur.checkpoint, image, [s.labels[0]])
        else:
            engine.initial(image, cmap.index(s.labels[0]), cmap.num_classes)
        compute.append(time.perf_counter() - t0)
    for t in tasks[:8]:
        t0 = time.perf_counter()
        httpx.get(ls_url + t["data"]["image"], headers={"Authorization": f"Token {TOKEN}"}).raise_for_status()
        fetch.append(time.perf_counter() - t0)
    return {
        "compute_ms_median": round(float(np.median(compute[1:])) * 1000, 1),  # the first call loads the model
        "fetch_ms_median": round(float(np.median(fetch)) * 1000, 1),
    }


def stage_profile(model_dir: Path, tasks: list[dict], ls_url: str, settings_env: dict[str, str], n: int) -> dict:
    """Where one ``/predict`` request's time goes, stage by stage, in this process (no concurrency).

    Replays ``GFNSegmenter._predict_task`` step by step with the backend's own objects and settings
    (the same environment as the served workers): fetch from the file server, store + decode, the
    network (``core.training.predict.predict``: resize, ONNX Runtime with flip TTA, upsample), category
    consistency, each post-processing step (``refine_mask``), the consistent mask and reliability score,
    the stored pseudo-label, the Label Studio result encoding (brush RLE) and the JSON answer. The
    ONNX Runtime call alone on the resized batch is timed too. Returns ``{stage: median ms}`` over
    ``n`` requests after one warm-up request (the model load and ONNX export happen there).
    """
    import numpy as np

    from labelstudio_backend.label_config import parse_label_config
    from labelstudio_backend.runtime import Backend
    from labelstudio_backend.settings import BackendSettings
    from labelstudio_backend.store import ProjectStore

    settings = BackendSettings.from_env({**settings_env, "MODEL_DIR": str(model_dir / "profile")})
    backend = Backend.build(settings)
    engine, fetcher = backend.services.engine, backend.fetcher
    config = parse_label_config(CONFIG)
    cmap = config.classmap
    cur = ProjectStore(model_dir, "1").current()
    store = ProjectStore(settings.model_dir, "1")
    rows: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def clock(stage: str):
        t0 = time.perf_counter()
        yield
        rows.setdefault(stage, []).append((time.perf_counter() - t0) * 1000)

    try:
        for i in range(n + 1):
            task = tasks[i % len(tasks)]
            tid, labels = str(task["id"]), [task["data"]["label"]]
            t_all = time.perf_counter()
            with clock("fetch image (HTTP)"):
                fetched = fetcher.fetch(task["data"]["image"])
            with clock("store + decode"):
                _, image = store.save_image(tid, fetched.data, fetched.suffix, max_pixels=settings.max_image_pixels)
            if cur is None:
                with clock("initial mask (no model)"):
                    mask, score = engine.initial(image, cmap.index(labels[0]), cmap.num_classes)
            else:
                mask, score = _profile_model(engine, cur.checkpoint, image, labels, clock)
            with clock("store pseudo-label (PNG + JSON)"):
                store.save_pseudo(tid, mask, score, "v", cmap)
            with clock("encode results (brush RLE)"):
                results = config.control.to_results(mask, cmap.names, score)
            with clock("JSON answer"):
                json.dumps({"results": [{"result": results, "score": score}]})
            rows.setdefault("total (one request, no queueing)", []).append((time.perf_counter() - t_all) * 1000)
            if i == 0:  # warm-up: model load, ONNX export
                rows.clear()
    finally:
        backend.shutdown()
    return {k: round(float(np.median(v)), 1) for k, v in rows.items() if v}


def _profile_model(engine, checkpoint: Path, image, labels: list[str], clock) -> tuple:
    """``Labeller.label`` (``core.refine.apply``) step by step, each step timed by ``clock(stage)``."""
    import numpy as np

    from core.inference.runtime import runner_for
    from core.postprocess import refine_mask
    from core.refine import filters
    from core.refine.postchain import MIN_KEEP
    from core.refine.sections import parse_chain
    from core.threads import torch_threads
    from core.training.data import limit_side
    from core.training.predict import predict

    with clock("model lookup (cached Labeller)"):
        lab = engine.labeller(checkpoint)
    allowed = lab._allowed(labels)
    with torch_threads(lab.num_threads):
        with clock("network: resize + ONNX Runtime + flip TTA + upsample"):
            pred = next(iter(predict(lab.model, [image], tta_flip=lab.tta_flip, max_side=lab.max_side)))
        small = limit_side(image, lab.max_side)[None]
        batch = np.concatenate([small, small[:, :, ::-1]]) if lab.tta_flip else small
        runner = runner_for(lab.model)
        with clock("  of which ONNX Runtime alone"):
            runner(batch)
    with clock("consistency (objectness)"):
        probs = filters.consistent_probs(pred.probs, allowed, lab.consistency)
    net_mask = probs.argmax(0).astype(np.uint8)
    results, p = [(net_mask, probs)], probs
    for step in parse_chain(lab.postprocess):
        if step != "none":
            iters = f", {lab.post_params.grabcut_iters} iterations" if step == "grabcut" else ""
            with clock(f"post-process: {step} at {lab.post_params.max_side} px{iters}"):
                m, p = refine_mask(np.array(image), p, step, config=lab.post_params)
            results.append((m, p))
    need = MIN_KEEP * float((net_mask > 0).sum())
    mask = next((m for m, _ in reversed(results) if float((m > 0).sum()) >= need), net_mask)
    with clock("consistent mask + reliability score"):
        mask = filters.consistent_mask(mask, allowed)
        score = filters.reliability(probs, mask, net_mask, None)["score"]
    return mask, score


def median_level(runs: list[dict]) -> dict:
    """One level's figures as medians over its repeats (errors summed)."""
    out = dict(runs[0])
    for key in ("p50_ms", "p95_ms", "mean_ms", "throughput_rps", "wall_s"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    out["errors"] = sum(r["errors"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    out["ok"] = sum(r["ok"] for r in runs)
    out["error_samples"] = [e for r in runs for e in r["error_samples"]][:3]
    out["repeats"] = [{k: r[k] for k in ("p50_ms", "p95_ms", "errors")} for r in runs]
    return out


def run_level(url: str, tasks: list[dict], clients: int, n_requests: int, timeout: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        task = tasks[i % len(tasks)]
        body = {"tasks": [task], "project": "1.1700000000", "label_config": CONFIG, "params": {"context": None}}
        t0 = time.perf_counter()
        try:
            r = httpx.post(f"{url}/predict", json=body, timeout=timeout)
            ok = r.status_code == 200 and r.json()["results"][0].get("result") is not None
            err = None if ok else f"HTTP {r.status_code}: {r.text[:200]}"
        except Exception as exc:  # counted as an error
            err = f"{exc.__class__.__name__}: {exc}"
        dt = time.perf_counter() - t0
        with lock:
            if err:
                errors.append(err)
            else:
                latencies.append(dt)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, range(n_requests)))
    wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p: float) -> float | None:
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))] * 1000, 1)

    return {
        "clients": clients,
        "requests": n_requests,
        "ok": len(lat),
        "errors": len(errors),
        "error_samples": errors[:3],
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "mean_ms": round(statistics.mean(lat) * 1000, 1) if lat else None,
        "throughput_rps": round(len(lat) / wall, 2),
        "wall_s": round(wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="1,4,8", help="concurrency levels (default 1,4,8)")
    ap.add_argument("--requests", type=int, default=24, help="requests per level (bounded; default 24)")
    ap.add_argument("--workers", type=int, default=2, help="backend worker processes (default 2)")
    ap.add_argument("--threads", type=int, default=None, help="request threads per worker")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch threads per worker (default 1)")
    ap.add_argument("--images", type=int, default=12, help="distinct example images (default 12)")
    ap.add_argument("--size", type=int, default=400, help="example image side in pixels (default 400)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per concurrency level, medians reported (default 3)")
    ap.add_argument("--with-model", action="store_true", help="serve a GFN trained for 1 epoch (else initial route)")
    ap.add_argument(
        "--train-max-side", type=int, default=96, help="with --with-model: the network's working size (default 96)"
    )
    ap.add_argument("--postprocess", default=None, help="POSTPROCESS of the backend (default: the checkpoint's chain)")
    ap.add_argument(
        "--post-max-side",
        type=int,
        default=None,
        help="POSTPROCESS_MAX_SIDE of the backend (default: checkpoint)",
    )
    ap.add_argument("--grabcut-iters", type=int, default=None, help="GRABCUT_ITERS of the backend (default: ckpt)")
    ap.add_argument("--predict-concurrency", type=int, default=1, help="PREDICT_CONCURRENCY per worker (default 1)")
    ap.add_argument(
        "--profile", type=int, default=8, help="requests of the per-stage profile in this process (0 = skip; default 8)"
    )
    ap.add_argument("--timeout", type=float, default=300.0, help="per-request timeout in seconds")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",") if c.strip()]
    if args.requests < 1 or args.requests > 500 or not levels or max(levels) > 32 or not 1 <= args.repeats <= 10:
        ap.error("--requests must be 1..500, clients 1..32 and --repeats 1..10")

    from core.data.example import make_example

    work = Path(tempfile.mkdtemp(prefix="gfn-ls-bench-"))
    ds = make_example(work / "example", n=args.images, size=args.size)
    files = {f"/data/upload/1/{s.stem}.png": Path(s.image_path).read_bytes() for s in ds}
    tasks = [
        {"id": i + 1, "data": {"image": f"/data/upload/1/{s.stem}.png", "label": s.labels[0]}} for i, s in enumerate(ds)
    ]
    model_dir = work / "models"
    mode = "initial route (no trained model)"
    if args.with_model:
        t0 = time.perf_counter()
        train_stub_model(
            model_dir, [Path(s.image_path) for s in ds], [s.load_mask() for s in ds], max_side=args.train_max_side
        )
        mode = f"trained GFN (1 epoch at {args.train_max_side} px, {time.perf_counter() - t0:.0f}s to train)"

    server, ls_url = file_server(files)
    port = free_port()
    backend_env = {
        "LABEL_STUDIO_URL": ls_url,
        "LABEL_STUDIO_API_KEY": TOKEN,
        "TORCH_THREADS": str(args.torch_threads),
        "PREDICT_CONCURRENCY": str(args.predict_concurrency),
    }
    if args.postprocess:
        backend_env["POSTPROCESS"] = args.postprocess
    if args.post_max_side:
        backend_env["POSTPROCESS_MAX_SIDE"] = str(args.post_max_side)
    if args.grabcut_iters:
        backend_env["GRABCUT_ITERS"] = str(args.grabcut_iters)
    env = {
        **os.environ,
        **backend_env,
        "PYTHONPATH": str(ROOT),
        "MODEL_DIR": str(model_dir),
        "LOG_LEVEL": "warning",
    }
    cmd = [
        sys.executable,
        "-m",
        "core",
        "serve-labelstudio",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
        "--log-level",
        "warning",
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    log_path = work / "backend.log"
    with open(log_path, "wb") as log_fh:
        proc = subprocess.Popen(cmd, env=env, stdout=log_fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    report: dict = {"mode": mode, "machine": machine_info(args.workers, args.threads), "levels": []}
    report["reference"] = references(model_dir, ds, tasks, ls_url, args.with_model, args.torch_threads, backend_env)
    if args.profile:
        report["profile_ms"] = stage_profile(model_dir, tasks, ls_url, backend_env, args.profile)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                print(log_path.read_text()[-3000:], file=sys.stderr)
                raise SystemExit("backend did not start")
            time.sleep(0.5)
        # warm-up: every worker loads its models on its first request
        t0 = time.perf_counter()
        warm = run_level(url, tasks, clients=args.workers, n_requests=2 * args.workers, timeout=args.timeout)
        report["warmup"] = {"seconds": round(time.perf_counter() - t0, 1), "errors": warm["errors"]}
        for c in levels:
            runs = [run_level(url, tasks, c, args.requests, args.timeout) for _ in range(args.repeats)]
            report["levels"].append(median_level(runs))
        report["machine"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this script started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        server.shutdown()

    m = report["machine"]
    print(f"Label Studio ML backend /predict benchmark - {report['mode']}")
    print(
        f"machine: {m['cpu']} x{m['cores']} cores, {m['platform']}, python {m['python']}, torch {m['torch']}, "
        f"load avg {m['load_avg_1_5_15']} -> {m['load_avg_after']}"
    )
    print(
        f"backend: {args.workers} gunicorn/uvicorn worker(s), torch threads {args.torch_threads}, predict "
        f"concurrency {args.predict_concurrency}, POSTPROCESS={args.postprocess or '(checkpoint)'}, "
        f"POSTPROCESS_MAX_SIDE={args.post_max_side or '(checkpoint)'}, "
        f"GRABCUT_ITERS={args.grabcut_iters or '(checkpoint)'}; {args.images} images of {args.size}px, "
        f"1 task per request; warm-up {report['warmup']['seconds']}s"
    )
    if report.get("profile_ms"):
        print(f"per-stage profile of one request in this process (medians of {args.profile} requests, ms):")
        for stage, ms in report["profile_ms"].items():
            print(f"  {stage:<56} {ms:>8}")
    ref = report["reference"]
    print(
        f"reference in this process: model computation {ref['compute_ms_median']} ms/image, image download "
        f"{ref['fetch_ms_median']} ms (medians); figures below are medians of {args.repeats} runs per level"
    )
    print(f"{'clients':>7} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'req/s':>7}")
    for lv in report["levels"]:
        print(
            f"{lv['clients']:>7} {lv['requests']:>8} {lv['errors']:>6} {lv['p50_ms']!s:>8} {lv['p95_ms']!s:>8} "
            f"{lv['mean_ms']!s:>8} {lv['throughput_rps']:>7}"
        )
        for e in lv["error_samples"]:
            print(f"        error: {e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"report written to {args.json}")
    return 1 if any(lv["errors"] for lv in report["levels"]) else 0


if __name__ == "__main__":
    sys.exit(main())
