"""Screenshots of the FiftyOne plugin for the docs: the sample grid with a round's masks, and the panel.

    python scripts/fiftyone_screenshots.py [--out docs/img] [--port 5152] [--n 48] [--rounds 2]

Builds the built-in example as a FiftyOne dataset, runs ``@gfn-autolabel/gfn/auto_label`` and
``evaluate_rounds`` through the operators, starts the App (``fo.launch_app(remote=True)``) and
photographs it with headless Chromium:

* ``fiftyone_grid.png``: the grid showing one round's masks (``<prefix>_round_<k>``);
* ``fiftyone_panel.png``: the ``gfn_runs`` panel (runs table, mIoU and changed pixels per round).

Needs Debian's ``chromium`` (``apt-get install -y chromium``). With ``playwright-core`` from npm
(``npm install playwright-core`` in a folder outside the repo; pass ``--node-modules
<folder>/node_modules`` or set ``NODE_PATH``) the shots are taken by ``scripts/fiftyone_shot.js``,
which also keeps the App's first-visit promotion popover away; without it, by Chromium's own
``--screenshot``. The grid shows the round's field as the only active one; the panel is opened
through ``session.spaces`` (no clicking). Unless ``--default-db`` is given, FiftyOne runs on a
temporary database, plugins folder and run folder, so the user's datasets are not touched.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("fiftyone_screenshots")

ENGINE = {"crop_size": 96, "num_threads": 2}
"""Engine defaults with crops the size of the 96 px example images (a few minutes on 2 CPU cores);
ImageNet weights are used when torchvision's file is cached, else a random-init network."""

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder for the PNGs (default docs/img)")
    p.add_argument("--port", type=int, default=5152, help="App port on 127.0.0.1 (default 5152)")
    p.add_argument("--n", type=int, default=48, help="example images (default 48)")
    p.add_argument("--size", type=int, default=96, help="example image side in pixels (default 96)")
    p.add_argument("--rounds", type=int, default=2, help="refinement rounds (default 2)")
    p.add_argument(
        "--grid-round",
        type=int,
        default=None,
        help="round shown in the grid (default: the best by ground truth, else the run's best)",
    )
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium", help="Chromium binary")
    p.add_argument("--budget", type=int, default=25000, help="Chromium virtual time budget in ms (default 25000)")
    p.add_argument("--window", default="1400,900", help="window size W,H (default 1400,900)")
    p.add_argument(
        "--node-modules",
        default=os.environ.get("NODE_PATH", ""),
        help="node_modules folder holding playwright-core (default $NODE_PATH); empty: plain Chromium",
    )
    p.add_argument(
        "--default-db", action="store_true", help="use FiftyOne's configured database instead of a temporary one"
    )
    return p.parse_args(argv)


def isolate(tmp: Path, default_db: bool) -> None:
    """Point FiftyOne at temporary folders; must run before ``import fiftyone``."""
    plugins = tmp / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "gfn_fiftyone"
    if not link.exists():
        link.symlink_to(ROOT / "gfn_fiftyone", target_is_directory=True)
    os.environ["FIFTYONE_PLUGINS_DIR"] = str(plugins)
    os.environ["GFN_FIFTYONE_RUNS_DIR"] = str(tmp / "runs")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    if not default_db:
        os.environ["FIFTYONE_DATABASE_DIR"] = str(tmp / "db")
        os.environ["FIFTYONE_DEFAULT_DATASET_DIR"] = str(tmp / "datasets")
    pythonpath = os.environ.get("PYTHONPATH", "")
    if str(ROOT) not in pythonpath.split(os.pathsep):  # the App server process imports core too
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), pythonpath) if p)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def build_dataset(tmp: Path, args: argparse.Namespace):
    """The example as a FiftyOne dataset, auto-labelled and evaluated through the operators."""
    import fiftyone as fo
    import fiftyone.operators as foo

    from core.data.example import make_example

    example = make_example(tmp / "example", n=args.n, size=args.size)
    name = "gfn-autolabel-example"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name, persistent=True)
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
    from core.network.backbones import weights_file

    t0 = time.perf_counter()
    engine = {**ENGINE, "pretrained": weights_file("mobilenet_v2").is_file()}
    params = {
        "label_field": "ground_truth",
        "init": "auto",
        "rounds": args.rounds,
        "output_prefix": "gfn",
        "gt_field": "gt",
        "engine_options": engine,
    }
    summary = foo.execute_operator("@gfn-autolabel/gfn/auto_label", ctx={"dataset": ds, "params": params}).result
    log.info(
        "auto_label: rounds %s, best %s in %.0fs", summary["rounds"], summary["best_round"], time.perf_counter() - t0
    )
    quick = dict(params, output_prefix="grabcut_only", init="grabcut", rounds=0)
    foo.execute_operator("@gfn-autolabel/gfn/auto_label", ctx={"dataset": ds, "params": quick})
    foo.execute_operator(
        "@gfn-autolabel/gfn/evaluate_rounds", ctx={"dataset": ds, "params": {"output_prefix": "gfn", "gt_field": "gt"}}
    )
    return ds, summary


