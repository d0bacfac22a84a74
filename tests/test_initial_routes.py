"""Initial (round-0) routes on the built-in example: shapes, values, errors, interactive helper."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.classmap import ClassMap
from core.data.dataset import Dataset
from core.data.example import make_example
from core.initial import ROUTES, InitConfig, InitialResult, initial_mask_for_image, make_initial_masks
from core.postprocess import CRFParams

# small CNN inputs and few epochs keep the whole file to seconds on 2 CPU cores
FAST = InitConfig(
    cam_size=192, cam_flip=False, classifier_epochs=8, num_threads=1, crf=CRFParams(iters=3), min_train_samples=0
)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a != 0, b != 0
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Dataset:
    return make_example(tmp_path_factory.mktemp("ex"), n=6, size=64)


@pytest.fixture(scope="module")
def single_class(tmp_path_factory) -> Dataset:
    """The example's ellipses only, relabelled as one class ``horse`` (ImageNet CAM path)."""
    ds = make_example(tmp_path_factory.mktemp("ex1"), n=6, size=64, classes=("ellipse",))
    samples = [dataclasses.replace(s, labels=("horse",)) for s in ds]
    return Dataset(samples=tuple(samples), classmap=ClassMap.from_names(["horse"]))


def check_result(res: InitialResult, ds: Dataset) -> None:
    k = ds.classmap.num_classes
    assert set(res.masks) == set(ds.stems)
    for s in ds:
        m = res.masks[s.stem]
        gt = s.load_mask()
        assert m.shape == gt.shape and m.dtype == np.uint8
        allowed = {0, *(ds.classmap.index(lab) for lab in s.labels)}
        assert set(np.unique(m).tolist()) <= allowed
        assert 0.0 <= res.scores[s.stem] <= 1.0
        if res.probs is not None:
            p = res.probs[s.stem]
            assert p.shape == (k, *gt.shape) and p.dtype == np.float32
            np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-4)


@pytest.mark.parametrize("route", ["cam", "grabcut", "auto"])
def test_map_routes_multiclass(example, route):
    res = make_initial_masks(example, route=route, config=FAST)
    check_result(res, example)
    assert res.info["coarse_source"] == "trained"
    # the example is easy: the masks must mostly find the objects
    assert np.mean([iou(res.masks[s.stem], s.load_mask()) for s in example]) > 0.5


@pytest.mark.parametrize("route", ["cam", "grabcut"])
def test_map_routes_single_class_imagenet(single_class, route):
    res = make_initial_masks(single_class, route=route, config=FAST)
    check_result(res, single_class)
    if route == "cam":  # the class name mapped to ImageNet classes
        assert res.info["coarse_source"] == "imagenet"
        assert res.info["imagenet_classes"]["horse"] == [339, 603]
    else:  # coarse="auto" with one class: class-agnostic top-k CAM (better on the horse bench)
        assert res.info["coarse_source"] == "topk"


def test_centre_coarse_needs_no_network(example):
    cfg = dataclasses.replace(FAST, coarse="centre")
    res = make_initial_masks(example, route="grabcut", config=cfg)
    check_result(res, example)
    assert res.info["coarse_source"] == "centre"


def test_keep_probs_false(example):
    res = make_initial_masks(
        example, route="grabcut", config=dataclasses.replace(FAST, coarse="centre", keep_probs=False)
    )
    assert res.probs is None and len(res.masks) == len(example)


def test_unknown_route_lists_valid(example):
    with pytest.raises(ValueError) as err:
        make_initial_masks(example, route="magic", config=FAST)
    for r in ROUTES:
        assert r in str(err.value)


def test_image_without_label_names_it(example):
    samples = list(example)
    samples[2] = dataclasses.replace(samples[2], labels=())
    ds = example.with_samples(samples)
    with pytest.raises(ValueError, match=samples[2].stem):
        make_initial_masks(ds, route="grabcut", config=FAST)


def test_transfer_without_source_explains(example):
    with pytest.raises(ValueError, match="source"):
        make_initial_masks(example, route="transfer", config=FAST)


