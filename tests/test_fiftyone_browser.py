"""The plugin in the real FiftyOne App, in a real browser (Debian's Chromium driven by playwright).

A subprocess (``scripts/screenshots.py --serve``) builds a tiny dataset on a temporary database,
labels it through the plugin's ``auto_label`` operator and serves the App with the plugin on the
plugins path; the test opens the App, opens the plugin's panel from the *+* menu as a user would,
and checks that the runs table shows the run. Needs ``/usr/bin/chromium`` (``bash
scripts/setup_browser.sh``, run by ``make test``); about a minute on an idle 2-core machine.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "screenshots.py"
START_TIMEOUT = 600
"""Seconds for the subprocess to label the dataset and bring the App up (a loaded machine is slow)."""


def _load_screenshots():
    spec = importlib.util.spec_from_file_location("gfn_screenshots", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no FiftyOne import at module level
    return module


shots = _load_screenshots()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """``(base url, dataset name)`` of an App serving a dataset with one finished run ``gfn``."""
    if not Path(shots.CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {shots.CHROMIUM}: run 'bash scripts/setup_browser.sh' (make test does)")
    port = _free_port()
    work = tmp_path_factory.mktemp("app")
    log = (work / "app.log").open("w+")
    cmd = [sys.executable, str(SCRIPT), "--serve", "--example", "--tiny", "--n", "6", "--size", "48"]
    cmd += ["--rounds", "0", "--init", "grabcut", "--port", str(port), "--workdir", str(work)]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, start_new_session=True, env=dict(os.environ)
    )

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the group this fixture started: the App server and its database
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    watchdog = threading.Timer(START_TIMEOUT, stop)
    watchdog.start()
    try:
        line = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("READY "):
                break
        watchdog.cancel()
        if not line.startswith("READY "):
            log.seek(0)
            pytest.fail(f"the App did not come up (exit {proc.poll()}); its log ends with:\n{log.read()[-3000:]}")
        _, url, dataset = line.split()
        yield url, dataset
    finally:
        watchdog.cancel()
        stop()
        log.close()


def test_the_app_opens_the_plugins_panel_and_its_runs_table_renders(app):
    from playwright.sync_api import sync_playwright

    url, dataset = app
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shots.CHROMIUM, args=shots.CHROMIUM_ARGS)
        try:
            page = shots.new_page(browser)
            shots.open_dataset(page, url, dataset)
            shots.open_runs_panel(page)
            rows = shots.wait_for_runs_table(page, "gfn")
            buttons = page.get_by_role("button", name="Auto-label…").count()
        finally:
            browser.close()
    header, *body = rows
    assert header[:4] == ["Run", "Status", "Outcome", "Rounds"] and "mIoU (best)" in header, header
    assert len(body) == 1 and body[0][:2] == ["gfn", "completed"], body
    assert 0.0 <= float(body[0][header.index("mIoU (best)")]) <= 1.0  # the run was made with ground truth
    assert 0.0 <= float(body[0][header.index("Reliability (best)")]) <= 1.0
    assert buttons == 1
