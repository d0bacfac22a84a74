"""When to stop refining and which round to keep: pure functions on per-round signals.

Two signals are computed for every round (``core.refine.evaluate``):

- **label-free** (never looks at ground truth): the mean per-mask reliability (probability margin,
  network/post-processor agreement, stability against the previous round). Round 0 has no network
  and no previous round, so its reliability is not comparable and is never ranked against the
  refined rounds'. Round 0 is still a candidate: the label-free choice is among the refined rounds
  (>= 1) the collapse guard (``core.refine.collapse``) passes against round 0, and round 0 when
  there is none (``core.refine.runner.decide``).
- **gt**: mIoU against ground truth on the images that have it (only for reporting unless
  ``select_by="gt"``).

``RunConfig.select_by`` says which one stops the run and picks ``best_round``; both choices are
recorded in ``run.json`` either way.
"""

from __future__ import annotations

from collections.abc import Sequence

STOP_MAX_ROUNDS = "max rounds"
STOP_NO_GAIN = "no gain"
STOP_CONVERGED = "converged"
STOP_COLLAPSED = "collapsed"
"""The last round collapsed (``core.refine.collapse``): it is not kept and no round follows it."""


def pick_best(signal: Sequence[float | None]) -> int | None:
    """Index of the highest value (earliest on ties), skipping ``None``; ``None`` if all are ``None``."""
    best: int | None = None
    for i, v in enumerate(signal):
        if v is not None and (best is None or v > signal[best]):  # type: ignore[operator]
            best = i
    return best


def stop_reason(
    signal: Sequence[float | None],
    *,
    min_gain: float,
    patience: int,
    max_rounds: int,
    changed: Sequence[float | None] | None = None,
    converged_change: float = 0.0,
) -> str | None:
    """Why to stop after the last round in ``signal`` (``signal[r]`` = value after round r), or ``None``.

    - ``"max rounds"``: round ``max_rounds`` is done;
    - ``"no gain"``: each of the last ``patience`` rounds failed to beat the best value before it by
      at least ``min_gain`` (``None`` values carry no information and never count as progress);
    - ``"converged"``: the mean fraction of changed pixels of the last round (``changed[-1]``, round
      >= 1) fell below ``converged_change``.
    """
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    last = len(signal) - 1
    if last < 0:
        raise ValueError("stop_reason needs the signal of at least one round")
    if last >= max_rounds:
        return STOP_MAX_ROUNDS
    latest_change = changed[last] if last >= 1 and changed is not None else None
    if latest_change is not None and latest_change < converged_change:
        return STOP_CONVERGED
    for stale, r in enumerate(range(last, 0, -1), start=1):
        value = signal[r]
        before = [v for v in signal[:r] if v is not None]
        if value is not None and (not before or value >= max(before) + min_gain):
            break
        if value is None and not before:
            break
        if stale >= patience:
            return STOP_NO_GAIN
    return None
