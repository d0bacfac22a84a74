"""Per-image work in worker processes: the dense CRF and GrabCut are single-threaded, so a round's
post-processing on N cores runs N images at once.

``map_ordered`` keeps the results in input order and at most ``window`` images in flight, so memory
stays that of a few images whatever the set's size; with one worker it runs in this process.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """The cores this process may use (``os.sched_getaffinity``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None, n_items: int) -> int:
    """``workers`` (None = one per core), never more than the items."""
    n = default_workers() if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"workers must be >= 1 or None (one per core), got {workers!r}")
    return max(1, min(n, n_items))


def map_ordered(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, window: int | None = None
) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` for each item, in order; ``fn`` runs in ``workers`` processes (``fn`` and
    the items must pickle) with at most ``window`` (default ``2 * workers``) items dispatched ahead.
    With one worker, ``fn`` runs here. A worker's exception is raised here, for its item.

    The workers are joblib's loky processes: started clean (no fork of this process and its torch
    threads) and, unlike ``multiprocessing``'s spawn, without re-running the caller's ``__main__``
    (a script without an ``if __name__ == "__main__"`` guard stays safe); they are reused across
    calls, so each round does not pay for starting them again."""
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    from joblib import Parallel, delayed

    window = max(window or 2 * workers, workers)
    sent: deque[T] = deque()

    def tasks():
        for item in items:
            sent.append(item)
            yield delayed(_in_worker)(fn, item)

    results = Parallel(n_jobs=workers, backend="loky", return_as="generator", pre_dispatch=str(window))(tasks())
    for result in results:
        yield sent.popleft(), result


def _in_worker(fn: Callable[[T], R], item: T) -> R:
    """``fn(item)`` in a worker process, which runs one image at a time on one core: OpenCV's own
    thread pool is switched off there (never in the caller's process)."""
    import cv2

    cv2.setNumThreads(1)
    return fn(item)


def postprocess_one(job: tuple[str | os.PathLike, np.ndarray, str, Any]) -> np.ndarray:
    """``(image path, probs (K, h, w) float32, chain, PostprocessConfig)`` -> the chain's mask (h, w)
    uint8 (``core.refine.postchain.postprocess``), reading the image in the worker.

    The image is read as ``core.io.images.read_image`` reads it: a ``WorkingImage`` (``Sample.image_source``
    of a run's samples) at the run's working size, never at full size when it is larger; ``probs`` are
    at that size."""
    from core.io.images import read_image
    from core.refine.postchain import postprocess

    path, probs, chain, params = job
    mask, _ = postprocess(read_image(path), probs, chain, params=params)
    return np.asarray(mask, dtype=np.uint8)