def test_transfer_torchvision_plumbing(single_class):
    """VOC-pretrained torchvision model path, with random weights (no download here)."""
    cfg = dataclasses.replace(FAST, voc_weights=None, voc_model="lraspp_mobilenet_v3_large", predict_flip=False)
    res = make_initial_masks(single_class, route="transfer", source="voc", config=cfg)
    check_result(res, single_class)
    assert res.info["voc_classes"] == {"horse": "horse"}


def test_voc_and_imagenet_mappings():
    from core.initial.imagenet import imagenet_indices
    from core.initial.transfer import voc_class

    assert voc_class("horse") == "horse"
    assert voc_class("orchid") == "pottedplant"
    assert voc_class("Horses") == "horse"
    assert voc_class("object") is None
    assert voc_class("ellipse") is None
    assert imagenet_indices("horse") == (339, 603)
    assert imagenet_indices("object") is None
    assert imagenet_indices("goldfish") == (1,)  # by ImageNet's own category names
    assert imagenet_indices("widget", {"widget": (5, 6)}) == (5, 6)


def test_transfer_from_source_dataset(example, tmp_path):
    pytest.importorskip("core.training.trainer")
    src = make_example(tmp_path / "src", n=6, size=64, seed=3, classes=("star",))
    cfg = dataclasses.replace(
        FAST,
        gfn={"pretrained": False, "aspp_channels": 16, "low_channels": 8},
        train={"epochs": 1, "batch_size": 3, "crop_size": 48},
        predict_flip=False,
    )
    res = make_initial_masks(example, route="transfer", source=src, config=cfg)
    check_result(res, example)
    assert res.info["binarised"] is True
    auto = make_initial_masks(example, route="auto", source=src, config=cfg)
    assert auto.route == "transfer"


def test_config_from_dict_refuses_unknown():
    with pytest.raises(ValueError, match="known fields"):
        InitConfig.from_dict({"work_sise": 3})
    cfg = InitConfig.from_dict({"cam_scales": [1.0, 1.5], "imagenet_map": {"x": [1]}})
    assert cfg.cam_scales == (1.0, 1.5)
    assert dataclasses.asdict(cfg)["imagenet_map"] == {"x": (1,)}
    with pytest.raises(ValueError, match="coarse"):
        InitConfig(coarse="saliency")


def test_interactive_box_and_points(example):
    s = example[0]
    image, gt = s.load_image(), s.load_mask() != 0
    ys, xs = np.nonzero(gt)
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    mask, score = initial_mask_for_image(image, 2, box=box, num_classes=4)
    assert mask.shape == gt.shape and set(np.unique(mask).tolist()) <= {0, 2}
    assert iou(mask, gt) > 0.8 and 0.0 <= score <= 1.0
    cy, cx = ys.mean(), xs.mean()
    pts = [(float(cx), float(cy), 1), (1.0, 1.0, 0)]
    mask2, _ = initial_mask_for_image(image, 1, box=box, points=pts)
    assert mask2[int(cy), int(cx)] == 1 and mask2[1, 1] == 0


def test_interactive_errors(example):
    image = example[0].load_image()
    with pytest.raises(ValueError, match="valid routes"):
        initial_mask_for_image(image, 1, route="transfer")
    with pytest.raises(ValueError, match="class_index"):
        initial_mask_for_image(image, 2, num_classes=2)
    with pytest.raises(ValueError, match="box"):
        initial_mask_for_image(image, 1, box=(10, 10, 5, 5))
    with pytest.raises(ValueError, match="outside"):
        initial_mask_for_image(image, 1, points=[(500, 5, 1)], box=(0, 0, 20, 20))


def test_interactive_no_prompt_uses_activation(example):
    image = example[0].load_image()
    for route in ("grabcut", "cam", "otsu"):
        mask, score = initial_mask_for_image(image, 1, route=route, config=FAST)
        assert mask.shape == image.shape[:2] and 0.0 <= score <= 1.0
