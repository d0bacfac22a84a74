"""Atomic writes: a file is written to a temporary file in the same folder, then renamed; a
folder of outputs is built in a temporary sibling folder and moved in only when it is complete
(``staged_dir``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()
"""Permissions of written files, as ``open()`` would give them (``mkstemp`` alone gives 0600)."""


class OutputExistsError(FileExistsError):
    """An output exists and the caller did not ask to overwrite it."""


class OutputPathError(ValueError):
    """An output path that cannot be written: a file where a folder is needed, or the reverse."""


def _file_parent(path: Path) -> Path | None:
    """The first of ``path``'s parents that exists as something other than a folder, if any."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def check_folder_target(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path``, refused (``OutputPathError``) when it or one of its parents is a file."""
    path = Path(path)
    blocker = _file_parent(path)
    if blocker is not None:
        raise OutputPathError(f"cannot write into {path}: {blocker} is a file, not a folder")
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path} is a file, but the output must be a folder; choose a folder path")
    return path


def check_can_write(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse to replace an existing ``path`` unless ``overwrite``; returns it as a ``Path``.

    Also refused (``OutputPathError``): one of its parents is a file.
    """
    path = Path(path)
    blocker = _file_parent(path)
    if blocker is not None:
        raise OutputPathError(f"cannot write {path}: {blocker} is a file, not a folder")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    On error the temporary file is removed and ``path`` is untouched. A folder at ``path`` is
    refused (``OutputPathError``).
    """
    path = check_can_write(path, overwrite)
    if path.is_dir():
        raise OutputPathError(f"{path} is a folder, but the output must be a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, _FILE_MODE)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), overwrite=overwrite)


def _move_into(staged: Path, dst: Path) -> None:
    """Move every file of ``staged`` to the same relative place in ``dst`` (one rename each)."""
    if not dst.exists():
        os.replace(staged, dst)
        return
    files = sorted(p for p in staged.rglob("*") if not p.is_dir())
    clashes = [dst / p.relative_to(staged) for p in files if (dst / p.relative_to(staged)).is_dir()]
    if clashes:
        raise OutputPathError(f"cannot write {clashes[0]}: a folder of that name is in the way")
    for p in files:
        target = dst / p.relative_to(staged)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(p, target)


@contextlib.contextmanager
def staged_dir(dst: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``dst``; when the block succeeds its files move into ``dst``.

    Write every output into the yielded folder. Only when the block ends without an error is the
    result swapped in: renamed to ``dst`` when ``dst`` does not exist, else moved into it file by
    file (files of ``dst`` that were not rebuilt stay). On error the temporary folder is removed
    and ``dst`` is left exactly as it was. Whether existing outputs may be replaced is the
    caller's check.
    """
    dst = check_folder_target(dst)
    parent = dst.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{dst.resolve().name}.", suffix=".tmp", dir=parent))
    os.chmod(staged, 0o777 & ~_umask())
    try:
        yield staged
        _move_into(staged, dst)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
