"""The names a run writes on a dataset, all derived from its ``output_prefix``.

For prefix ``gfn`` and rounds 0..R::

    gfn_round_<k>               fo.Segmentation, the masks of round k (files of the run folder)
    gfn_round_<k>_reliability   float in [0, 1], the engine's per-image reliability in round k
    gfn_round_<k>_changed       float in [0, 1], fraction of pixels changed against round k-1
    gfn_round_<k>_confidence    fo.Heatmap, per-pixel confidence of round k (top-1 minus top-2
                                probability, 0 = undecided .. 255 = certain; PNG files)
    gfn                         fo.Segmentation, the best round's masks
    gfn_reliability             float, the best round's reliability
    gfn_confidence              fo.Heatmap, the best round's confidence
    gfn_margin / gfn_agreement / gfn_stability / gfn_area_ratio
                                floats in [0, 1], the parts of the best round's reliability and the
                                mask's foreground area (``core.refine.records.ImageRecord``)
    tag gfn_dropped             samples whose best-round mask the filters left out of training
                                (area out of range, or among the least reliable)
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

SUBSCORES = ("margin", "agreement", "stability", "area_ratio")
"""Per-image numbers of the best round written as sample fields (``core.refine.records.ImageRecord``):
the three parts of the reliability and the foreground area ratio the area filter looks at."""


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

    def confidence(self, k: int) -> str:
        return f"{self.round(k)}_confidence"

    @property
    def best_confidence(self) -> str:
        return f"{self.prefix}_confidence"

    def subscore(self, part: str) -> str:
        """``<prefix>_<part>`` for ``part`` in :data:`SUBSCORES`."""
        if part not in SUBSCORES:
            raise ValueError(f"unknown reliability part {part!r}; parts: {list(SUBSCORES)}")
        return f"{self.prefix}_{part}"

    @property
    def dropped_tag(self) -> str:
        """Sample tag of the samples whose best-round mask the filters dropped."""
        return f"{self.prefix}_dropped"

    def round_fields(self, k: int) -> list[str]:
        return [self.round(k), self.reliability(k), self.changed(k), self.confidence(k)]

    def best_fields(self) -> list[str]:
        """The fields of the best round: masks, reliability, confidence and the reliability's parts."""
        return [self.best, self.best_reliability, self.best_confidence] + [self.subscore(p) for p in SUBSCORES]

    def output_fields(self, rounds: int) -> list[str]:
        """Every field ``auto_label`` writes for rounds 0..``rounds``."""
        out = self.best_fields()
        for k in range(rounds + 1):
            out += self.round_fields(k)
        return out

    def owned(self, field_names) -> list[str]:
        """The names among ``field_names`` that belong to this prefix (any round, any evaluation)."""
        best = "|".join(["_reliability", "_confidence", *(f"_{p}" for p in SUBSCORES)])
        per_round = r"_round_\d+(_reliability|_changed|_confidence|_iou)?"
        pat = re.compile(rf"^{re.escape(self.prefix)}({best}|{per_round})?$")
        return sorted(n for n in field_names if pat.match(n))

    def round_of(self, field: str) -> int | None:
        """``k`` if ``field`` is ``<prefix>_round_<k>``, else ``None``."""
        m = re.fullmatch(rf"{re.escape(self.prefix)}_round_(\d+)", field)
        return int(m.group(1)) if m else None
