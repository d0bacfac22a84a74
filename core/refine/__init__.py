"""Refinement rounds and run folders (paper 001 section IV-B, paper 002 Algorithm 1).

``run_autolabel(dataset, out_dir, RunConfig(...))`` makes round 0 (initial masks), then each round
trains the GFN on the current labels, predicts, fuses, post-processes and filters; every round is
a folder of the run; ``load_run`` reads a run back; ``Labeller`` applies a trained round to new images.
"""

from core.refine.config import RunConfig

__all__ = ["Labeller", "RoundInfo", "RunConfig", "RunResult", "load_run", "run_autolabel"]


def __getattr__(name: str):
    # imported lazily: the runner pulls in torch
    if name in ("run_autolabel", "load_run", "RunResult", "RoundInfo"):
        from core.refine import runner

        return getattr(runner, name)
    if name == "Labeller":
        from core.refine.apply import Labeller

        return Labeller
    raise AttributeError(f"module 'core.refine' has no attribute {name!r}")
