"""Overlap reading and writing with the network: a reader thread ahead of it, a writer thread behind it.

Both keep a small bounded number of items in flight, keep the order, and hand an error back to the
caller at the point where the sequential code would have raised it.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

READ_AHEAD = 2
"""Items :func:`read_ahead` prepares before they are asked for (besides the one it is working on)."""

_END = object()
_POLL = 0.05  # seconds between checks that the consumer is still there


def read_ahead(items: Iterable[T], fn: Callable[[T, int], R], depth: int = READ_AHEAD) -> Generator[R, None, None]:
    """``fn(item, index)`` for each of ``items`` in order, computed by a reader thread ahead of the caller.

    At most ``depth`` results wait in the queue and one more is being computed, so at most
    ``depth + 1`` items have been taken from ``items`` beyond those the caller has received. An
    exception from ``items`` or ``fn`` is raised to the caller when it reaches that item, after the
    results before it. Closing the returned generator (or leaving a ``for`` loop over it) stops the
    thread after its current item. ``items`` is iterated in the reader thread only.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an int >= 1, got {depth!r}")
    return _read_ahead(items, fn, depth)


def _read_ahead(items: Iterable[T], fn: Callable[[T, int], R], depth: int) -> Generator[R, None, None]:
    q: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for i, item in enumerate(items):
                if stop.is_set() or not put((True, fn(item, i))):
                    return
        except BaseException as exc:  # handed to the caller, raised there
            put((False, exc))
            return
        put((False, _END))

    thread = threading.Thread(target=work, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = q.get()
            if ok:
                yield value
            elif value is _END:
                return
            else:
                raise value
    finally:
        stop.set()


class WriteBehind:
    """Run calls (e.g. mask writes) in one background thread, in order, at most ``depth`` pending.

    ``submit`` waits while ``depth`` calls are pending and raises the first failed call's exception;
    leaving the ``with`` block waits for every call (and raises a failure), or, when the block
    raised, cancels the calls not yet started and waits for the running one, so nothing is still
    writing once the block is left.
    """

    def __init__(self, depth: int = 4) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an int >= 1, got {depth!r}")
        self.depth = depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-behind")
        self._pending: deque[Future[Any]] = deque()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        while len(self._pending) >= self.depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()
