"""A tqdm-drawing ``progress(stage, done, total)`` callback for the command line."""

from __future__ import annotations

from typing import Callable


class TqdmProgress:
    """Callable ``(stage, done, total)`` drawing one tqdm bar per stage; call ``close()`` at the end."""

    def __init__(self, disable: bool = False) -> None:
        self.disable = disable
        self._bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total or None, desc=stage, disable=self.disable, leave=False)
        bar.update(done - bar.n)  # type: ignore[attr-defined]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()  # type: ignore[attr-defined]
        self._bars.clear()


ProgressFn = Callable[[str, int, int], None]
