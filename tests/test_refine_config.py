"""RunConfig's typed sections: typos and bad values refused at construction with the dotted name,
old flat ``config.json`` files load (and resume), dotted and flat overrides, one working size."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from core.config import parse_key_values
from core.initial.config import InitConfig
from core.network.config import GFNConfig
from core.postprocess import CRFParams, PostprocessConfig
from core.refine.config import InitSection, NetworkSection, PostSection, RunConfig, TrainSection, working_sizes
from core.training.config import LEGACY_RECIPE, TrainConfig

DATA = Path(__file__).parent / "data"


def _flat(name: str) -> dict:
    """A ``config.json`` as the flat RunConfig (before sections) wrote it."""
    return json.loads((DATA / f"config_flat_{name}.json").read_text())


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"train_options": {"epoch": 3}}, r"\['train.epoch'\]; known train settings: \['epochs'"),
        ({"train": {"epoch": 3}}, r"\['train.epoch'\]"),
        ({"train.epoch": 3}, r"\['train.epoch'\]"),
        ({"epoch": 3}, r"unknown RunConfig setting\(s\) \['epoch'\].*did you mean 'epochs'"),
        ({"init.rout": "grabcut"}, r"\['init.rout'\]; known init settings"),
        ({"init_options": {"coarce": "centre"}}, r"init.options: unknown InitConfig field\(s\) \['coarce'\]"),
        ({"init.options.train": {"epoch": 4}}, r"init.options.train: unknown TrainConfig field\(s\) \['epoch'\]"),
        ({"network_options": {"gf_radus": 4}}, r"\['network.gf_radus'\]; known network settings"),
        ({"post.fues": 0.1}, r"\['post.fues'\]; known post settings"),
        ({"post.params.crf.iter": 3}, r"post.params: unknown CRFParams field\(s\) \['iter'\]"),
        ({"filters.area": 0.1}, r"\['filters.area'\]; known filters settings"),
        ({"stop.patients": 2}, r"\['stop.patients'\]; known stop settings"),
    ],
)
def test_a_typo_in_any_section_is_refused_at_construction(changes, match):
    with pytest.raises(ValueError, match=match):
        RunConfig.from_dict(changes)
    with pytest.raises(ValueError, match=match):
        RunConfig().replace(changes)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"train.epochs": 0}, r"train.epochs must be an integer >= 1, got 0"),
        ({"train.scale_range": [1.2, 0.8]}, r"train: TrainConfig.scale_range"),
        ({"init": "magic"}, r"init.route 'magic' is unknown"),
        ({"init.options.box_mode": "square"}, r"init.options: InitConfig.box_mode"),
        ({"init.options.seed": 3}, r"init.options.seed is the run's: set seed"),
        ({"network.gf_radius": 0}, r"network: gf_radius must be an int >= 1"),
        ({"network.warm_start": "yes"}, r"network.warm_start must be true or false"),
        ({"post.fuse": 1.5}, r"post.fuse must lie in \[0, 1\)"),
        ({"post.chain": "crf+blur"}, r"post.chain: postprocess 'crf\+blur' is unknown"),
        ({"post.params.mix": 2}, r"post.params: PostprocessConfig.mix must lie in \[0, 1\]"),
        ({"stop.patience": 0}, r"stop.patience must be an integer >= 1"),
        ({"max_side": 8}, r"max_side must be None .* or an integer >= 16, got 8"),
        ({"train_options": {"max_side": 512}}, r"train_options\['max_side'\] is no longer an option: .*set max_side"),
        ({"network_options": {"num_classes": 3}}, r"comes from the dataset"),
    ],
)
def test_bad_values_are_refused_at_construction_naming_the_setting(changes, match):
    with pytest.raises(ValueError, match=match):
        RunConfig.from_dict(changes)


def test_sections_must_be_typed():
    with pytest.raises(TypeError, match="RunConfig.init must be of type InitSection"):
        RunConfig(init="grabcut")
    with pytest.raises(TypeError):
        RunConfig(2)  # keyword-only


def test_old_flat_config_json_loads_to_an_equal_config():
    """A flat config.json keeps the rounds' recipe it was trained with (paper 001's SGD), not today's."""
    from core.refine.config_keys import LEGACY_ROUND_RECIPE

    before = {**LEGACY_ROUND_RECIPE, "network.gf_mode": "stride4"}  # and the GFN of its time
    assert RunConfig.from_dict(_flat("default")) == RunConfig().replace(before)
    assert RunConfig.from_dict(_flat("default")).train.optimizer == "sgd" and RunConfig().train.optimizer == "adamw"
    old = RunConfig.from_dict(_flat("custom"))
    assert old == RunConfig(
        rounds=2,
        max_side=None,
        init=InitSection(
            route="grabcut",
            options=InitConfig(coarse="centre", work_size=48, crf=CRFParams(iters=3), train={"epochs": 4}),
        ),
        network=NetworkSection(pretrained=False, warm_start=True, aspp_channels=16, low_channels=8, gf_mode="stride4"),
        train=TrainSection(epochs=1, batch_size=4, min_steps=5, scale_range=(1.0, 1.0), lr=0.01),
        post=PostSection(chain="crf", fuse=0.0, consistency="background"),
    ).replace({"filters.area_min": 0.05, "stop.select_by": "gt", "stop.patience": 2, **LEGACY_ROUND_RECIPE})


