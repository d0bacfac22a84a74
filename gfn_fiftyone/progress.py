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


STAGE_WEIGHTS = {"train": 0.75, "predict": 0.15, "post-process": 0.10}
"""Share of a refinement round's time per stage (measured on the example: training dominates).
A stage not listed takes :data:`UNKNOWN_SHARE` of what is left of the round."""
UNKNOWN_SHARE = 0.8


def stage_key(stage: str) -> str:
    """``"round 2: post-process"`` -> ``"post-process"``; ``"train"`` -> ``"train"``."""
    tail = stage.rsplit(": ", 1)[-1].strip()
    return tail.split(" ", 1)[0] if tail else tail


class RunProgress:
    """A run's engine progress -> one throttled, never decreasing overall fraction for ``report``.

    Rounds ``0..rounds`` share ``[0, 1]`` equally; within a round each stage (train, predict,
    post-process, ...) has its share of the round's slice (:data:`STAGE_WEIGHTS`), filled as
    ``done / total`` grows, so the fraction never goes back when the next stage starts at 0.
    ``first_round``: the first round this run will compute (the number of rounds already finished
    when resuming). Call :meth:`round_finished` from ``on_round``: it moves on to the next round
    and reports ``"round k finished"`` at once.
    """

    def __init__(self, report: ProgressFn | None, rounds: int, first_round: int = 0) -> None:
        self.report = report
        self.n = rounds + 1
        self.current = first_round
        self._stage: str | None = None
        self._floor = 0.0  # share of the current round done by its finished stages
        self._weight = 0.0  # share of the current stage
        self._last = (-1.0, "", 0.0)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage:
            if self._stage is not None:
                self._floor = min(1.0, self._floor + self._weight)
            self._stage = stage
            left = 1.0 - self._floor
            w = STAGE_WEIGHTS.get(stage_key(stage))
            self._weight = min(w, left) if w is not None else UNKNOWN_SHARE * left
        within = self._floor + self._weight * (min(done / total, 1.0) if total else 0.0)
        self._emit(min((self.current + within) / self.n, 1.0), f"{stage} {done}/{total}")

    def round_finished(self, index: int) -> None:
        """Round ``index`` is finished on disk."""
        self.current = index + 1
        self._stage, self._floor, self._weight = None, 0.0, 0.0
        self._emit(min(1.0, (index + 1) / self.n), f"round {index} finished", force=True)

    def _emit(self, frac: float, label: str, force: bool = False) -> None:
        if self.report is None:
            return
        last_frac, _, last_t = self._last
        frac = max(frac, last_frac)  # never backwards
        now = time.monotonic()
        if force or frac - last_frac >= 0.01 or now - last_t >= 2.0:
            self._last = (frac, label, now)
            self.report(frac, label)
