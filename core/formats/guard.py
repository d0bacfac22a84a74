"""Never write outputs over inputs: the files a mask set is made from, and the pictures beside it.

``convert SRC SRC --overwrite`` or an export into the folder the masks come from would replace
the originals with the copies being made of them; these checks refuse that before anything is
written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from core.classmap import ClassMap
from core.data.dataset import Dataset
from core.io.atomic import OutputPathError


def input_files(masks: Mapping[str, object], dataset: Dataset | ClassMap | None = None) -> list[Path]:
    """The files ``masks`` and ``dataset`` are read from.

    ``masks``: a ``LazyMasks`` (its ``inputs``) or a mapping whose values may be PNG paths;
    ``dataset``: its image and ground-truth mask files.
    """
    files = [Path(p) for p in getattr(masks, "inputs", ())]
    if not hasattr(masks, "inputs"):  # a plain mapping: values are arrays or paths (never loaded here)
        files += [Path(v) for v in masks.values() if isinstance(v, (str, os.PathLike))]
    if isinstance(dataset, Dataset):
        files += [Path(s.image_path) for s in dataset]
        files += [Path(s.mask_path) for s in dataset if s.mask_path is not None]
    return files


def refuse_overwriting_inputs(outputs: Iterable[Path], inputs: Iterable[Path]) -> None:
    """Raise ``OutputPathError`` when an output is (after resolving links) one of the inputs."""
    by_real = {os.path.realpath(p): Path(p) for p in inputs}
    for out in outputs:
        hit = by_real.get(os.path.realpath(out))
        if hit is not None:
            raise OutputPathError(
                f"output {out} would overwrite the input {hit}; write the result to another folder or file"
            )
