"""The command line's renderer of ``core.progress.Progress``: tqdm bars on stderr.

Every command that does long work (run, demo, train, predict, convert, export, evaluate) passes a
:class:`ProgressBars` as its ``progress`` callback inside a ``with`` block, so the bars are closed
even when the work fails.
"""

from __future__ import annotations

import sys
from typing import Any


class ProgressBars:
    """A ``progress(stage, done, total)`` callback drawing one tqdm bar per stage on stderr.

    A bar lives while its stage reports; a new stage (or the same stage starting over) closes it
    and opens the next one. ``total`` 0 means unknown (the bar counts without a percentage).
    ``enabled=False`` draws nothing. Use as a context manager, or call :meth:`close` at the end.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.stage: str | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if stage != self.stage or self.bar is None or done < self.bar.n:
            self.close()
            self.bar = tqdm(total=total or None, desc=stage, file=sys.stderr, leave=False, dynamic_ncols=True)
            self.stage = stage
        self.bar.total = total or None
        self.bar.update(done - self.bar.n)

    def write(self, line: str) -> None:
        """Close the open bar (its stage is over) and print ``line`` on stderr; nothing when disabled."""
        if not self.enabled:
            return
        from tqdm import tqdm

        self.close()
        tqdm.write(line, file=sys.stderr)

    def close(self) -> None:
        """Close the open bar, if any."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stage = None

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
