"""The training recipe of issue 10: cosine / time-budget schedule, frozen stages, image cache,
channels-last, and the legacy SGD recipe still reachable (CPU, tiny inputs, no timing assertions)."""

from __future__ import annotations

import argparse
import itertools
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data.example import generate_arrays, make_example
from core.network import GFNConfig, build_model
from core.network.backbones import NUM_STAGES, freeze_stages
from core.training import TrainConfig, evaluate_model, train
from core.training import trainer as trainer_module
from core.training.config import LEGACY_RECIPE
from core.training.data import PairDataset
from core.training.schedule import build_optimizer, cosine_factor, lr_factor
from core.training.trainer import set_train_mode

torch.set_num_threads(1)

TINY = dict(epochs=1, batch_size=4, crop_size=32, max_side=None)


@pytest.fixture(scope="module")
def pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    return [(im, (m > 0).astype(np.uint8)) for _, _, im, m, _ in generate_arrays(8, 64, 0)]


def _model(name: str = "all"):
    torch.manual_seed(0)
    return build_model(GFNConfig.for_ablation(name, pretrained=False))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (n, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=n)


# ---------------------------------------------------------------- schedule
def test_cosine_and_step_lr_at_fractions():
    assert cosine_factor(0.0) == 1.0 and cosine_factor(1.0) == pytest.approx(0.0, abs=1e-12)
    assert cosine_factor(0.5) == pytest.approx(0.5) and cosine_factor(0.25) == pytest.approx(0.8535534)
    assert cosine_factor(1.7) == pytest.approx(0.0, abs=1e-12) and cosine_factor(-1) == 1.0
    assert cosine_factor(0.05, warmup=0.1) == pytest.approx(0.5)  # half-way up the linear warm-up
    assert cosine_factor(0.1, warmup=0.1) == 1.0 and cosine_factor(0.55, warmup=0.1) == pytest.approx(0.5)
    cos, step = TrainConfig(), TrainConfig.legacy()
    assert lr_factor(cos, 0.5, epoch=7, step_epochs=5) == pytest.approx(0.5)
    assert [lr_factor(step, 0.9, e, 5) for e in (0, 4, 5, 10)] == pytest.approx([1, 1, 0.1, 0.01])
    assert isinstance(build_optimizer(cos, [{"params": [torch.zeros(1, requires_grad=True)]}]), torch.optim.AdamW)
    assert isinstance(build_optimizer(step, [{"params": [torch.zeros(1, requires_grad=True)]}]), torch.optim.SGD)


def test_cosine_over_steps_reaches_zero(pairs):
    res = train(_model("baseline"), pairs, TrainConfig(**{**TINY, "epochs": 4}))
    lrs = [h["lr"] for h in res.history]  # the lr of each epoch's last step: 2, 4, 6, 8 of 8
    assert lrs == pytest.approx([TrainConfig.lr * cosine_factor(f / 8) for f in (1, 3, 5, 7)])


def test_time_budget_trains_until_the_budget(monkeypatch, pairs):
    clock = itertools.count(0.0, 0.25)  # every reading of the clock advances it by 0.25 s
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    calls = []
    res = train(_model("baseline"), pairs, TrainConfig(**TINY, time_budget_s=5.0), progress=lambda *a: calls.append(a))
    assert res.stopped_reason == "time_budget" and res.epochs_done > TINY["epochs"]
    lrs = [h["lr"] for h in res.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1 * lrs[0]  # down the cosine to ~0
    assert calls[-1][1] == res.iterations and calls[-1][2] >= res.iterations  # estimated total
    # the step schedule keeps the old meaning: epochs, capped by the budget
    clock = itertools.count(0.0, 0.25)
    res = train(_model("baseline"), pairs, TrainConfig.legacy(**TINY, time_budget_s=5.0))
    assert res.stopped_reason == "done" and res.epochs_done == 1


# ---------------------------------------------------------------- frozen stages
def test_frozen_stages_get_no_gradient(pairs):
    model = _model()
    stages = model.backbone.stages()
    assert len(stages) == NUM_STAGES
    frozen = freeze_stages(model.backbone, 2)
    assert frozen and all(not p.requires_grad for s in stages[:2] for p in s.parameters())
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    assert all(p.grad is None for s in stages[:2] for p in s.parameters())
    assert all(p.grad is not None for p in stages[2].parameters())
    with pytest.raises(ValueError, match="freeze_stages must be an int in 0..5"):
        freeze_stages(model.backbone, 6)

    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, pairs, TrainConfig(**TINY, freeze_stages=2, freeze_bn=False))
    after = model.state_dict()
    names = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    first = {f"backbone.low.{i}." for i in (0, 1)} | {f"backbone.low.{i}." for i in (2, 3)}
    for n in names:
        if any(n.startswith(p) for p in first) and "num_batches_tracked" not in n:
            torch.testing.assert_close(after[n], before[n], msg=n)  # weights and BN statistics kept
    assert not torch.equal(after["backbone.high.4.conv.0.0.weight"], before["backbone.high.4.conv.0.0.weight"])
    assert all(p.requires_grad for p in model.parameters())  # given back trainable
    set_train_mode(model, freeze_bn=False, frozen_stages=2)
    assert not model.backbone.low[0].training and not model.backbone.low[3].training and model.backbone.high[0].training


