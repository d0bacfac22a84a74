"""Shared helpers for the Label Studio backend tests.

- Labelling configs, a stand-in Label Studio file server (an ``httpx.MockTransport`` checking the
  API key), decoding of predictions with label-studio-sdk's codec, IoU.
- :class:`LabelStudioServer`: a REAL Label Studio 1.23.2 from its own virtualenv
  (``scripts/setup_labelstudio.sh``) on a free loopback port, sqlite in a temporary folder.
- :class:`BackendServer`: ``gfn-autolabel serve-labelstudio`` in a subprocess.
- :class:`LabelStudioAPI`: the few Label Studio REST calls the end-to-end test needs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from label_studio_sdk.converter.brush import decode_rle

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("ellipse", "star", "ring")
LS_VERSION = "1.23.2"
TOKEN = "gfn-test-token-0123456789"


def brush_config(labels: Sequence[str] = CLASSES, *, prompts: bool = False) -> str:
    extra = ""
    if prompts:
        extra = (
            '<KeyPointLabels name="kp" toName="image" smart="true"><Label value="positive"/>'
            '<Label value="negative"/></KeyPointLabels>'
            '<RectangleLabels name="box" toName="image" smart="true">'
            + "".join(f'<Label value="{c}"/>' for c in labels)
            + "</RectangleLabels>"
        )
    return (
        '<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">'
        + "".join(f'<Label value="{c}"/>' for c in labels)
        + "</BrushLabels>"
        + extra
        + "</View>"
    )


def choices_config(labels: Sequence[str] = CLASSES, *, extra_choices: Sequence[str] = ("unsure",)) -> str:
    """A brush project whose image-level labels come from a ``<Choices name="what">`` control."""
    choices = "".join(f'<Choice value="{c}"/>' for c in (*labels, *extra_choices))
    return brush_config(labels).replace(
        "</View>", f'<Choices name="what" toName="image" choice="multiple">{choices}</Choices></View>'
    )


def choice_result(*names: str, from_name: str = "what") -> list[dict[str, Any]]:
    """An annotation (or prediction) result choosing ``names`` in a ``<Choices>``."""
    return [{"from_name": from_name, "to_name": "image", "type": "choices", "value": {"choices": list(names)}}]


def polygon_config(labels: Sequence[str] = CLASSES) -> str:
    return (
        '<View><Image name="image" value="$image"/><PolygonLabels name="poly" toName="image">'
        + "".join(f'<Label value="{c}"/>' for c in labels)
        + "</PolygonLabels></View>"
    )


def png_bytes(width: int, height: int, color: int = 90) -> bytes:
    """A PNG of a flat picture with a brighter rectangle in the middle."""
    import io

    from PIL import Image

    img = np.full((height, width, 3), color, np.uint8)
    img[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 220
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (IHDR rewritten, its CRC fixed)."""
    import struct
    import zlib

    data = bytearray(png_bytes(8, 8))
    ihdr = 8 + 8  # the signature, then the first chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])) & 0xFFFFFFFF)
    return bytes(data)


class FakeLabelStudio:
    """Serves ``/data/upload/...`` files like Label Studio, only with ``Authorization: Token <key>``."""

    def __init__(self, files: Mapping[str, bytes], token: str = TOKEN):
        self.files = dict(files)
        self.token = token
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("authorization") != f"Token {self.token}":
            return httpx.Response(401, json={"detail": "Authentication credentials were not provided."})
        body = self.files.get(request.url.path)
        if body is None:
            return httpx.Response(404)
        return httpx.Response(200, content=body, headers={"content-type": "image/png"})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def decode_brush(result: Mapping[str, Any]) -> np.ndarray:
    """Boolean region of one brush result, decoded with label-studio-sdk."""
    h, w = int(result["original_height"]), int(result["original_width"])
    flat = decode_rle(result["value"]["rle"])
    return flat.reshape(h, w, 4)[:, :, 3] > 127