def test_an_old_config_gives_the_objects_the_flat_config_gave():
    """Values the flat RunConfig derived from ``config_flat_custom.json`` (recorded before sections)."""
    from core.refine.initial_round import init_config
    from core.refine.refine_round import gfn_config, train_config

    old = RunConfig.from_dict(_flat("custom"))
    assert train_config(old, 2) == TrainConfig.legacy(
        epochs=1,
        batch_size=4,
        lr=0.01,
        step_epochs=4,
        crop_size=256,
        seed=2,
        max_side=None,
        num_threads=2,
        min_steps=5,
        scale_range=(1.0, 1.0),
    )
    assert gfn_config(old, 3) == GFNConfig(
        pretrained=False, aspp_channels=16, low_channels=8, num_classes=3, gf_mode="stride4"
    )
    assert init_config(old) == InitConfig(  # workers: the run's post.workers (None = one per core)
        coarse="centre", work_size=48, crf=CRFParams(iters=3), train={"epochs": 4}, seed=0, num_threads=2, workers=None
    )
    assert train_config(RunConfig.from_dict(_flat("default")), 1) == TrainConfig.legacy(
        epochs=5, lr=0.01, step_epochs=4, crop_size=256, seed=1, max_side=256, num_threads=2, min_steps=60
    )
    assert train_config(RunConfig(), 1) == TrainConfig(
        epochs=5, step_epochs=4, crop_size=256, seed=1, max_side=256, num_threads=2, min_steps=60
    )  # today's rounds: TrainConfig's recipe, with the rounds' own floor of steps (issue 10)


def test_nested_round_trip_and_dotted_differences():
    c = RunConfig.from_dict(_flat("custom"))
    saved = json.loads(json.dumps(c.to_dict()))
    assert set(saved) == {
        "rounds",
        "seed",
        "num_threads",
        "source_images",
        "max_side",
        "init",
        "network",
        "train",
        "post",
        "filters",
        "stop",
    }
    assert saved["train"]["epochs"] == 1 and saved["post"]["params"]["crf"]["iters"] == 5
    assert "seed" not in saved["init"]["options"], "the routes' seed is the run's"
    again = RunConfig.from_dict(saved)
    assert again == c and again.differences(c) == []
    other = c.replace({"post.params.crf.iters": 2, "init.options.coarse": "auto"}, epochs=3)
    assert other.differences(c) == ["init.options.coarse", "train.epochs", "post.params.crf.iters"]
    assert c.settings()["post.chain"] == "crf" and "init.options.gfn" in c.settings()


def test_overrides_take_dotted_and_flat_names():
    d = RunConfig()
    assert d.replace(epochs=3) == d.replace({"train.epochs": 3}) == RunConfig(train=TrainSection(epochs=3))
    assert d.replace(postprocess="none").post.chain == "none" and d.replace(init="cam").init.route == "cam"
    sets = parse_key_values(["train.lr=0.005", "post.params.crf.iters=2", "select_by=gt", "init.options.coarse=centre"])
    c = d.replace(sets)
    assert (c.train.lr, c.post.params.crf.iters, c.stop.select_by, c.init.options.coarse) == (0.005, 2, "gt", "centre")
    # an old option dict replaces the whole of what it held, as it did; its keys win over the flat names
    tiny = d.replace(init_options={"coarse": "centre", "work_size": 48})
    assert tiny.replace(init_options={"work_size": 64}).init.options == InitConfig(work_size=64)
    assert RunConfig.from_dict({"epochs": 2, "train_options": {"epochs": 7}}).train.epochs == 7
    # a dotted name refines an old option dict given with it (bench --set over a setting's base)
    assert RunConfig.from_dict(
        {"init_options": {"coarse": "centre"}, "init.options.work_size": 48}
    ).init.options == InitConfig(coarse="centre", work_size=48)


