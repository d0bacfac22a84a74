"""One way to train a round's model (engine rounds and the Label Studio backend), typed checkpoint
settings (old checkpoints still load), and a transfer source trained once (``--source-model``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.classmap import ClassMap
from core.data.example import make_example
from core.initial.config import InitConfig
from core.network.checkpoint import FORMAT, InferenceSettings, TrainingRecord, load_checkpoint, save_checkpoint
from core.network.config import GFNConfig
from core.network.factory import build_model
from core.refine import round_model
from core.refine.apply import Labeller
from core.refine.config import InitSection, NetworkSection, RunConfig, StopSection, TrainSection
from core.refine.runner import run_autolabel

TINY = RunConfig(
    init=InitSection(route="grabcut", options=InitConfig(coarse="centre", work_size=48)),
    rounds=1,
    train=TrainSection(epochs=1, batch_size=4, crop_size=48, min_steps=0),
    max_side=None,
    num_threads=2,
    network=NetworkSection(pretrained=False, aspp_channels=16, low_channels=8),
    stop=StopSection(collapse_guard=False),
)
SMALL_GFN = {"pretrained": False, "aspp_channels": 16, "low_channels": 8}
SMALL_TRAIN = {"epochs": 1, "crop_size": 48, "max_side": None, "batch_size": 4}


def _pairs(example):
    return [(s.image_path, s.require_mask()) for s in example.with_gt()]


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return make_example(tmp_path_factory.mktemp("ex"), n=4, size=48, classes=("ring",))


def test_the_engine_round_and_the_backend_write_the_same_typed_checkpoint(example, tmp_path):
    """The backend's ``Engine.train`` is the engine's ``train_round_model``: same recipe, same typed
    settings (the backend's checkpoints used to lack ``consistency``), its own origin and counts."""
    from labelstudio_backend.engine import Engine
    from labelstudio_backend.settings import BackendSettings

    engine = Engine(BackendSettings())
    config = engine.run_config().replace({k: v for k, v in TINY.settings().items() if k.startswith("network.")})
    config = config.replace(train=TINY.train, max_side=None, num_threads=2)
    engine.run_config = lambda: config  # type: ignore[method-assign]
    pairs = _pairs(example)
    out = engine.train(pairs, example.classmap, out_path=tmp_path / "ls.pt", warm_start=None, n_human=1, round_index=1)
    ls = load_checkpoint(out.checkpoint)
    assert ls.training is not None and ls.training.origin == "labelstudio"
    assert (ls.training.n_human, ls.training.n_pseudo) == (1, len(pairs) - 1) == (out.n_human, out.n_pseudo)
    assert ls.inference == round_model.inference_settings(config)
    assert ls.training.train_config == round_model.train_config(config, 1, pairs).to_dict()

    own = round_model.train_round_model(
        pairs, example.classmap, config, round_index=1, out_path=tmp_path / "run.pt", origin="run"
    )
    ck = load_checkpoint(own.checkpoint)
    assert ck.training is not None and ck.training.origin == "run" and ck.inference == ls.inference
    assert ck.training.train_config == ls.training.train_config
    # same seed, same recipe, same data: the same weights whichever face trained them
    for (name, a), b in zip(ck.model.state_dict().items(), ls.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_warm_start_only_from_a_matching_checkpoint(example, tmp_path, caplog):
    first = round_model.train_round_model(
        _pairs(example), example.classmap, TINY, round_index=1, out_path=tmp_path / "a.pt"
    )
    other = ClassMap(("background", "ring", "star"))
    model = build_model(GFNConfig.from_dict({**SMALL_GFN, "num_classes": 3}))
    with caplog.at_level("INFO"):
        assert not round_model._warm_start(model, first.checkpoint, other, "mobilenet_v2")
    assert "not warm-starting" in caplog.text
    model = build_model(GFNConfig.from_dict({**SMALL_GFN, "num_classes": 2}))
    assert round_model._warm_start(model, first.checkpoint, example.classmap, "mobilenet_v2")
    for a, b in zip(model.state_dict().values(), first.model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="nothing to train on"):
        round_model.train_round_model([], example.classmap, TINY, round_index=1, out_path=tmp_path / "b.pt")
    with pytest.raises(ValueError, match="origin must be one of"):
        round_model.train_round_model(
            _pairs(example), example.classmap, TINY, round_index=1, out_path=tmp_path / "c.pt", origin="x"
        )


def _format_1(path, extra):
    """A checkpoint as the code before format 2 wrote it (loose ``extra`` keys, no typed records)."""
    cfg = GFNConfig.from_dict({**SMALL_GFN, "num_classes": 2})
    model = build_model(cfg)
    torch.save(
        {
            "format": "gfn-autolabel/checkpoint-1",
            "config": cfg.to_dict(),
            "classmap": ["background", "ring"],
            "state_dict": model.state_dict(),
            "extra": extra,
        },
        path,
    )
    return model


def test_old_checkpoints_load_into_the_typed_records(tmp_path):
    run_extra = {
        "run_config": {"seed": 3},
        "round": 2,
        "engine": "0.1.0",
        "postprocess": "crf",
        "max_side": 200,
        "tta_flip": False,
        "consistency": "background",
        "post_params": {"crf_iters": 3},
    }
    model = _format_1(tmp_path / "run.pt", run_extra)
    ck = load_checkpoint(tmp_path / "run.pt")
    assert ck.inference == InferenceSettings(
        max_side=200, tta_flip=False, postprocess="crf", consistency="background", post_params={"crf_iters": 3}
    )
    assert ck.training == TrainingRecord(origin="run", round=2, engine="0.1.0", run_config={"seed": 3})
    for a, b in zip(ck.model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    lab = Labeller.from_checkpoint(tmp_path / "run.pt")
    assert (lab.postprocess, lab.max_side, lab.tta_flip, lab.consistency) == ("crf", 200, False, "background")

    ls_extra = {"round": 1, "source": "labelstudio", "n_human": 2, "n_pseudo": 5, "postprocess": "none"}
    _format_1(tmp_path / "ls.pt", ls_extra)
    ck = load_checkpoint(tmp_path / "ls.pt")
    assert ck.training is not None and (ck.training.origin, ck.training.n_human, ck.training.n_pseudo) == (
        "labelstudio",
        2,
        5,
    )
    assert ck.inference == InferenceSettings(postprocess="none")

    _format_1(tmp_path / "train.pt", {"epoch": 4, "steps": 40, "seconds": 9.5, "train_config": {"lr": 0.01}})
    ck = load_checkpoint(tmp_path / "train.pt")
    assert ck.inference is None
    assert ck.training == TrainingRecord(origin="train", train_config={"lr": 0.01}, epochs=4, steps=40, seconds=9.5)

    _format_1(tmp_path / "bad.pt", {"max_side": 200, "tta_flip": False, "postprocess": "x", "bogus": 1})
    ck = load_checkpoint(tmp_path / "bad.pt")  # unknown loose keys are notes, not settings
    assert ck.extra["bogus"] == 1


def test_typed_records_round_trip_and_refuse_unknown_fields(tmp_path):
    cfg = GFNConfig.from_dict({**SMALL_GFN, "num_classes": 2})
    model = build_model(cfg)
    inf = InferenceSettings(max_side=128, tta_flip=False, postprocess="crf", post_params={"crf_iters": 2})
    tr = TrainingRecord(origin="run", round=3, n_human=1, n_pseudo=2, epochs=5, steps=60, seconds=1.5)
    path = save_checkpoint(tmp_path / "m.pt", model, cfg, ClassMap(("background", "ring")), inference=inf, training=tr)
    ck = load_checkpoint(path)
    assert (ck.inference, ck.training) == (inf, tr)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT
    payload["inference"]["max_sid"] = 1
    torch.save(payload, tmp_path / "typo.pt")
    with pytest.raises(ValueError, match=r"typo\.pt: unreadable checkpoint settings .*max_sid"):
        load_checkpoint(tmp_path / "typo.pt")


def test_a_transfer_run_saves_its_source_network_and_another_run_reuses_it(tmp_path):
    """Round 0 of a transfer run writes ``source_model.pt``; ``init.source_model`` (``run --source-model``)
    labels a new set with it, without training a source network again."""
    target = make_example(tmp_path / "target", n=3, size=48, classes=("ring",))
    source = make_example(tmp_path / "source", n=4, size=48, classes=("ring",))
    config = TINY.replace(init="transfer", init_options={"gfn": SMALL_GFN, "train": SMALL_TRAIN}, rounds=0)
    first = run_autolabel(target, tmp_path / "first", config, source=source)
    saved = first.run_dir / "round_00" / "source_model.pt"
    ck = load_checkpoint(saved)
    assert ck.training is not None and ck.training.origin == "source"
    assert ck.classmap == ClassMap(("background", "object")), "a one-class target's source is binarised"

    reuse = config.replace({"init.source_model": str(saved)})
    trained = []
    import core.initial.gfn_bridge as bridge

    real = bridge.train_gfn

    def spy(*args, **kwargs):
        trained.append(1)
        return real(*args, **kwargs)

    bridge.train_gfn = spy
    try:
        second = run_autolabel(target, tmp_path / "second", reuse)
    finally:
        bridge.train_gfn = real
    assert trained == [], "no source network trained when one is given"
    info = second.round(0).provenance["init_info"]
    assert info["source"] == "model" and info["source_model"] == str(saved)
    first_probs = np.load(first.run_dir / "round_00" / "probs" / f"{target.stems[0]}.npz")
    second_probs = np.load(second.run_dir / "round_00" / "probs" / f"{target.stems[0]}.npz")
    for key in first_probs.files:  # the same network labels the same images identically
        assert np.array_equal(first_probs[key], second_probs[key])


def test_source_model_setting_is_checked(tmp_path):
    with pytest.raises(ValueError, match="init.source_model is used by the 'transfer' route"):
        TINY.replace({"init.source_model": "m.pt"})
    ok = TINY.replace({"init.source_model": "m.pt"}, init="transfer")
    assert RunConfig.from_dict(ok.to_dict()).init.source_model == "m.pt"


def _square(x: int) -> int:
    if x == 3:
        raise ValueError("three is refused")
    return x * x


def test_map_ordered_keeps_order_and_raises_the_workers_error():
    from core.refine.workers import map_ordered, resolve_workers

    assert list(map_ordered(_square, [0, 1, 2], workers=1)) == [(0, 0), (1, 1), (2, 4)]
    assert list(map_ordered(_square, [5, 0, 4, 2, 1], workers=2, window=2)) == [
        (5, 25),
        (0, 0),
        (4, 16),
        (2, 4),
        (1, 1),
    ]
    with pytest.raises(ValueError, match="three is refused"):
        list(map_ordered(_square, [1, 3, 2], workers=2))
    assert resolve_workers(8, 3) == 3 and resolve_workers(None, 100) >= 1
    with pytest.raises(ValueError, match="workers must be >= 1"):
        resolve_workers(0, 5)


def test_post_processing_workers_give_the_same_masks(tmp_path):
    """A round post-processed in 2 worker processes writes byte-identical masks to one done here."""
    example = make_example(tmp_path / "ex", n=5, size=48, classes=("ring",))
    config = TINY.replace(postprocess="crf+grabcut", rounds=1)
    one = run_autolabel(example, tmp_path / "one", config.replace({"post.workers": 1}))
    two = run_autolabel(example, tmp_path / "two", config.replace({"post.workers": 2}))
    masks = sorted(one.round(1).masks_dir.glob("*.png"))
    assert len(masks) == 5
    for m in masks:
        assert m.read_bytes() == (two.round(1).masks_dir / m.name).read_bytes(), m.name
    with pytest.raises(ValueError, match="post.workers must be an integer >= 1"):
        config.replace({"post.workers": 0})


def test_run_source_model_option(tmp_path, capsys):
    """``run --source-model``: a file that is not a checkpoint is one clear line (exit 2), nothing
    written; a non-transfer route is refused; a real checkpoint goes into the run's config."""
    from core.cli import main
    from core.cli.run_cmd import add_parser, config_from_args

    make_example(tmp_path / "ex", n=2, size=48, classes=("ring",))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    args = ["run", "--images", str(tmp_path / "ex" / "images"), "--class", "ring", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "r1"), "--source-model", str(tmp_path / "junk.pt")]) == 2
    err = capsys.readouterr().err
    assert "--source-model" in err and "junk.pt" in err and "Traceback" not in err
    assert not (tmp_path / "r1").exists()
    assert main([*args, "--out", str(tmp_path / "r2"), "--source-model", str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err

    cfg = GFNConfig.from_dict({**SMALL_GFN, "num_classes": 2})
    path = save_checkpoint(tmp_path / "m.pt", build_model(cfg), cfg, ClassMap(("background", "object")))
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    ns = parser.parse_args(["run", "--images", "i", "--class", "ring", "--out", "o", "--source-model", str(path)])
    assert config_from_args(ns).init.source_model == str(path.resolve())
    ns = parser.parse_args(
        ["run", "--images", "i", "--class", "ring", "--out", "o", "--init", "grabcut", "--source-model", str(path)]
    )
    with pytest.raises(ValueError, match="init.source_model is used by the 'transfer' route"):
        config_from_args(ns)
