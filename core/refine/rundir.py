"""The run folder: layout, ``DONE`` markers, creation / overwrite / resume checks.

Layout::

    RUN_DIR/config.json        RunConfig (resume refuses a different one, naming the keys)
    RUN_DIR/dataset.json       class map + samples (stem, image path, labels, gt mask path)
    RUN_DIR/round_00/          masks/<stem>.png, probs/<stem>.npz, scores.json, metrics.json,
                               model.pt (rounds >= 1), DONE (written last)
    RUN_DIR/final/masks/       the best round's masks
    RUN_DIR/run.json           rounds done, best round (both selections), stop reason; written last
    RUN_DIR/report/            overlays and the per-round plot (``core.refine.report.write_report``)

Replacing a finished run (``--overwrite``) builds the new run in ``.<RUN_DIR name>.overwrite`` beside
it and swaps it in only when the new run finished (``replacing``): a re-run that fails leaves the
old run byte for byte.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.classmap import ClassMap
from core.data.dataset import Dataset, Sample
from core.io.atomic import OutputExistsError, write_bytes_atomic, write_text_atomic
from core.refine.config import RunConfig

log = logging.getLogger(__name__)

CONFIG = "config.json"
DATASET = "dataset.json"
RUN = "run.json"
DONE = "DONE"
FINAL = "final"
REPORT = "report"
FIXED = "fixed"  # human-corrected masks copied in when the run starts (``core.refine.fixed.FIXED``)
_KNOWN = (CONFIG, DATASET, RUN, FINAL, REPORT, FIXED)


def round_name(index: int) -> str:
    return f"round_{index:02d}"


def round_dir(run_dir: Path, index: int) -> Path:
    return Path(run_dir) / round_name(index)


def is_done(run_dir: Path, index: int) -> bool:
    return (round_dir(run_dir, index) / DONE).is_file()


def mark_done(run_dir: Path, index: int) -> None:
    """Written after every other file of the round: the round counts as finished from here on."""
    write_text_atomic(round_dir(run_dir, index) / DONE, "done\n")


def finished_rounds(run_dir: Path) -> list[int]:
    """Consecutive finished rounds from 0 (a gap ends the list)."""
    out: list[int] = []
    while is_done(run_dir, len(out)):
        out.append(len(out))
    return out


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: not a (finished) gfn-autolabel run folder?") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")


# ---------------------------------------------------------------- dataset record
def dataset_to_dict(dataset: Dataset) -> dict[str, Any]:
    return {
        "classes": list(dataset.classmap.names),
        "samples": [
            {
                "stem": s.stem,
                "image": str(Path(s.image_path).resolve()),
                "labels": list(s.labels),
                "mask": str(Path(s.mask_path).resolve()) if s.mask_path is not None else None,
            }
            for s in dataset.samples
        ],
    }


def dataset_from_dict(data: dict[str, Any]) -> Dataset:
    """The dataset a run was made on (ground truth only where it was a mask file)."""
    cmap = ClassMap(tuple(data["classes"]))
    samples = [
        Sample(
            stem=d["stem"],
            image_path=Path(d["image"]),
            labels=tuple(d["labels"]),
            mask_path=Path(d["mask"]) if d.get("mask") else None,
        )
        for d in data["samples"]
    ]
    return Dataset(samples=tuple(samples), classmap=cmap)


# ---------------------------------------------------------------- probabilities on disk
def save_probs(path: Path, probs: np.ndarray, classes: list[int]) -> np.ndarray:
    """Store ``probs[classes]`` (``classes`` = background + the image's own classes) quantised to uint8.

    Returns the full ``(K, H, W) float32`` array exactly as :func:`load_probs` will read it back, so
    a resumed run continues from bit-identical inputs.
    """
    q = quantise_probs(probs, classes)
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, q=q, classes=np.asarray(classes, dtype=np.int32), k=np.int32(probs.shape[0]))
    write_bytes_atomic(path, buf.getvalue())
    return dequantise_probs(q, classes, probs.shape[0])


def load_probs(path: Path) -> np.ndarray:
    with np.load(path) as z:
        return dequantise_probs(z["q"], [int(c) for c in z["classes"]], int(z["k"]))


def quantise_probs(probs: np.ndarray, classes: list[int]) -> np.ndarray:
    """``(len(classes) - 1, H, W) uint8``: the foreground classes' probabilities in 1/255 steps."""
    return np.clip(np.rint(probs[classes[1:]] * 255.0), 0, 255).astype(np.uint8)


def dequantise_probs(q: np.ndarray, classes: list[int], k: int) -> np.ndarray:
    """Inverse of :func:`quantise_probs`: ``(k, H, W) float32``, background = 1 - the rest."""
    out = np.zeros((k, *q.shape[1:]), dtype=np.float32)
    out[classes[1:]] = q.astype(np.float32) / 255.0
    out[0] = np.clip(1.0 - out[1:].sum(axis=0), 0.0, 1.0)
    return out


# ---------------------------------------------------------------- create / overwrite / resume
def prepare(run_dir: Path, config: RunConfig, dataset: Dataset, *, resume: bool, overwrite: bool) -> int:
    """Make ``run_dir`` ready; return the first round still to do (0 for a new run).

    - new or empty folder: writes ``config.json`` and ``dataset.json``;
    - an existing run with ``resume``: checks config and images are the same (``ValueError`` naming
      the differing settings by their dotted names), removes unfinished round folders and ``final/``;
      a ``config.json`` of an older version (flat names) is read and rewritten in the nested form;
    - an existing non-empty folder without ``resume``: ``OutputExistsError`` unless ``overwrite``,
      which removes the run's own files (config, dataset, rounds, final, run.json) only.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("choose either resume=True (--resume) or overwrite=True (--overwrite), not both")
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputExistsError(f"{run_dir} exists and is not a folder")
    existing = [p for p in run_dir.iterdir()] if run_dir.is_dir() else []
    if existing and resume and (run_dir / CONFIG).is_file():
        _check_same(run_dir, config, dataset)
        write_json(run_dir / CONFIG, config.to_dict())
        done = finished_rounds(run_dir)
        _remove_unfinished(run_dir, keep=set(done))
        log.info("resuming %s after %s", run_dir, f"round {done[-1]}" if done else "no finished round")
        return len(done)
    if existing and not resume:
        if not overwrite:
            raise OutputExistsError(
                f"run folder {run_dir} already exists and is not empty; pass overwrite=True (--overwrite) "
                f"to replace it, or resume=True (--resume) to continue it"
            )
        for p in existing:
            if is_run_entry(p.name):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    elif existing and resume:
        raise ValueError(f"cannot resume {run_dir}: it has no {CONFIG} (not a gfn-autolabel run folder)")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG, config.to_dict())
    write_json(run_dir / DATASET, dataset_to_dict(dataset))
    return 0


RESUME_MAY_CHANGE = ("rounds", "post.workers")
"""Settings a resumed run may change: they decide when to stop or how many processes share the work,
never what a round computes (``--resume --rounds 5`` continues a finished 3-round run)."""


def _check_same(run_dir: Path, config: RunConfig, dataset: Dataset) -> None:
    saved = RunConfig.from_dict(read_json(run_dir / CONFIG))
    diff = [k for k in config.differences(saved) if k not in RESUME_MAY_CHANGE]
    if diff:
        old, new = saved.settings(), config.settings()
        detail = ", ".join(f"{k}: saved {old[k]!r} vs now {new[k]!r}" for k in diff)
        raise ValueError(
            f"cannot resume {run_dir} with a different config; differing keys: {diff} ({detail}). "
            f"Use the saved settings, or overwrite=True (--overwrite) to start again"
        )
    old = read_json(run_dir / DATASET)
    new = dataset_to_dict(dataset)
    if old["classes"] != new["classes"]:
        raise ValueError(f"cannot resume {run_dir}: classes differ (saved {old['classes']}, now {new['classes']})")
    old_s = {d["stem"]: d["labels"] for d in old["samples"]}
    new_s = {d["stem"]: d["labels"] for d in new["samples"]}
    if old_s != new_s:
        gone, added = sorted(set(old_s) - set(new_s)), sorted(set(new_s) - set(old_s))
        relabelled = sorted(s for s in set(old_s) & set(new_s) if old_s[s] != new_s[s])
        raise ValueError(
            f"cannot resume {run_dir}: the images differ (missing now: {gone[:5]}, new: {added[:5]}, "
            f"labels changed: {relabelled[:5]})"
        )


def _remove_unfinished(run_dir: Path, keep: set[int]) -> None:
    for p in run_dir.iterdir():
        if p.is_dir() and p.name.startswith("round_"):
            try:
                idx = int(p.name.split("_", 1)[1])
            except ValueError:
                continue
            if idx not in keep:
                shutil.rmtree(p)
    for name in (FINAL, RUN):
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


# ---------------------------------------------------------------- replace a run only on success
def is_run_entry(name: str) -> bool:
    """Whether ``name`` (an entry of a run folder) is one of the run's own files or folders."""
    return name in _KNOWN or name.startswith("round_")


def holds_files(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` is a folder with something in it (what ``--overwrite`` would replace)."""
    run_dir = Path(run_dir)
    return run_dir.is_dir() and any(run_dir.iterdir())


@contextlib.contextmanager
def replacing(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder beside ``run_dir`` to build a new run in; swap it in when the block succeeds.

    On success the old folder is renamed aside, the new one renamed to ``run_dir`` (two renames on
    one file system), the old folder's entries that are not the run's own files (``is_run_entry``)
    and that the new run does not have are moved over (a user's notes, earlier exports), and the old
    run is removed. On any error (bad input, a failing or interrupted round) the new folder is
    removed and ``run_dir`` is left exactly as it was. A staging folder left by a killed process
    (``.<name>.overwrite``) is removed by the next call.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputExistsError(f"{run_dir} exists and is not a folder")
    real = Path(os.path.realpath(run_dir))
    stage = real.parent / f".{real.name}.overwrite"
    old = real.parent / f".{real.name}.replaced"
    for leftover in (stage, old):
        if leftover.exists():
            log.warning("removing %s left by an interrupted --overwrite", leftover)
            shutil.rmtree(leftover)
    stage.mkdir(parents=True)
    try:
        yield stage
        if not real.exists():
            os.replace(stage, real)
            return
        os.replace(real, old)
        try:
            os.replace(stage, real)
        except BaseException:
            os.replace(old, real)
            raise
        for p in sorted(old.iterdir()):
            if not is_run_entry(p.name) and not (real / p.name).exists():
                os.replace(p, real / p.name)
        shutil.rmtree(old)
        log.info("replaced the run in %s", run_dir)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
