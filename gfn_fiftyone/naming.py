"""The names a run writes on a dataset, all derived from its ``output_prefix``.

For prefix ``gfn`` and rounds 0..R::

    gfn_round_<k>               fo.Segmentation, the masks of round k (files of the run folder)
    gfn_round_<k>_reliability   float in [0, 1], the engine's per-image reliability in round k
    gfn_round_<k>_changed       float in [0, 1], fraction of pixels changed against round k-1
    gfn                         fo.Segmentation, the best round's masks
    gfn_reliability             float, the best round's reliability
    gfn_round_<k>_eval          evaluation key (evaluate_rounds): FiftyOne's evaluate_segmentations
    gfn_round_<k>_iou           float, per-sample mean IoU over the classes present (evaluate_rounds)

The run itself (its settings and per-round metrics) is stored with the dataset's runs under the
key ``gfn``. Nothing here imports FiftyOne.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RUN_METHOD = "gfn_autolabel"
"""``method`` of the FiftyOne run config that marks a run as ours."""


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a valid run key and field prefix, else ``ValueError`` saying why."""
    if not isinstance(prefix, str) or not prefix.isidentifier() or prefix.startswith("_"):
        raise ValueError(
            f"output_prefix {prefix!r} is not usable: it becomes field names and a run key, so it must be "
            f"letters, digits and underscores, not start with a digit or an underscore (e.g. 'gfn')"
        )
    return prefix


@dataclass(frozen=True)
class RunNames:
    """Field names and keys of one run (see the module docstring)."""

    prefix: str

    def __post_init__(self) -> None:
        check_prefix(self.prefix)

    @property
    def run_key(self) -> str:
        return self.prefix

    @property
    def best(self) -> str:
        return self.prefix

    @property
    def best_reliability(self) -> str:
        return f"{self.prefix}_reliability"

    def round(self, k: int) -> str:
        return f"{self.prefix}_round_{k}"

    def reliability(self, k: int) -> str:
        return f"{self.round(k)}_reliability"

    def changed(self, k: int) -> str:
        return f"{self.round(k)}_changed"

    def eval_key(self, k: int) -> str:
        return f"{self.round(k)}_eval"

    def iou(self, k: int) -> str:
        return f"{self.round(k)}_iou"

    def round_fields(self, k: int) -> list[str]:
        return [self.round(k), self.reliability(k), self.changed(k)]

    def output_fields(self, rounds: int) -> list[str]:
        """Every field ``auto_label`` writes for rounds 0..``rounds``."""
        out = [self.best, self.best_reliability]
        for k in range(rounds + 1):
            out += self.round_fields(k)
        return out

    def owned(self, field_names) -> list[str]:
        """The names among ``field_names`` that belong to this prefix (any round, any evaluation)."""
        pat = re.compile(rf"^{re.escape(self.prefix)}(_reliability|_round_\d+(_reliability|_changed|_iou)?)?$")
        return sorted(n for n in field_names if pat.match(n))

    def round_of(self, field: str) -> int | None:
        """``k`` if ``field`` is ``<prefix>_round_<k>``, else ``None``."""
        m = re.fullmatch(rf"{re.escape(self.prefix)}_round_(\d+)", field)
        return int(m.group(1)) if m else None