def test_freeze_stages_default_follows_pretraining(pairs):
    assert trainer_module._freezing(TrainConfig(), _model(), GFNConfig(pretrained=True)) == (True, 4)
    assert trainer_module._freezing(TrainConfig(), _model(), GFNConfig(pretrained=False)) == (False, 0)
    assert trainer_module._freezing(TrainConfig(freeze_stages=1), _model(), GFNConfig(pretrained=False))[1] == 1
    with pytest.raises(ValueError, match="freeze_stages"):
        TrainConfig(freeze_stages=6)


# ---------------------------------------------------------------- image cache
def test_image_cache_gives_the_same_batches(tmp_path: Path, pairs):
    ex = make_example(tmp_path / "ex", n=4, size=48)
    files = [(s.image_path, s.mask_path) for s in ex]
    kw = dict(num_classes=4, crop_size=32, scale_range=(0.7, 1.3), max_side=40, seed=3)
    lazy, cached = PairDataset(files, **kw), PairDataset(files, **kw)
    assert cached.preload() > 0
    for epoch in range(3):
        lazy.epoch = cached.epoch = epoch
        for i in range(len(files)):
            for a, b in zip(lazy[i], cached[i]):
                torch.testing.assert_close(a, b)
    repeated = PairDataset(files * 3, **kw)
    assert repeated.preload() == cached.preload()  # a repeated pair is held once
    a, b = _model(), _model()
    train(a, pairs, TrainConfig(**TINY, cache_images=True, seed=2))
    train(b, pairs, TrainConfig(**TINY, cache_images=False, seed=2))
    _same_weights(a, b)


# ---------------------------------------------------------------- channels-last
def test_channels_last_keeps_outputs(pairs):
    model = _model().eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        ref = model(x)
        model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    a, b = _model(), _model()
    ra = train(a, pairs, TrainConfig(**TINY, channels_last=True))
    rb = train(b, pairs, TrainConfig(**TINY, channels_last=False))
    assert ra.losses == pytest.approx(rb.losses, rel=1e-2)  # AdamW's first steps amplify rounding
    w = a.backbone.low[0][0].weight
    assert w.is_contiguous()  # given back in the default memory format


# ---------------------------------------------------------------- recipes
def test_new_recipe_learns(pairs):
    model = _model()
    before = evaluate_model(model, pairs)["miou"]
    # a random backbone (no ImageNet weights offline): full backbone rate, BN statistics kept at their init
    res = train(
        model,
        pairs,
        TrainConfig(
            epochs=20,
            batch_size=4,
            crop_size=64,
            lr=1e-2,
            backbone_lr_mult=1.0,
            freeze_bn=True,
            scale_range=(0.9, 1.1),
            max_side=None,
        ),
    )
    after = evaluate_model(model, pairs)["miou"]
    assert np.mean(res.losses[-3:]) < 0.5 * res.losses[0], res.losses
    assert after > 0.6 and after > before + 0.15, (before, after)


def test_legacy_recipe_still_reachable(pairs):
    old = TrainConfig.legacy(epochs=3)
    assert (old.optimizer, old.schedule, old.lr, old.crop_size, old.freeze_stages, old.channels_last) == (
        "sgd",
        "step",
        0.007,
        321,
        0,
        False,
    )
    saved_before = {
        k: v
        for k, v in old.to_dict().items()
        if k in TrainConfig.__dataclass_fields__
        and k not in ("optimizer", "schedule", "warmup_fraction", "freeze_stages", "channels_last", "cache_images")
    }
    assert TrainConfig.from_saved(saved_before) == old  # an old checkpoint's dict: trained the legacy way
    assert TrainConfig.from_saved(TrainConfig(seed=4).to_dict()) == TrainConfig(seed=4)
    assert set(LEGACY_RECIPE) <= set(TrainConfig.__dataclass_fields__)
    res = train(_model(), pairs, TrainConfig.legacy(**{**TINY, "epochs": 2, "step_epochs": 1}))
    assert [h["lr"] for h in res.history] == pytest.approx([0.007, 0.0007])


def test_train_command_recipe_options():
    from core.cli.train_cmd import train_config

    def args(**kw):
        base = dict(
            epochs=None,
            batch_size=None,
            crop_size=None,
            lr=None,
            max_side=None,
            time_budget=None,
            seed=0,
            threads=None,
            legacy_recipe=False,
            set=[],
        )
        return argparse.Namespace(**{**base, **kw})

    assert train_config(args()) == TrainConfig()
    assert train_config(args(time_budget=60.0)).until_budget
    assert train_config(args(legacy_recipe=True)) == TrainConfig.legacy()
    assert train_config(args(legacy_recipe=True, lr=1e-3)).lr == 1e-3  # the command line wins
    assert train_config(args(set=["freeze_stages=1", "optimizer=sgd"])).freeze_stages == 1
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_config(args(set=["optimizer=adam"]))