def test_run_command_options_and_set_reach_the_config(tmp_path):
    import argparse

    from core.cli.run_cmd import add_parser, config_from_args

    saved = tmp_path / "config.json"
    saved.write_text(json.dumps(_flat("custom")))
    parser = add_parser(argparse.ArgumentParser().add_subparsers())
    args = parser.parse_args(
        [
            "--images",
            "i",
            "--class",
            "horse",
            "--out",
            "r",
            "--config",
            str(saved),
            "--epochs",
            "3",
            "--init-option",
            "crf_iters=4",
            "--set",
            "post.params.crf.iters=2",
            "--set",
            "train.lr=0.005",
        ]
    )
    c = config_from_args(args)
    assert c.differences(RunConfig.from_dict(_flat("custom"))) == [
        "init.options.crf.iters",
        "train.epochs",
        "train.lr",
        "post.params.crf.iters",
    ]
    assert (c.init.options.crf.iters, c.train.epochs, c.train.lr, c.post.params.crf.iters) == (4, 3, 0.005, 2)


def test_resume_of_a_run_saved_with_the_flat_config(tmp_path):
    from core.data.example import make_example
    from core.refine import rundir

    ds = make_example(tmp_path / "ex", n=2, size=32, classes=("ring",))
    run = tmp_path / "run"
    old = RunConfig.from_dict(_flat("custom"))
    rundir.prepare(run, old, ds, resume=False, overwrite=False)
    (run / rundir.CONFIG).write_text(json.dumps(_flat("custom")))  # as the flat version wrote it
    with pytest.raises(ValueError, match=r"differing keys: \['train.epochs'\] \(train.epochs: saved 1 vs now 2\)"):
        rundir.prepare(run, old.replace(epochs=2), ds, resume=True, overwrite=False)
    assert rundir.prepare(run, old.replace(rounds=5), ds, resume=True, overwrite=False) == 0
    assert RunConfig.from_dict(json.loads((run / rundir.CONFIG).read_text())) == old.replace(rounds=5)
    assert "train" in json.loads((run / rundir.CONFIG).read_text()), "rewritten in the nested form"


def test_one_working_size():
    d = working_sizes(RunConfig())
    assert (d.train, d.crop, d.predict, d.init, d.post) == (256, 256, 256, 320, 400)
    full = working_sizes(RunConfig(max_side=None, train=TrainSection(crop_size=96)))
    assert (full.train, full.crop, full.predict) == (None, 96, None)
    assert working_sizes(RunConfig(max_side=64)).crop == 64


def test_sections_cover_the_configs_they_feed_with_their_defaults():
    def fields(cls):
        return {f.name: f for f in dataclasses.fields(cls)}

    net, gfn = fields(NetworkSection), fields(GFNConfig)
    assert set(net) - {"warm_start"} == set(gfn) - {"num_classes"}
    assert all(net[k].default == gfn[k].default for k in set(net) - {"warm_start"})
    train, tc = fields(TrainSection), fields(TrainConfig)
    rounds_only = set(TrainSection.ROUNDS_ONLY)
    assert set(train) - rounds_only == set(tc) - {"seed", "max_side", "num_threads"}
    own = {"epochs", "batch_size", "step_epochs", "crop_size", "min_steps"}  # the rounds' own sizes
    assert all(train[k].default == tc[k].default for k in set(train) - own - rounds_only)
    # a flat config.json keeps the SGD recipe its rounds were trained with
    from core.refine.config_keys import LEGACY_ROUND_RECIPE

    assert {k.split(".")[1]: v for k, v in LEGACY_ROUND_RECIPE.items()} == {
        k: v for k, v in {**LEGACY_RECIPE, "lr": 0.01}.items() if k in train and k not in own
    }


def test_one_crf_parameter_set_and_old_crf_keys():
    assert InitConfig().crf == PostprocessConfig().crf == CRFParams()
    assert InitConfig.from_dict({"crf_iters": 3, "crf_bi_sxy": 30.0}).crf == CRFParams(iters=3, bi_sxy=30.0)
    assert PostprocessConfig.from_dict({"crf": {"iters": 2}, "crf_iters": 4}).crf.iters == 4
    with pytest.raises(ValueError, match="crf.iters must be an int >= 0"):
        CRFParams(iters=-1)


def test_the_chain_runs_with_the_runs_post_params(monkeypatch):
    import numpy as np

    import core.postprocess as pp
    from core.refine.postchain import postprocess

    seen = []

    def spy(image, probs, method, *, config=None):
        seen.append((method, config))
        return probs.argmax(0).astype(np.uint8), probs

    monkeypatch.setattr(pp, "refine_mask", spy)
    params = PostprocessConfig(crf=CRFParams(iters=2))
    probs = np.full((2, 8, 8), 0.5, np.float32)
    probs[1, 2:6, 2:6] = 0.9
    probs[0] = 1 - probs[1]
    postprocess(np.zeros((8, 8, 3), np.uint8), probs, "crf+grabcut", params=params)
    assert seen == [("crf", params), ("grabcut", params)]
