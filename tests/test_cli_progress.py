"""The command line's one progress renderer: a tqdm bar per stage on stderr, all closed at the end."""

from __future__ import annotations

import pytest
import tqdm

from core.cli.progress import ProgressBars
from core.progress import Progress, prefixed


@pytest.fixture
def opened(monkeypatch):
    """Every tqdm bar ProgressBars opens."""
    bars = []

    class Recorded(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(tqdm, "tqdm", Recorded)
    return bars


def test_one_bar_per_stage_on_stderr_closed_on_exit(opened, capsys):
    with ProgressBars() as bars:
        bars("train", 1, 4)
        bars("train", 4, 4)
        assert len(opened) == 1 and opened[0].n == 4 and opened[0].total == 4 and opened[0].desc == "train"
        bars("predict", 1, 2)
        assert len(opened) == 2 and opened[0].disable, "the previous stage's bar is closed"
        bars("predict", 1, 2)  # the same stage starting over gets a fresh bar
        bars("predict", 0, 0)
        assert len(opened) == 3 and opened[2].total is None, "total 0 = unknown"
    assert all(b.disable for b in opened), "every bar is closed"
    err = capsys.readouterr().err
    assert "train" in err and "predict" in err


def test_bars_are_closed_when_the_work_fails(opened):
    with pytest.raises(RuntimeError), ProgressBars() as bars:
        bars("evaluate", 1, 3)
        raise RuntimeError("boom")
    assert len(opened) == 1 and opened[0].disable


def test_disabled_bars_draw_nothing_and_a_line_closes_the_bar(opened, capsys):
    with ProgressBars(enabled=False) as bars:
        bars("train", 1, 4)
        bars.write("round 0 (grabcut): ...")
    assert opened == [] and capsys.readouterr().err == ""
    with ProgressBars() as bars:
        bars("round 0: filter", 4, 4)
        bars.write("round 0 (grabcut): ...")
        assert opened[-1].disable, "a finished round's line closes the bar of its last stage"
    assert "round 0 (grabcut): ..." in capsys.readouterr().err


def test_prefixed_names_every_stage():
    calls = []

    def record(stage: str, done: int, total: int) -> None:
        calls.append((stage, done, total))

    progress: Progress = record
    inner = prefixed(progress, "round 2")
    assert inner is not None
    inner("predict", 1, 3)
    assert calls == [("round 2: predict", 1, 3)] and prefixed(None, "round 2") is None
