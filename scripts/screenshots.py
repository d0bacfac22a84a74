"""README screenshots of the FiftyOne plugin from a real run on real photos, and the App the browser test drives.

    python scripts/screenshots.py [--data ../shared/data/weizmann_horse] [--class horse] [--n 30] [--rounds 2]
                                  [--out docs/img] [--port 5152] [--set KEY=VALUE ...]
    python scripts/screenshots.py --example [--n 36] ...          # the built-in example instead of photos
    python scripts/screenshots.py --serve --example --tiny --n 6 --rounds 0 --port 5199
                                                                 # build, label, serve until killed

Builds a FiftyOne dataset (on a temporary database unless ``--default-db``) from ``--data``
(``images/<stem>.jpg`` + ``masks/<stem>.png``, the first ``--n`` by name; the masks are the ground
truth ``gt``), runs ``@gfn-autolabel/gfn/auto_label`` and ``evaluate_rounds`` through the
operators, starts the FiftyOne App server (``fo.launch_app(remote=True)``) with the plugin on the
plugins path, and drives Debian's Chromium with playwright (``executable_path=/usr/bin/chromium``;
``bash scripts/setup_browser.sh`` installs it). It writes, into ``--out``:

* ``fiftyone_grid.png``: the sample grid with the best round's masks over the photos;
* ``fiftyone_panel.png``: the ``gfn_runs`` panel, opened through the App's *+* menu like a user.

``--serve`` only builds, labels and serves, prints ``READY <url> <dataset>`` and waits (the browser
test, ``tests/test_fiftyone_browser.py``, starts it as a subprocess). :func:`open_runs_panel` and
:func:`wait_for_runs_table` are the UI steps both use.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("screenshots")

PLUGIN = "@gfn-autolabel/gfn"
PANEL_LABEL = "GFN auto-labelling runs"
CHROMIUM = os.environ.get("GFN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"]
TINY = {
    "init_options": {"coarse": "centre", "work_size": 48},
    "epochs": 1,
    "train.min_steps": 0,
    "batch_size": 4,
    "pretrained": False,
    "crop_size": 48,
    "max_side": None,
    "num_threads": 1,
    "postprocess": "none",
    "tta_flip": False,
    "network_options": {"aspp_channels": 16, "low_channels": 8},
    "stop.collapse_guard": False,
}
"""``--tiny``: engine settings that label the tiny example in seconds (a random-init narrow network
learns nothing; for plumbing only, as in the plugin's tests)."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "weizmann_horse"), help="images/ + masks/")
    p.add_argument("--class", dest="label", default="horse", help="the image-level class of every photo")
    p.add_argument("--example", action="store_true", help="use the built-in synthetic example instead of --data")
    p.add_argument("--n", type=int, default=30, help="images (the first N by name; default 30)")
    p.add_argument("--size", type=int, default=96, help="--example image side in pixels (default 96)")
    p.add_argument("--rounds", type=int, default=2, help="refinement rounds (default 2)")
    p.add_argument("--init", default="auto", help="initial-mask route (default auto)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="other RunConfig settings")
    p.add_argument("--tiny", action="store_true", help="tiny engine settings (seconds; masks are meaningless)")
    p.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder for the PNGs (default docs/img)")
    p.add_argument("--port", type=int, default=5152, help="App port on 127.0.0.1 (default 5152)")
    p.add_argument("--window", default="1400,860", help="browser viewport W,H (default 1400,860)")
    p.add_argument("--serve", action="store_true", help="build, label and serve the App until killed; no shots")
    p.add_argument("--default-db", action="store_true", help="use FiftyOne's configured database (not a temp one)")
    p.add_argument("--workdir", default=None, help="folder for the temporary database and runs (default: a new one)")
    return p.parse_args(argv)


def isolate(tmp: Path, default_db: bool = False) -> None:
    """Point FiftyOne at temporary folders with the plugin linked in; must run before ``import fiftyone``."""
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


def photo_samples(data: Path, n: int) -> list[tuple[Path, Path]]:
    """The first ``n`` ``(image, mask)`` pairs of ``data/images`` + ``data/masks`` by name."""
    images, masks = data / "images", data / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise SystemExit(f"error: {data} must hold images/ and masks/ (see ../shared/data/README.md), or use --example")
    pairs = [(p, masks / f"{p.stem}.png") for p in sorted(images.iterdir()) if (masks / f"{p.stem}.png").is_file()]
    if not pairs:
        raise SystemExit(f"error: no image of {images} has a mask of the same name in {masks}")
    return pairs[:n]


def build_dataset(args: argparse.Namespace, tmp: Path, name: str):
    """The photos (or the example) as a FiftyOne dataset: ``ground_truth`` (Classification), ``gt`` (Segmentation)."""
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    if args.example:
        from core.data.example import make_example

        example = make_example(tmp / "example", n=args.n, size=args.size)
        rows = [(s.image_path, s.mask_path, s.labels[0]) for s in example]
        targets = example.classmap.to_dict()
    else:
        rows = [(img, mask, args.label) for img, mask in photo_samples(Path(args.data), args.n)]
        targets = {0: "background", 1: args.label}
    ds.add_samples(
        [
            fo.Sample(
                filepath=str(img), ground_truth=fo.Classification(label=lab), gt=fo.Segmentation(mask_path=str(mask))
            )
            for img, mask, lab in rows
        ]
    )
    ds.mask_targets = {"gt": targets}
    ds.save()
    return ds


def label(ds, args: argparse.Namespace) -> dict[str, Any]:
    """``auto_label`` then ``evaluate_rounds`` through the operators; the run's summary."""
    import fiftyone.operators as foo

    from core.config import parse_key_values

    engine: dict[str, Any] = dict(TINY) if args.tiny else {"num_threads": 2}
    engine.update(parse_key_values(args.set))
    params = {
        "label_field": "ground_truth",
        "init": args.init,
        "rounds": args.rounds,
        "output_prefix": "gfn",
        "gt_field": "gt",
        "engine_options": engine,
        "delegate": False,
    }
    t0 = time.perf_counter()
    summary = foo.execute_operator(f"{PLUGIN}/auto_label", ctx={"view": ds.view(), "params": params}).result
    seconds = time.perf_counter() - t0
    log.info("auto_label: rounds %s, best %s, %.0fs", summary["rounds"], summary["best_round"], seconds)
    evals = foo.execute_operator(
        f"{PLUGIN}/evaluate_rounds", ctx={"dataset": ds, "params": {"output_prefix": "gfn", "gt_field": "gt"}}
    ).result["evaluations"]
    summary["miou"] = {k: round(v["miou"], 4) for k, v in evals.items()}
    log.info("mIoU per round: %s", summary["miou"])
    return summary


def launch(ds, port: int, **kwargs):
    """The App server on 127.0.0.1:``port`` (a remote session: nothing opens a browser)."""
    import fiftyone as fo

    colors = fo.ColorScheme(
        opacity=0.6,
        default_mask_targets_colors=[{"intTarget": 1, "color": "#ff6d04"}, {"intTarget": 2, "color": "#ffe600"}],
    )
    session = fo.launch_app(ds, port=port, address="127.0.0.1", remote=True, auto=False, color_scheme=colors, **kwargs)
    wait_for_http(f"http://127.0.0.1:{port}/")
    return session


def wait_for_http(url: str, timeout: float = 300.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=10):
                return
        except OSError:
            time.sleep(1.0)
    raise TimeoutError(f"the App did not answer at {url} within {timeout:.0f}s")


# ------------------------------------------------------------------------------ the browser side
def new_page(browser, window: str = "1400,860"):
    """A page that the App treats as automated (no first-visit promotion popover)."""
    w, h = (int(x) for x in window.split(","))
    page = browser.new_page(viewport={"width": w, "height": h})
    page.add_init_script(
        "window.IS_PLAYWRIGHT = true;"
        "try { window.localStorage.setItem('fiftyone-enterprise-tooltip-seen', 'true'); } catch (e) {}"
    )
    return page


def open_dataset(page, base_url: str, dataset: str, timeout_ms: int = 240_000) -> None:
    """Load the App on ``dataset`` and wait until its sample grid is there."""
    page.goto(f"{base_url.rstrip('/')}/datasets/{dataset}", timeout=timeout_ms)
    page.locator("[data-cy='fo-grid']").wait_for(timeout=timeout_ms)


def open_runs_panel(page, timeout_ms: int = 120_000) -> None:
    """Open the plugin's panel the way a user does: the *+* beside the tabs, then its entry."""
    page.locator("[data-cy='new-panel-btn']").first.click(timeout=timeout_ms)
    page.get_by_text(PANEL_LABEL, exact=True).first.click(timeout=timeout_ms)


def wait_for_runs_table(page, run: str, timeout_ms: int = 120_000) -> list[list[str]]:
    """Wait until the panel's runs table shows a row for ``run``; the table's rows as cell texts
    (the header first)."""
    table = page.locator("table").filter(has_text="Best round").first
    table.locator("td", has_text=run).first.wait_for(timeout=timeout_ms)
    return [[c.strip() for c in row.locator("th, td").all_inner_texts()] for row in table.locator("tr").all()]


def widen_last_panel(page, keep: float = 0.25) -> None:
    """Drag the divider between the Samples tab and the panel beside it so the panel gets
    ``1 - keep`` of the width (a no-op when the App has no such divider)."""
    tabs = page.locator("[data-cy='panel-tab-samples']").first.bounding_box()
    grid = page.locator("[data-cy='fo-grid']").first.bounding_box()
    size = page.viewport_size
    if not tabs or not grid or not size:
        return
    x, y = grid["x"] + grid["width"] + 2, grid["y"] + 200
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(size["width"] * keep, y, steps=10)
    page.mouse.up()
    page.mouse.move(size["width"] - 5, size["height"] - 5)  # no hover highlight on the divider


def shoot(args: argparse.Namespace, ds, summary: dict[str, Any]) -> list[Path]:
    """The PNGs (see the module docstring), the grid first: the App keeps an opened panel in its
    session for the next page. The layers shown are the dataset's active fields."""
    import fiftyone as fo
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{args.port}/"
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, active in (("fiftyone_grid.png", ["gfn"]),):
                ds.app_config.active_fields = fo.ActiveFields(paths=active)
                ds.save()
                page = new_page(browser, args.window)
                open_dataset(page, base, ds.name)
                page.wait_for_timeout(10000)  # the grid's pictures and overlays
                page.screenshot(path=str(out / name))
                page.close()
                written.append(out / name)
            page = new_page(browser, args.window)
            open_dataset(page, base, ds.name)
            page.locator("[data-cy='action-toggle-sidebar']").first.click()
            open_runs_panel(page)
            rows = wait_for_runs_table(page, "gfn")
            log.info("runs table: %s", rows)
            widen_last_panel(page)
            page.wait_for_timeout(5000)  # the plots
            page.screenshot(path=str(out / "fiftyone_panel.png"))
            written.append(out / "fiftyone_panel.png")
        finally:
            browser.close()
    for p in written:
        log.info("wrote %s", p)
    return written


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.serve and not Path(CHROMIUM).is_file():
        raise SystemExit(f"error: no Chromium at {CHROMIUM}; run 'bash scripts/setup_browser.sh' (or set GFN_CHROMIUM)")
    tmp = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="gfn_screenshots_"))
    isolate(tmp, args.default_db)
    name = "gfn-example" if args.example else f"gfn-{Path(args.data).name}"
    ds = build_dataset(args, tmp, name)
    summary = label(ds, args)
    launch(ds, args.port)
    if args.serve:
        print(f"READY http://127.0.0.1:{args.port}/ {ds.name}", flush=True)
        while True:
            time.sleep(3600)
    written = shoot(args, ds, summary)
    print(
        json.dumps(
            {
                "data": "example" if args.example else str(args.data),
                "n": len(ds),
                "rounds": summary["rounds"],
                "best_round": summary["best_round"],
                "status": summary["status"],
                "miou_per_round": summary["miou"],
                "machine": platform.platform(),
                "load": os.getloadavg(),
                "written": [str(p) for p in written],
            },
            indent=2,
        )
    )
    if not args.default_db:
        ds.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
