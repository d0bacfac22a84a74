"""Round 0 in worker processes: the map routes' per-image work (GrabCut, dense CRF) and the network
routes' post-processing run in ``post.workers`` processes and give byte-identical masks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.classmap import ClassMap
from core.data.dataset import Dataset, Sample
from core.data.example import make_example
from core.initial import InitConfig, make_initial_masks, stream_initial_masks
from core.postprocess import CRFParams
from core.refine.config import InitSection, NetworkSection, RunConfig, StopSection, TrainSection
from core.refine.runner import run_autolabel

FAST = InitConfig(cam_size=96, cam_flip=False, num_threads=1, crf=CRFParams(iters=3), min_train_samples=0)

TINY = RunConfig(
    init=InitSection(route="auto", options=InitConfig(cam_size=96, cam_flip=False, work_size=48)),
    rounds=0,
    train=TrainSection(epochs=1, batch_size=4, crop_size=48, min_steps=0),
    max_side=None,
    num_threads=2,
    network=NetworkSection(pretrained=False, aspp_channels=16, low_channels=8),
    stop=StopSection(collapse_guard=False),
)


@pytest.fixture(scope="module")
def horses(tmp_path_factory) -> Dataset:
    """Six example images of one class ``horse`` (ImageNet CAM coarse maps, the default recipe)."""
    return relabelled(make_example(tmp_path_factory.mktemp("ex"), n=6, size=64, classes=("ellipse",)))


def relabelled(ds: Dataset) -> Dataset:
    """``ds`` with every image labelled ``horse`` (a class with ImageNet counterparts)."""
    samples = tuple(dataclasses.replace(s, labels=("horse",)) for s in ds)
    return Dataset(samples=samples, classmap=ClassMap.from_names(["horse"]))


def test_map_route_in_two_workers_gives_the_same_masks_and_progress(horses):
    """Route ``auto`` (fused recipe: GrabCut + dense CRF per image) with 2 worker processes returns the
    same masks, probabilities and scores as in this process, and progress advances image by image."""
    seen: list[tuple[str, int, int]] = []
    one = make_initial_masks(horses, route="auto", config=FAST)
    two = make_initial_masks(
        horses, route="auto", config=dataclasses.replace(FAST, workers=2), progress=lambda *a: seen.append(a)
    )
    assert one.info["recipe"] == "fused" and set(two.masks) == set(horses.stems)
    assert one.probs is not None and two.probs is not None
    for stem in horses.stems:
        assert two.masks[stem].dtype == np.uint8 and two.masks[stem].shape == one.masks[stem].shape
        assert np.array_equal(one.masks[stem], two.masks[stem]), stem
        assert np.array_equal(one.probs[stem], two.probs[stem]), stem
        assert one.scores[stem] == two.scores[stem]
    assert (one.masks[horses.stems[0]] != 0).any()  # a real mask, not an empty one compared with another
    steps = [done for stage, done, total in seen if stage == "initial masks (fused)"]
    assert steps == list(range(1, len(horses) + 1))


def test_the_stream_gives_the_same_masks_one_image_at_a_time(tmp_path, monkeypatch):
    """``stream_initial_masks`` (route auto) hands out the images in order with the values of
    ``make_initial_masks``, in 2 workers as in this process; in this process its first image comes out
    after reading one image of the 12, not the whole set."""
    ds = relabelled(make_example(tmp_path / "ex", n=12, size=48, classes=("ellipse",)))
    whole = make_initial_masks(ds, route="auto", config=FAST)
    assert whole.probs is not None
    loaded: list[str] = []
    real = Sample.load_image

    def counting(self):
        loaded.append(self.stem)
        return real(self)

    monkeypatch.setattr(Sample, "load_image", counting)
    stream = stream_initial_masks(ds, route="auto", config=FAST)
    assert stream.lazy and stream.route == "auto" and "seconds" not in stream.info
    first = next(stream.images)
    assert first[0] == ds.stems[0] and loaded == [ds.stems[0]]
    for workers, items in ((1, [first, *stream.images]), (2, None)):
        if items is None:
            config = dataclasses.replace(FAST, workers=workers)
            stream = stream_initial_masks(ds, route="auto", config=config)
            items = list(stream.images)
        assert [stem for stem, *_ in items] == ds.stems
        for stem, mask, probs, score in items:
            assert np.array_equal(mask, whole.masks[stem]) and np.array_equal(probs, whole.probs[stem]), stem
            assert score == whole.scores[stem]
        assert stream.info["seconds"] > 0 and stream.info["recipe"] == "fused"


def test_initial_round_writes_byte_identical_masks_with_one_and_two_workers(tmp_path):
    """``run_autolabel`` round 0 (route auto, streamed) with ``post.workers`` 1 and 2: the same PNG bytes,
    and progress advances per image."""
    example = make_example(tmp_path / "ex", n=5, size=48, classes=("ring",))
    seen: list[tuple[str, int, int]] = []
    one = run_autolabel(example, tmp_path / "one", TINY.replace({"post.workers": 1}))
    two = run_autolabel(
        example, tmp_path / "two", TINY.replace({"post.workers": 2}), progress=lambda *a: seen.append(a)
    )
    masks = sorted(one.round(0).masks_dir.glob("*.png"))
    assert len(masks) == 5
    for m in masks:
        assert m.read_bytes() == (two.round(0).masks_dir / m.name).read_bytes(), m.name
    stage = "round 0: initial masks (fused) and filter"  # one bar, advancing image by image
    assert [done for name, done, _ in seen if name == stage] == [1, 2, 3, 4, 5]
    assert two.round(0).provenance["init_info"]["seconds"] > 0


def test_network_route_post_processing_in_two_workers_gives_the_same_masks(tmp_path):
    """Route ``otsu`` (a network's round 0, then the ``post.chain`` per image) with ``post.workers`` 1
    and 2: the post-processed masks are byte-identical."""
    example = make_example(tmp_path / "ex", n=5, size=48, classes=("ring",))
    config = TINY.replace(init="otsu", postprocess="crf+grabcut").replace(
        {"init.options.train": {"epochs": 1, "batch_size": 4, "crop_size": 48}, "init.options.min_train_samples": 0}
    )
    one = run_autolabel(example, tmp_path / "one", config.replace({"post.workers": 1}))
    two = run_autolabel(example, tmp_path / "two", config.replace({"post.workers": 2}))
    assert one.round(0).provenance.get("postprocess") == "crf+grabcut"
    masks = sorted(one.round(0).masks_dir.glob("*.png"))
    assert len(masks) == 5
    for m in masks:
        assert m.read_bytes() == (two.round(0).masks_dir / m.name).read_bytes(), m.name


def test_workers_setting_is_checked_and_belongs_to_the_run():
    with pytest.raises(ValueError, match="InitConfig.workers must be an integer >= 1"):
        InitConfig(workers=0)
    with pytest.raises(ValueError, match="set post.workers instead"):
        InitSection(options=InitConfig(workers=2))
    config = TINY.replace({"post.workers": 2})
    assert "workers" not in config.to_dict()["init"]["options"]
    assert RunConfig.from_dict(config.to_dict()).init.init_config(seed=0, num_threads=None, workers=2).workers == 2
