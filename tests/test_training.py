"""Trainer, augmentation, streaming prediction and the guided-filter grid search (CPU, tiny inputs)."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data.example import generate_arrays, make_example
from core.inference import READ_AHEAD
from core.network import GFNConfig, build_model, load_checkpoint
from core.training import TrainConfig, evaluate_model, grid_search_gf, predict, train
from core.training.data import PairDataset, augment
from core.training.trainer import _param_groups, segmentation_loss, set_train_mode

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """8 example images of 64 px with binary (object / background) masks."""
    return [(im, (m > 0).astype(np.uint8)) for _, _, im, m, _ in generate_arrays(8, 64, 0)]


def _model(name: str = "all", **kw):
    torch.manual_seed(0)
    return build_model(GFNConfig.for_ablation(name, pretrained=False, **kw))


TINY = dict(epochs=1, batch_size=4, crop_size=32, max_side=None)


# ---------------------------------------------------------------- config
def test_train_config_validation():
    new, old = TrainConfig(), TrainConfig.legacy()
    assert (new.optimizer, new.lr, new.schedule, new.backbone_lr_mult, new.batch_size, new.max_side) == (
        "adamw",
        3e-3,
        "cosine",
        0.1,
        8,
        320,
    )
    assert (old.optimizer, old.lr, old.schedule, old.step_epochs, old.batch_size) == ("sgd", 0.007, "step", 5, 8)
    assert TrainConfig.from_dict(TrainConfig(seed=3).to_dict()) == TrainConfig(seed=3)
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) \['lr_rate'\]"):
        TrainConfig.from_dict({"lr_rate": 0.1})
    for kw, match in [
        (dict(epochs=0), "epochs"),
        (dict(crop_size=8), "crop_size"),
        (dict(scale_range=(1.2, 0.5)), "scale_range"),
        (dict(time_budget_s=-1), "time_budget_s"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kw)


# ---------------------------------------------------------------- data
def test_augment_identical_on_image_and_mask():
    rng = np.random.default_rng(0)
    mask = np.zeros((50, 40), np.uint8)
    mask[10:30, 5:25] = 1
    mask[35:, 30:] = 2
    image = np.repeat((mask * 100)[..., None], 3, axis=2)
    for seed in range(10):
        im, m, valid = augment(image, mask, np.random.default_rng(seed), 48, (1.0, 1.0))
        assert im.shape == (48, 48, 3) and m.shape == (48, 48)
        assert (m[~valid] == 255).all()
        np.testing.assert_array_equal(im[..., 0][valid], m[valid] * 100)
        im, m, valid = augment(image, mask, rng, 32, (0.6, 1.4))
        inner = valid.copy()  # away from label edges, where the bilinear image blurs
        for dy, dx in [(-1, 0), (1, 0), (0, -1), (0, 1)]:
            inner &= m == np.roll(m, (dy, dx), axis=(0, 1))
        diff = np.abs(im[..., 0][inner].astype(int) - m[inner].astype(int) * 100)
        assert (diff <= 10).mean() > 0.99  # nearest vs bilinear sampling may differ by a pixel


def test_pair_dataset_deterministic_and_checks(tmp_path: Path, pairs):
    ds = PairDataset(pairs, num_classes=2, crop_size=32, scale_range=(0.75, 1.25), max_side=48, seed=1)
    x0, y0 = ds[3]
    assert x0.shape == (3, 32, 32) and x0.dtype == torch.float32 and y0.dtype == torch.int64
    torch.testing.assert_close(ds[3][0], x0)
    ds.epoch = 1
    assert not torch.equal(ds[3][0], x0)
    ex = make_example(tmp_path / "ex", n=3, size=32)
    by_path = PairDataset(
        [(s.image_path, s.mask_path) for s in ex],
        num_classes=4,
        crop_size=32,
        scale_range=(1, 1),
        max_side=None,
        seed=0,
    )
    assert by_path[0][1].max() <= 3
    with pytest.raises(ValueError, match=r"holds class indices \[2\] but the model has 2 classes"):
        PairDataset(
            [(s.image_path, s.mask_path) for s in ex],
            num_classes=2,
            crop_size=32,
            scale_range=(1, 1),
            max_side=None,
            seed=0,
        )[1]
    with pytest.raises(ValueError, match="is 64x64 but its mask array #0 is 10x10"):
        PairDataset(
            [(pairs[0][0], np.zeros((10, 10), np.uint8))],
            num_classes=2,
            crop_size=32,
            scale_range=(1, 1),
            max_side=None,
            seed=0,
        )[0]
    with pytest.raises(ValueError, match="no training pairs"):
        PairDataset([], num_classes=2, crop_size=32, scale_range=(1, 1), max_side=None, seed=0)


def test_loss_ignores_255():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 4, 4), 255, dtype=torch.long)
    loss = segmentation_loss(logits, target)
    assert loss.item() == 0.0
    loss.backward()
    target[0, 0, 0] = 1
    ref = torch.nn.functional.cross_entropy(logits[:1, :, :1, :1], target[:1, :1, :1])
    torch.testing.assert_close(segmentation_loss(logits, target), ref)


# ---------------------------------------------------------------- trainer
def test_overfit_loss_drops_and_miou_rises(pairs):
    model = _model()
    before = evaluate_model(model, pairs)["miou"]
    res = train(
        model,
        pairs,
        TrainConfig.legacy(
            epochs=20, batch_size=4, crop_size=64, lr=0.1, step_epochs=100, scale_range=(0.9, 1.1), max_side=None
        ),
    )
    after = evaluate_model(model, pairs)["miou"]
    assert res.iterations == 40 and res.stopped_reason == "done"
    assert np.mean(res.losses[-3:]) < 0.5 * res.losses[0], res.losses
    assert after > 0.6 and after > before + 0.15, (before, after)


def test_deterministic_with_seed(pairs):
    a, b = _model(), _model()
    cfg = TrainConfig(**TINY, seed=5)
    train(a, pairs[:4], cfg)
    train(b, pairs[:4], cfg)
    for (n, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=n)


def test_checkpoint_progress_and_time_budget(tmp_path: Path, pairs):
    model = _model("gf")
    calls = []
    res = train(
        model,
        pairs,
        TrainConfig(**{**TINY, "epochs": 2}),
        progress=lambda *a: calls.append(a),
        checkpoint_path=tmp_path / "m.pt",
    )
    assert calls == [("train", i, 4) for i in range(1, 5)]
    assert res.checkpoint == tmp_path / "m.pt" and res.epochs_done == 2 and len(res.history) == 2
    ck = load_checkpoint(res.checkpoint)
    assert ck.training is not None and ck.training.origin == "train" and ck.training.epochs == 2
    assert ck.training.loss == pytest.approx(res.history[-1]["loss"], abs=1e-5) and ck.extra == {}
    assert ck.classmap.names == ("background", "class_1")
    res = train(_model("gf"), pairs, TrainConfig(**{**TINY, "epochs": 50, "time_budget_s": 0.01}))
    assert res.stopped_reason == "time_budget" and res.iterations == 1


def test_ctrl_c_keeps_last_good_checkpoint(tmp_path: Path, pairs):
    model = _model("baseline")
    path = tmp_path / "m.pt"

    def progress(stage, done, total):
        if done == 3:  # during the second epoch
            raise KeyboardInterrupt

    res = train(model, pairs, TrainConfig(**{**TINY, "epochs": 3}), progress=progress, checkpoint_path=path)
    assert res.stopped_reason == "interrupted" and res.epochs_done == 1
    ck = load_checkpoint(path)
    assert ck.training is not None and ck.training.epochs == 1
    for (n, pa), pb in zip(model.state_dict().items(), ck.model.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=n)


def test_frozen_bn_and_backbone_lr_mult(pairs):
    model = _model()
    set_train_mode(model, freeze_bn=True)
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and model.aspp.training
    before = bns[0].running_mean.clone()
    train(model, pairs[:4], TrainConfig(**TINY, freeze_bn=True))
    torch.testing.assert_close(bns[0].running_mean, before)
    groups = _param_groups(model, 0.01, 0.1)
    assert [g["lr"] for g in groups] == [pytest.approx(0.001), 0.01]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


# ---------------------------------------------------------------- prediction
def test_predict_streams_and_keeps_sizes(pairs):
    model = _model().eval()
    rng = np.random.default_rng(0)
    images = [pairs[0][0], rng.integers(0, 255, (40, 70, 3), dtype=np.uint8), pairs[1][0], pairs[2][0]]
    consumed = []

    def gen():
        for i, im in enumerate(images):
            consumed.append(i)
            yield im

    it = predict(model, gen(), batch_size=2)
    assert isinstance(it, types.GeneratorType) and consumed == []
    first = next(it)
    assert len(consumed) <= 2 + 1 + READ_AHEAD + 1  # streamed: the first batch, the next image, the read-ahead
    preds = [first, *it]
    assert [p.mask.shape for p in preds] == [im.shape[:2] for im in images]
    for p in preds:
        assert p.mask.dtype == np.uint8 and p.probs.dtype == np.float32 and p.probs.shape[0] == 2
        np.testing.assert_allclose(p.probs.sum(0), 1.0, atol=1e-5)
        np.testing.assert_array_equal(p.mask, p.probs.argmax(0))
    alone = [next(predict(model, [im])) for im in images]  # batching does not change predictions
    for a, b in zip(alone, preds):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)


def test_predict_tta_max_side_and_errors(pairs, tmp_path: Path):
    model = _model().eval()
    big = np.repeat(np.repeat(pairs[0][0], 2, axis=0), 3, axis=1)  # 128 x 192
    p = next(predict(model, [big], tta_flip=True, max_side=64))
    assert p.mask.shape == (128, 192) and p.probs.shape == (2, 128, 192)
    sym = np.concatenate([pairs[0][0], pairs[0][0][:, ::-1]], axis=1)  # mirror-symmetric image
    q = next(predict(model, [sym], tta_flip=True))
    np.testing.assert_allclose(q.probs, q.probs[:, :, ::-1], atol=1e-5)
    ex = make_example(tmp_path / "ex", n=2, size=32)
    assert [p.mask.shape for p in predict(model, [s.image_path for s in ex])] == [(32, 32), (32, 32)]
    with pytest.raises(ValueError, match="batch_size"):
        next(predict(model, [big], batch_size=0))
    with pytest.raises(ValueError, match=r"image array #0 must be \(H, W, 3\) uint8"):
        next(predict(model, [np.zeros((8, 8, 4), np.uint8)]))
    with pytest.raises(ValueError, match="file not found"):
        next(predict(model, [tmp_path / "missing.png"]))


def test_grid_search_gf(pairs):
    model = _model()
    train(model, pairs[:4], TrainConfig(**TINY))
    r, eps, table = grid_search_gf(model, pairs[4:], radii=[1, 2], epss=[1e-3, 1e-1])
    assert [(row["r"], row["eps"]) for row in table] == [(1, 1e-3), (1, 1e-1), (2, 1e-3), (2, 1e-1)]
    best = max(row["miou"] for row in table)
    assert (r, eps) in [(row["r"], row["eps"]) for row in table if row["miou"] == best]
    assert (model.gf.r, model.gf.eps) == (r, eps)
    with pytest.raises(ValueError, match="no guided filter"):
        grid_search_gf(_model("baseline"), pairs[4:], [1], [0.1])


def test_min_steps_stretches_a_small_set(pairs):
    # 4 pairs at batch 4 = 1 step per epoch; 1 epoch asked, but at least 5 steps.
    result = train(_model(), pairs[:4], TrainConfig(**TINY, min_steps=5, step_epochs=1))
    assert result.iterations == 5
    assert result.epochs_done == 5
    # A set already large enough is not stretched.
    result = train(_model(), pairs[:4], TrainConfig(**TINY, min_steps=1))
    assert result.iterations == 1
    with pytest.raises(ValueError, match="min_steps"):
        TrainConfig(min_steps=-1)