def prediction_mask(
    results: Sequence[Mapping[str, Any]], classes: Sequence[str] = CLASSES, shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Class-index mask (background 0, ``classes`` from 1) of a prediction's brush results."""
    if shape is None:
        if not results:
            raise ValueError("empty prediction and no shape given")
        shape = (int(results[0]["original_height"]), int(results[0]["original_width"]))
    out = np.zeros(shape, np.uint8)
    for r in results:
        out[decode_brush(r)] = classes.index(r["value"]["brushlabels"][0]) + 1
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5, on_fail: Callable[[], str] | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # keep polling
            last = exc
        time.sleep(interval)
    extra = on_fail() if on_fail else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})\n{extra}")


def _tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class _Process:
    """A subprocess in its own process group, stopped by its id."""

    def __init__(self, cmd: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 -- the process writes to it until stop() closes it
        self.proc = subprocess.Popen(
            list(cmd), env=dict(env), stdout=self._log, stderr=subprocess.STDOUT, cwd=str(cwd), start_new_session=True
        )

    def log_tail(self, n: int = 60) -> str:
        return f"--- {self.log_path.name} (last {n} lines) ---\n{_tail(self.log_path, n)}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this helper started
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def labelstudio_venv() -> Path:
    cache = Path(os.environ.get("GFN_CACHE", Path.home() / ".cache" / "gfn-autolabel")).expanduser()
    return Path(os.environ.get("LABELSTUDIO_VENV", cache / f"labelstudio-{LS_VERSION}"))


def _clean_env(**extra: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(extra)
    return env


class LabelStudioServer:
    """A real Label Studio on ``127.0.0.1:<port>`` with sqlite in ``data_dir``.

    The first start migrates a template database (``<venv>/template-data``, ~2 min, made once by
    ``scripts/setup_labelstudio.sh``); every run copies it, so a start takes ~15 s.
    """

    def __init__(
        self,
        work: Path,
        *,
        username: str = "gfn-test@example.com",
        password: str = "gfn-test-pass-123",
        token: str = TOKEN,
    ):
        self.venv = labelstudio_venv()
        self.exe = self.venv / "bin" / "label-studio"
        if not self.exe.exists():
            raise RuntimeError(
                f"Label Studio {LS_VERSION} is not installed at {self.venv}: run scripts/setup_labelstudio.sh "
                f"(make test does) before the end-to-end test"
            )
        self.work = Path(work)
        self.data_dir = self.work / "ls-data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username, self.password, self.token = username, password, token
        self.process: _Process | None = None

    def _env(self, data_dir: Path) -> dict[str, str]:
        return _clean_env(
            LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
            ML_BLOCK_LOCAL_IP="false",
            SSRF_PROTECTION_ENABLED="false",
            LATEST_VERSION_CHECK="false",
            COLLECT_ANALYTICS="false",
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_USERNAME=self.username,
            LABEL_STUDIO_PASSWORD=self.password,
            LABEL_STUDIO_USER_TOKEN=self.token,
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            DJANGO_DB="sqlite",
            LOG_LEVEL="WARNING",
        )

    def _template(self) -> Path:
        template = self.venv / "template-data"
        if (template / "label_studio.sqlite3").exists():
            return template
        tmp = self.venv / f"template-data.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        subprocess.run(
            [str(self.exe), "version"],
            env=self._env(tmp),
            check=True,
            cwd=str(tmp),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=900,
        )
        if not (template / "label_studio.sqlite3").exists():
            tmp.rename(template)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        return template

    def start(self, timeout: float = 300) -> LabelStudioServer:
        shutil.copytree(self._template(), self.data_dir)
        cmd = [str(self.exe), "start", "--no-browser", "--port", str(self.port), "--internal-host", "127.0.0.1"]
        self.process = _Process(cmd, self._env(self.data_dir), self.work / "labelstudio.log", self.work)

        def up() -> bool:
            if not self.process.alive():
                raise RuntimeError("Label Studio exited")
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200

        wait_until(up, timeout, f"Label Studio on {self.url}", on_fail=self.process.log_tail)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class BackendServer:
    """``python -m core serve-labelstudio`` (gunicorn + uvicorn workers) in a subprocess."""

    def __init__(
        self,
        work: Path,
        env: Mapping[str, str],
        *,
        workers: int = 1,
        server: str = "gunicorn",
        threads: int | None = None,
    ):
        self.work = Path(work)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.cmd = [
            sys.executable,
            "-m",
            "core",
            "serve-labelstudio",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--server",
            server,
        ]
        if threads:
            self.cmd += ["--threads", str(threads)]
        self.process: _Process | None = None

    def start(self, timeout: float = 120) -> BackendServer:
        self.process = _Process(self.cmd, self.env, self.work / "backend.log", ROOT)

        def up() -> bool:
            if not self.process.alive():
                raise RuntimeError("backend exited")
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200

        wait_until(up, timeout, f"the ML backend on {self.url}", on_fail=self.process.log_tail)
        return self

    def log_tail(self, n: int = 80) -> str:
        return self.process.log_tail(n) if self.process else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self) -> BackendServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class LabelStudioAPI:
    """The Label Studio REST calls used by the end-to-end test (legacy token auth)."""

    def __init__(self, url: str, token: str):
        self.client = httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=300)

    def _ok(self, resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            raise AssertionError(
                f"{resp.request.method} {resp.request.url.path}: HTTP {resp.status_code} {resp.text[:500]}"
            )
        return resp.json() if resp.content else None

    def create_project(self, title: str, label_config: str) -> int:
        return self._ok(self.client.post("/api/projects", json={"title": title, "label_config": label_config}))["id"]

    def upload(self, project: int, paths: Sequence[Path]) -> None:
        files = {f"file{i}": (p.name, p.read_bytes(), "image/png") for i, p in enumerate(paths)}
        out = self._ok(self.client.post(f"/api/projects/{project}/import", files=files))
        if out.get("task_count") != len(paths):
            raise AssertionError(f"imported {out.get('task_count')} tasks for {len(paths)} files: {out}")

    def tasks(self, project: int) -> list[dict[str, Any]]:
        out = self._ok(self.client.get("/api/tasks", params={"project": project, "page_size": 1000}))
        return out["tasks"] if isinstance(out, dict) else out

    def update_task_data(self, task_id: int, data: dict[str, Any]) -> None:
        self._ok(self.client.patch(f"/api/tasks/{task_id}", json={"data": data}))

    def connect_backend(self, project: int, url: str, *, interactive: bool = True) -> dict[str, Any]:
        return self._ok(
            self.client.post(
                "/api/ml",
                json={"project": project, "url": url, "title": "gfn-autolabel", "is_interactive": interactive},
            )
        )

    def backend(self, ml_id: int) -> dict[str, Any]:
        return self._ok(self.client.get(f"/api/ml/{ml_id}"))

    def retrieve_predictions(self, project: int) -> dict[str, Any]:
        return self._ok(
            self.client.post(
                "/api/dm/actions",
                params={"id": "retrieve_tasks_predictions", "project": project},
                json={"selectedItems": {"all": True, "excluded": []}},
            )
        )

    def predictions(self, task_id: int) -> list[dict[str, Any]]:
        return self._ok(self.client.get("/api/predictions", params={"task": task_id}))

    def interactive(self, ml_id: int, task_id: int, context: dict[str, Any]) -> dict[str, Any]:
        return self._ok(
            self.client.post(f"/api/ml/{ml_id}/interactive-annotating", json={"task": task_id, "context": context})
        )

    def annotate(self, task_id: int, result: list[dict[str, Any]]) -> dict[str, Any]:
        return self._ok(self.client.post(f"/api/tasks/{task_id}/annotations", json={"result": result}))

    def train(self, ml_id: int) -> None:
        self._ok(self.client.post(f"/api/ml/{ml_id}/train"))

    def versions(self, ml_id: int) -> list[str]:
        return self._ok(self.client.get(f"/api/ml/{ml_id}/versions"))["versions"]

    def close(self) -> None:
        self.client.close()
