"""The one progress protocol of the engine: ``progress(stage, done, total)``.

Every long step of ``core`` (training, prediction, initial masks, the refinement rounds, format
writers, evaluation) takes an optional ``progress`` callback and calls it after each unit of work
with a human-readable stage name, the units done so far and the total (``0`` when unknown). The
faces render it: the command line as tqdm bars (:class:`core.cli.progress.ProgressBars`), FiftyOne
as the operator's fraction, the Label Studio backend as a job's progress text. Events about whole
rounds are typed, not stage strings: ``run_autolabel(..., on_round=...)`` receives each finished
``RoundInfo``.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """A callable told ``(stage, done, total)`` after each unit of work of ``stage``."""

    def __call__(self, stage: str, done: int, total: int) -> None: ...


def prefixed(progress: Progress | None, prefix: str) -> Progress | None:
    """``progress`` with ``"<prefix>: "`` before every stage name (``None`` stays ``None``)."""
    if progress is None:
        return None

    def report(stage: str, done: int, total: int) -> None:
        progress(f"{prefix}: {stage}", done, total)

    return report
