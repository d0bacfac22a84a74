"""The per-project folder under ``MODEL_DIR``; shared by every worker process.

Layout of ``MODEL_DIR/<project>/``::

    classes.json            class map from the labelling config (background = 0)
    label_config.xml        the latest labelling config received
    current.json            the model being served: {"model_version", "checkpoint", "classes", ...}
    versions.json           every model version trained, oldest first
    tasks/<task>.json       task data seen in /predict or /webhook (to re-fetch images for training)
    images/<task>.<ext>     the task's image as fetched
    human/<task>.png        masks from submitted annotations (never overwritten by pseudo-labels)
    pseudo/<task>.png       the latest predicted mask (+ pseudo/<task>.json: score, model_version)
    models/<version>/model.pt
    jobs/<job>.json         training job status (queued, started, finished, failed)
    state.json              annotations received since the last training round
    train.lock, state.lock  cross-process locks

Every write goes through ``core.io.atomic`` so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.classmap import IGNORE_INDEX, ClassMap
from core.io.atomic import write_bytes_atomic, write_text_atomic
from core.io.images import ImageReadError, read_image, read_mask, write_mask

log = logging.getLogger(__name__)

INITIAL_VERSION = "gfn-initial"
"""``model_version`` served before any training round finished."""

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_id(value: Any, what: str) -> str:
    """A project or task id usable as a file name (Label Studio's are integers)."""
    text = str(value).strip()
    if not _ID.match(text):
        raise ValueError(f"invalid {what} id {value!r}: expected letters, digits, '-' or '_' (Label Studio ids)")
    return text


def project_id_from(value: Any) -> str:
    """Label Studio sends ``"<id>.<created-at timestamp>"`` in /setup and /predict, and ``{"id": ...}`` in webhooks."""
    if isinstance(value, dict):
        value = value.get("id")
    if value is None or value == "":
        raise ValueError("request has no 'project' (expected '<id>.<timestamp>' or {'id': ...})")
    return check_id(str(value).split(".", 1)[0], "project")


@dataclass(frozen=True)
class ModelInfo:
    """What ``current.json`` says about the served model."""

    model_version: str
    checkpoint: Path
    classes: tuple[str, ...]
    info: dict[str, Any]


class ProjectStore:
    """Files of one Label Studio project (see the module docstring for the layout)."""

    def __init__(self, model_dir: str | Path, project_id: Any):
        self.project_id = check_id(project_id, "project")
        self.root = Path(model_dir) / self.project_id
        for sub in ("tasks", "images", "human", "pseudo", "models", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- class map and model versions ------------------------------------------------------------
    def save_classes(self, classmap: ClassMap) -> None:
        path = self.root / "classes.json"
        if path.exists():
            try:
                if ClassMap.load(path) == classmap:
                    return
            except ValueError:
                pass
        classmap.save(path)

    def save_label_config(self, xml: str) -> None:
        path = self.root / "label_config.xml"
        if not path.exists() or path.read_text(encoding="utf-8") != xml:
            write_text_atomic(path, xml)

    def load_label_config(self) -> str | None:
        path = self.root / "label_config.xml"
        return path.read_text(encoding="utf-8") if path.exists() else None

    def load_classes(self) -> ClassMap | None:
        path = self.root / "classes.json"
        return ClassMap.load(path) if path.exists() else None

    def current(self) -> ModelInfo | None:
        path = self.root / "current.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: unreadable ({exc}); delete it to serve the initial model again") from None
        return ModelInfo(
            model_version=str(data["model_version"]),
            checkpoint=self.root / data["checkpoint"],
            classes=tuple(data["classes"]),
            info={k: v for k, v in data.items() if k not in ("model_version", "checkpoint", "classes")},
        )

    def model_version(self) -> str:
        cur = self.current()
        return cur.model_version if cur else INITIAL_VERSION

    def set_current(self, version: str, checkpoint: Path, classes: tuple[str, ...], **info: Any) -> None:
        record = {
            "model_version": version,
            "checkpoint": str(Path(checkpoint).relative_to(self.root)),
            "classes": list(classes),
            **info,
        }
        versions = self.versions()
        versions.append(record)
        write_text_atomic(self.root / "versions.json", json.dumps(versions, indent=2))
        write_text_atomic(self.root / "current.json", json.dumps(record, indent=2))

    def versions(self) -> list[dict[str, Any]]:
        path = self.root / "versions.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []

    def new_model_path(self, version: str) -> Path:
        path = self.root / "models" / version / "model.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    # -- tasks and images --------------------------------------------------------------------------
    def save_task(self, task_id: Any, data: dict[str, Any], *, labels: Any = None) -> None:
        """Remember a task's data (and its image-level labels, when known) to fetch and label it again."""
        tid = check_id(task_id, "task")
        record: dict[str, Any] = {"id": tid, "data": data}
        if labels:
            record["labels"] = [str(n) for n in labels]
        text = json.dumps(record, sort_keys=True)
        path = self.root / "tasks" / f"{tid}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            write_text_atomic(path, text)

    def load_task(self, task_id: Any) -> dict[str, Any] | None:
        record = self._task_record(task_id)
        return record.get("data") if record else None

    def task_labels(self, task_id: Any) -> list[str] | None:
        """The image-level labels remembered with the task (from its ``<Choices>`` or data), if any."""
        record = self._task_record(task_id)
        labels = record.get("labels") if record else None
        return [str(n) for n in labels] if isinstance(labels, list) and labels else None

    def _task_record(self, task_id: Any) -> dict[str, Any] | None:
        path = self.root / "tasks" / f"{check_id(task_id, 'task')}.json"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("project %s: %s is unreadable; ignored", self.project_id, path)
            return None
        return record if isinstance(record, dict) else None

    def image_path(self, task_id: Any) -> Path | None:
        tid = check_id(task_id, "task")
        found = sorted((self.root / "images").glob(f"{tid}.*"))
        return found[0] if found else None

    def save_image(
        self,
        task_id: Any,
        data: bytes,
        suffix: str,
        *,
        max_pixels: int,
        max_images: int | None = None,
        max_image_bytes: int | None = None,
    ) -> tuple[Path, np.ndarray]:
        """Check the pixel limit from the header, store the bytes, decode with ``core.io.images``.

        Returns the stored path and the ``(H, W, 3) uint8`` image; raises ``ValueError``
        (``ImageTooLarge`` for the pixel limit or a decompression bomb, ``ImageReadError`` for
        undecodable bytes). Nothing is left stored when it raises. With ``max_images`` /
        ``max_image_bytes`` the project's stored images are then trimmed to those limits
        (:meth:`trim_images`).
        """
        tid = check_id(task_id, "task")
        try:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
        except Image.DecompressionBombError:
            raise ImageTooLarge(
                f"task {tid}: image header claims over {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels (a decompression "
                f"bomb), over MAX_IMAGE_PIXELS={max_pixels}"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ImageReadError({f"task {tid}": f"not a readable image ({exc.__class__.__name__})"}) from None
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"task {tid}: image of {width}x{height} = {width * height} pixels is over MAX_IMAGE_PIXELS={max_pixels}"
            )
        suffix = suffix if re.match(r"^\.[a-z0-9]{1,5}$", suffix) else ".img"
        path = self.root / "images" / f"{tid}{suffix}"
        written = not path.exists() or path.read_bytes() != data
        if written:
            write_bytes_atomic(path, data)
        try:
            image = read_image(path)
        except ValueError:
            if written:
                path.unlink(missing_ok=True)  # never keep bytes that do not decode
            raise
        for old in (self.root / "images").glob(f"{tid}.*"):
            if old.suffix != suffix:
                old.unlink(missing_ok=True)
        if max_images is not None or max_image_bytes is not None:
            self.trim_images(max_images=max_images, max_bytes=max_image_bytes, keep=path)
        return path, image

    def trim_images(self, *, max_images: int | None, max_bytes: int | None, keep: Path | None = None) -> list[str]:
        """Evict stored task images, oldest first, until at most ``max_images`` files and ``max_bytes``
        bytes remain; images of tasks with a human mask go last, ``keep`` never. Returns the evicted
        task ids (their images are fetched again when needed)."""
        entries = []
        for p in (self.root / "images").iterdir():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            entries.append((p, st.st_size, st.st_mtime))
        count, total = len(entries), sum(size for _, size, _ in entries)
        if (max_images is None or count <= max_images) and (max_bytes is None or total <= max_bytes):
            return []
        human = set(self.human_ids())
        entries.sort(key=lambda e: (e[0].stem in human, e[2], e[0].name))
        evicted = []
        for p, size, _ in entries:
            if (max_images is None or count <= max_images) and (max_bytes is None or total <= max_bytes):
                break
            if keep is not None and p == keep:
                continue
            p.unlink(missing_ok=True)
            count, total = count - 1, total - size
            evicted.append(p.stem)
        if evicted:
            log.info("project %s: evicted %d stored image(s) (image cache limits)", self.project_id, len(evicted))
        return evicted

    # -- masks ------------------------------------------------------------------------------------
    def save_human(self, task_id: Any, mask: np.ndarray, classmap: ClassMap, annotation_id: Any = None) -> Path:
        """Store a submitted annotation's mask with the class names its indices refer to."""
        tid = check_id(task_id, "task")
        path = self.root / "human" / f"{tid}.png"
        write_mask(path, mask)
        write_text_atomic(
            self.root / "human" / f"{tid}.json",
            json.dumps({"classes": list(classmap.names), "annotation": annotation_id}),
        )
        return path

    def delete_human(self, task_id: Any) -> bool:
        tid = check_id(task_id, "task")
        path = self.root / "human" / f"{tid}.png"
        existed = path.exists()
        path.unlink(missing_ok=True)
        (self.root / "human" / f"{tid}.json").unlink(missing_ok=True)
        return existed

    def tasks_of_annotations(self, annotation_ids: set[Any]) -> list[str]:
        """Task ids whose stored human mask came from one of ``annotation_ids``."""
        wanted = {str(a) for a in annotation_ids}
        out = []
        for meta in (self.root / "human").glob("*.json"):
            try:
                if str(json.loads(meta.read_text(encoding="utf-8")).get("annotation")) in wanted:
                    out.append(meta.stem)
            except (OSError, ValueError):
                continue
        return sorted(out)

    def human_ids(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "human").glob("*.png"))

    def load_human(self, task_id: Any, classmap: ClassMap) -> np.ndarray:
        """The human mask in ``classmap``'s indices (classes no longer in it become 255 = ignore)."""
        tid = check_id(task_id, "task")
        return self._remapped(self.root / "human" / f"{tid}.png", self.root / "human" / f"{tid}.json", classmap)

    def save_pseudo(self, task_id: Any, mask: np.ndarray, score: float, model_version: str, classmap: ClassMap) -> None:
        tid = check_id(task_id, "task")
        write_mask(self.root / "pseudo" / f"{tid}.png", mask)
        write_text_atomic(
            self.root / "pseudo" / f"{tid}.json",
            json.dumps({"score": float(score), "model_version": model_version, "classes": list(classmap.names)}),
        )

    def pseudo_ids(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "pseudo").glob("*.png"))

    def load_pseudo(self, task_id: Any, classmap: ClassMap) -> tuple[np.ndarray, float] | None:
        """``(mask in classmap's indices, score)`` of the latest prediction, or ``None``."""
        tid = check_id(task_id, "task")
        png, meta = self.root / "pseudo" / f"{tid}.png", self.root / "pseudo" / f"{tid}.json"
        if not png.exists():
            return None
        try:
            score = float(json.loads(meta.read_text(encoding="utf-8"))["score"])
        except (OSError, ValueError, KeyError):
            score = 0.0
        return self._remapped(png, meta, classmap), score

    @staticmethod
    def _remapped(png: Path, meta: Path, classmap: ClassMap) -> np.ndarray:
        mask = read_mask(png)
        try:
            names = json.loads(meta.read_text(encoding="utf-8"))["classes"]
        except (OSError, ValueError, KeyError):
            return mask
        if list(names) == list(classmap.names):
            return mask
        lut = np.full(256, IGNORE_INDEX, np.uint8)
        for i, name in enumerate(names):
            if name in classmap.names:
                lut[i] = classmap.index(name)
        return lut[mask]

    # -- counters, locks, jobs --------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, name: str, blocking: bool = True) -> Iterator[bool]:
        with open(self.root / name, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def training_lock(self) -> contextlib.AbstractContextManager[bool]:
        """Non-blocking cross-process lock: yields ``False`` when another process is training."""
        return self._locked("train.lock", blocking=False)

    def bump_pending(self, n: int = 1) -> int:
        """Add ``n`` new annotations to the counter; returns the new count."""
        with self._locked("state.lock"):
            state = self._state()
            state["pending"] = int(state.get("pending", 0)) + n
            write_text_atomic(self.root / "state.json", json.dumps(state))
            return state["pending"]

    def take_pending(self) -> int:
        """Reset the counter (a round starts); returns how many annotations it had counted."""
        with self._locked("state.lock"):
            state = self._state()
            taken = int(state.get("pending", 0))
            state["pending"] = 0
            write_text_atomic(self.root / "state.json", json.dumps(state))
            return taken

    def _state(self) -> dict[str, Any]:
        path = self.root / "state.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def write_job(self, job_id: str, **status: Any) -> None:
        path = self.root / "jobs" / f"{check_id(job_id, 'job')}.json"
        old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        old.update(status)
        write_text_atomic(path, json.dumps(old, indent=2))

    def read_job(self, job_id: str) -> dict[str, Any] | None:
        path = self.root / "jobs" / f"{check_id(job_id, 'job')}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


class ImageTooLarge(ValueError):
    """An image over ``MAX_IMAGE_PIXELS``."""
