"""Operator progress: ``progress(fraction, label)``, and the engine's progress converted to it.

FiftyOne shows one fraction in ``[0, 1]`` and a label per operation (``ctx.set_progress``). The
engine reports ``progress(stage, done, total)`` per step of every stage (``core.progress``) and
each finished round through ``run_autolabel(..., on_round=...)``; :class:`RunProgress` turns both
into the operator's fraction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

ProgressFn = Callable[[float, str], None]
"""``progress(fraction in [0, 1], label)``."""


class RunProgress:
    """A run's engine progress -> one throttled overall fraction for ``report``.

    Rounds ``0..rounds`` share ``[0, 1]`` equally; within the current round the fraction follows
    the stage's ``done / total``. ``first_round``: the first round this run will compute (the
    number of rounds already finished when resuming). Call :meth:`round_finished` from
    ``on_round``: it moves on to the next round and reports ``"round k finished"`` at once.
    """

    def __init__(self, report: ProgressFn | None, rounds: int, first_round: int = 0) -> None:
        self.report = report
        self.n = rounds + 1
        self.current = first_round
        self._last = (-1.0, "", 0.0)

    def __call__(self, stage: str, done: int, total: int) -> None:
        frac = (self.current + (done / total if total else 0.0)) / self.n
        self._emit(min(frac, 1.0), f"{stage} {done}/{total}")

    def round_finished(self, index: int) -> None:
        """Round ``index`` is finished on disk."""
        self.current = index + 1
        self._emit(min(1.0, (index + 1) / self.n), f"round {index} finished", force=True)

    def _emit(self, frac: float, label: str, force: bool = False) -> None:
        if self.report is None:
            return
        last_frac, _, last_t = self._last
        now = time.monotonic()
        if force or frac - last_frac >= 0.01 or now - last_t >= 2.0:
            self._last = (frac, label, now)
            self.report(frac, label)