def wait_for(url: str, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1.0)
    raise TimeoutError(f"the App did not answer at {url} within {timeout:.0f}s")


def _playwright(node_modules: str) -> bool:
    return bool(node_modules) and (Path(node_modules) / "playwright-core").is_dir() and shutil.which("node") is not None


def screenshot(args: argparse.Namespace, url: str, out: Path) -> Path:
    """One screenshot of ``url`` into ``out``: playwright-core when available, else Chromium's ``--screenshot``."""
    if not Path(args.chromium).is_file():
        raise FileNotFoundError(
            f"Chromium not found at {args.chromium}; install it with "
            f"'apt-get update && apt-get install -y chromium' or pass --chromium"
        )
    w, h = args.window.split(",")
    if _playwright(args.node_modules):
        cmd = [
            "node",
            str(ROOT / "scripts" / "fiftyone_shot.js"),
            url,
            str(out),
            "--chromium",
            args.chromium,
            "--size",
            f"{w}x{h}",
            "--wait",
            str(min(args.budget, 15000)),
        ]
        subprocess.run(cmd, check=True, timeout=240, env={**os.environ, "NODE_PATH": args.node_modules})
    else:
        log.info("playwright-core not found (--node-modules); using Chromium --screenshot")
        profile = tempfile.mkdtemp(prefix="gfn_chromium_")
        try:
            cmd = [
                args.chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={w},{h}",
                f"--virtual-time-budget={args.budget}",
                f"--screenshot={out}",
                url,
            ]
            subprocess.run(cmd, check=True, timeout=180, capture_output=True)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
    if not out.is_file():
        raise RuntimeError(f"no screenshot was written to {out}")
    log.info("wrote %s", out)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    tmp = Path(tempfile.mkdtemp(prefix="gfn_fiftyone_shots_"))
    isolate(tmp, args.default_db)
    import fiftyone as fo

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds, summary = build_dataset(tmp, args)
    k = args.grid_round
    if k is None:
        best_gt = ds.load_run_results("gfn").best_round_gt
        k = summary["best_round"] if best_gt is None else best_gt
    url = f"http://127.0.0.1:{args.port}/"
    colors = fo.ColorScheme(
        opacity=0.75,
        default_mask_targets_colors=[
            {"intTarget": 1, "color": "#ff6d04"},
            {"intTarget": 2, "color": "#ffe600"},
            {"intTarget": 3, "color": "#ff2bd6"},
        ],
    )
    grid_view = ds.select_fields([f"gfn_round_{k}"])
    ds.app_config.active_fields = fo.ActiveFields(paths=[f"gfn_round_{k}"])
    ds.save()
    panel_space = fo.Space(children=[fo.Panel(type="gfn_runs", pinned=True)], orientation="horizontal")
    try:
        shots = (("fiftyone_grid.png", {"view": grid_view}), ("fiftyone_panel.png", {"spaces": panel_space}))
        for name, kwargs in shots:
            session = fo.launch_app(
                ds, port=args.port, address="127.0.0.1", remote=True, auto=False, color_scheme=colors, **kwargs
            )
            try:
                wait_for(url)
                screenshot(args, url, out_dir / name)
            finally:
                session.close()
    finally:
        if not args.default_db:
            ds.delete()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
