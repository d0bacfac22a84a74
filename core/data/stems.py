"""Sample stems: the key that ties an image to its mask in every format.

A stem is the file name without its extension (``images/horse001.jpg`` -> ``horse001``). When two
files of one dataset share a name (``horse/001.jpg`` and ``zebra/001.jpg``), every stem of that
dataset is built from the relative path instead, parts joined by ``_`` (``horse_001``), so stems
stay valid file names and the rule is the same for every reader and format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath


def path_stem(relpath: str) -> str:
    """The relative path without extension, its parts joined by ``_`` (``a/b/c.jpg`` -> ``a_b_c``)."""
    p = PurePosixPath(relpath.replace("\\", "/"))
    parts = [q for q in p.parent.parts if q not in ("", ".", "/")]
    return "_".join([*parts, p.stem])


def unique_stems(relpaths: Sequence[str]) -> list[str]:
    """Stems for ``relpaths`` (paths relative to the dataset root), in the same order.

    File names alone when they are unique, otherwise the path-based stems of :func:`path_stem`.
    Raises ``ValueError`` naming the files when even the path-based stems collide.
    """
    plain = [PurePosixPath(r.replace("\\", "/")).stem for r in relpaths]
    if len(set(plain)) == len(plain):
        return plain
    full = [path_stem(r) for r in relpaths]
    if len(set(full)) != len(full):
        seen: dict[str, list[str]] = {}
        for stem, rel in zip(full, relpaths):
            seen.setdefault(stem, []).append(rel)
        clashes = {s: files for s, files in seen.items() if len(files) > 1}
        shown = "; ".join(f"{s}: {', '.join(f)}" for s, f in list(clashes.items())[:10])
        raise ValueError(f"{len(clashes)} image name(s) are used by more than one file (stems must be unique): {shown}")
    return full
