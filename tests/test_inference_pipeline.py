"""The reader thread ahead of the network and the writer thread behind it (core.inference.pipeline)."""

from __future__ import annotations

import threading
import time

import pytest

from core.inference import READ_AHEAD, WriteBehind, read_ahead


def _counting(n: int, consumed: list[int]):
    for i in range(n):
        consumed.append(i)
        yield i


def test_read_ahead_keeps_order_and_applies_fn_with_the_index():
    out = list(read_ahead(iter("abcdefg"), lambda x, i: f"{i}{x}", depth=2))
    assert out == ["0a", "1b", "2c", "3d", "4e", "5f", "6g"]
    assert list(read_ahead([], lambda x, i: x)) == []


def test_read_ahead_is_bounded():
    consumed: list[int] = []
    it = read_ahead(_counting(100, consumed), lambda x, i: x, depth=READ_AHEAD)
    assert next(it) == 0
    time.sleep(0.3)  # give the reader every chance to run ahead
    assert 1 <= len(consumed) <= 1 + READ_AHEAD + 1
    assert [next(it) for _ in range(5)] == [1, 2, 3, 4, 5]
    time.sleep(0.3)
    assert len(consumed) <= 6 + READ_AHEAD + 1
    it.close()


def test_read_ahead_raises_at_the_failing_item_after_the_ones_before():
    def fn(x: int, i: int) -> int:
        if x == 3:
            raise ValueError("image #3 is broken")
        return x * 10

    it = read_ahead(range(10), fn)
    assert [next(it) for _ in range(3)] == [0, 10, 20]
    with pytest.raises(ValueError, match="image #3 is broken"):
        next(it)

    def failing_source():
        yield 1
        raise OSError("disk gone")

    it = read_ahead(failing_source(), lambda x, i: x)
    assert next(it) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(it)


def test_closing_stops_the_reader_thread():
    consumed: list[int] = []
    before = threading.active_count()
    it = read_ahead(_counting(10_000, consumed), lambda x, i: x, depth=1)
    assert next(it) == 0
    it.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before
    assert len(consumed) <= 4


def test_read_ahead_refuses_a_bad_depth():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="depth must be an int >= 1"):
            read_ahead([1], lambda x, i: x, depth=bad)  # type: ignore[arg-type]


def test_write_behind_runs_every_call_in_order():
    done: list[int] = []
    with WriteBehind(depth=2) as w:
        for i in range(20):
            w.submit(lambda i=i: (time.sleep(0.001), done.append(i)))
    assert done == list(range(20))  # all finished when the block is left


def test_write_behind_hands_back_the_first_failure():
    done: list[int] = []

    def write(i: int) -> None:
        if i == 3:
            raise OSError("no space left on device")
        done.append(i)

    with pytest.raises(OSError, match="no space left"), WriteBehind(depth=2) as w:
        for i in range(50):
            w.submit(write, i)
    assert done[:3] == [0, 1, 2] and 3 not in done
    assert len(done) < 49  # it stopped soon after the failure instead of writing everything


def test_write_behind_cancels_pending_calls_when_the_block_fails():
    started = threading.Event()
    release = threading.Event()
    done: list[int] = []

    def slow(i: int) -> None:
        started.set()
        release.wait(5)
        done.append(i)

    with pytest.raises(KeyError), WriteBehind(depth=4) as w:
        for i in range(4):
            w.submit(slow, i)
        started.wait(5)
        threading.Timer(0.2, release.set).start()  # the first call ends while the block is being left
        raise KeyError("the network failed")
    assert done == [0]  # the running call finished; the three waiting ones were cancelled
    time.sleep(0.1)
    assert done == [0]
