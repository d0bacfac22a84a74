"""``export_labels``: one round of a run (default: the best) as COCO JSON, a VOC folder or PNG masks.

A thin wrapper over ``core.formats.export_masks`` on the run folder's masks and images.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from gfn_fiftyone import runs
from gfn_fiftyone.naming import RunNames

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("coco", "voc", "png")


def resolve_round(run, round_index: int | str | None) -> int:
    """``round_index`` as an int: ``None``/``"best"`` is the run's best round; ``ValueError`` listing the
    finished rounds otherwise."""
    if round_index is None or str(round_index).strip().lower() in ("", "best"):
        return int(run.best_round)
    try:
        k = int(round_index)
    except (TypeError, ValueError):
        raise ValueError(f"round must be 'best' or a round number, got {round_index!r}") from None
    done = [r.index for r in run.rounds]
    if k not in done:
        raise ValueError(f"run {run.run_dir} has no finished round {k}; rounds: {done}")
    return k


def default_destination(run_dir: Path, fmt: str, k: int, polygons: bool = False) -> Path:
    """``<run_dir>/export/<fmt>_round_<k>`` (``.json`` file for COCO)."""
    if fmt == "coco":
        return run_dir / "export" / f"coco_round_{k}{'_polygons' if polygons else ''}.json"
    return run_dir / "export" / f"{fmt}_round_{k}"


def export_labels(
    dataset,
    output_prefix: str,
    *,
    round_index: int | str | None = "best",
    fmt: str = "coco",
    dst: str | os.PathLike | None = None,
    polygons: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write round ``round_index`` of run ``output_prefix`` as ``fmt`` to ``dst`` (default: inside the
    run folder). Returns ``{"path", "round", "format", "n_images"}``."""
    from core.formats import export_masks
    from core.refine.runner import load_run

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format {fmt!r} is unknown; choose one of {list(EXPORT_FORMATS)}")
    record = runs.load_record(dataset, RunNames(output_prefix).run_key)
    run = load_run(record.folder)
    k = resolve_round(run, round_index)
    masks = {p.stem: p for p in sorted(Path(run.round(k).masks_dir).glob("*.png"))}
    dst = Path(dst).expanduser() if dst else default_destination(record.folder, fmt, k, polygons)
    written = export_masks(masks, run.dataset, dst, to=fmt, polygons=polygons, overwrite=overwrite)
    log.info("exported round %d of run %r (%d masks) as %s to %s", k, output_prefix, len(masks), fmt, written)
    return {"path": str(written), "round": k, "format": fmt, "n_images": len(masks)}
