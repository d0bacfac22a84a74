"""Labelling configs: controls, image key, class map, and mismatch errors that say how to fix them."""

import numpy as np
import pytest

from labelstudio_backend.controls import BrushControl, PolygonControl
from labelstudio_backend.label_config import ConfigError, check_model_classes, parse_label_config
from tests.labelstudio_harness import brush_config, polygon_config


def test_brush_config():
    cfg = parse_label_config(brush_config(prompts=True))
    assert isinstance(cfg.control, BrushControl)
    assert cfg.image_key == "image" and cfg.image_name == "image"
    assert cfg.classmap.names == ("background", "ellipse", "star", "ring")
    assert set(cfg.prompt_controls) == {"kp", "box"}


def test_polygon_config():
    cfg = parse_label_config(polygon_config(["a", "b"]))
    assert isinstance(cfg.control, PolygonControl) and cfg.control.from_name == "poly"
    assert cfg.classmap.foreground == ("a", "b")


@pytest.mark.parametrize(
    "xml, match",
    [
        ("", "empty labelling config"),
        ("<View><Image", "not valid XML"),
        ('<View><Text name="t" value="$text"/></View>', "no <Image"),
        (
            '<View><Image name="image" value="$image"/><Choices name="c" toName="image"><Choice value="x"/></Choices>'
            "</View>",
            "no <BrushLabels> or <PolygonLabels>",
        ),
        (
            '<View><Image name="image" value="$image"/><BrushLabels name="t" toName="img"><Label value="a"/>'
            "</BrushLabels></View>",
            "toName='img'",
        ),
        (
            '<View><Image name="image" value="$image"/><BrushLabels name="t" toName="image"></BrushLabels></View>',
            "has no <Label",
        ),
        (
            '<View><Image name="image" value="$image"/><BrushLabels name="t" toName="image"><Label value="background"/>'
            "</BrushLabels></View>",
            "background is implicit",
        ),
        (
            '<View><Image name="image" value="image"/><BrushLabels name="t" toName="image"><Label value="a"/>'
            "</BrushLabels></View>",
            'value="\\$image"',
        ),
    ],
)
def test_bad_configs_explain_the_fix(xml, match):
    with pytest.raises(ConfigError, match=match):
        parse_label_config(xml)


def test_model_with_classes_missing_from_config_is_refused_naming_both_sides():
    cfg = parse_label_config(brush_config(["ellipse", "star"]))
    with pytest.raises(ConfigError) as err:
        check_model_classes(("background", "ellipse", "star", "ring"), cfg)
    msg = str(err.value)
    assert "['ring']" in msg and "config labels: ['ellipse', 'star']" in msg
    assert '<Label value="ring"/>' in msg


def test_config_may_have_more_labels_than_the_model():
    check_model_classes(("background", "ellipse"), parse_label_config(brush_config()))


# -- <Choices> for image-level labels, <Labels> + <Brush>, parsed through label-studio-sdk -------------------
CHOICES_BRUSH = (
    '<View><Image name="image" value="$img"/>'
    '<Choices name="what" toName="image" choice="multiple"><Choice value="cat"/><Choice value="dog"/>'
    '<Choice value="unsure"/></Choices>'
    '<BrushLabels name="tag" toName="image"><Label value="cat"/><Label value="dog"/></BrushLabels></View>'
)
LABELS_BRUSH = (
    '<View><Image name="photo" value="$image"/><Labels name="label" toName="photo"><Label value="cat"/>'
    '<Label value="dog"/></Labels><Brush name="brush" toName="photo"/>'
    '<Choices name="species" toName="photo"><Choice value="dog"/></Choices></View>'
)


def choice(name, values, **extra):
    return {"from_name": name, "to_name": "image", "type": "choices", "value": {"choices": values}, **extra}


def test_choices_control_naming_classes_gives_image_level_labels():
    cfg = parse_label_config(CHOICES_BRUSH)
    assert cfg.image_key == "img" and cfg.classmap.foreground == ("cat", "dog")
    (ch,) = cfg.choices
    assert (ch.name, ch.classes, ch.ignored) == ("what", ("cat", "dog"), ("unsure",))
    task = {
        "annotations": [
            {"id": 1, "created_at": "2026-01-01T10:00", "result": [choice("what", ["cat"])]},
            {"id": 2, "created_at": "2026-01-02T10:00", "result": [choice("what", ["dog", "unsure"])]},
            {"id": 3, "created_at": "2026-01-03T10:00", "result": [choice("what", ["cat"])], "was_cancelled": True},
        ],
        "predictions": [{"id": 9, "result": [choice("what", ["cat"])]}],
    }
    assert cfg.task_choices(task) == (["dog"], "annotation 2 <Choices name='what'>")  # latest, not cancelled
    assert cfg.task_choices({"predictions": task["predictions"]}) == (["cat"], "prediction 9 <Choices name='what'>")
    assert cfg.task_choices({"annotations": [{"id": 4, "result": [choice("other", ["cat"])]}]}) == (None, "")
    assert cfg.task_choices({"annotations": "x", "predictions": [5, {"result": "y"}]}) == (None, "")


def test_labels_with_a_brush_tool():
    cfg = parse_label_config(LABELS_BRUSH)
    assert isinstance(cfg.control, BrushControl)
    assert (cfg.control.from_name, cfg.control.tool_name, cfg.control.to_name) == ("label", "brush", "photo")
    assert cfg.classmap.foreground == ("cat", "dog")
    assert [c.name for c in cfg.choices] == ["species"]


def test_labels_with_brush_reads_merged_and_split_annotations():
    cfg = parse_label_config(LABELS_BRUSH)
    mask = np.zeros((20, 30), np.uint8)
    mask[2:8, 3:9] = 1
    mask[10:18, 12:25] = 2
    merged = cfg.control.to_results(mask, cfg.classmap.names, 0.9)
    assert {r["from_name"] for r in merged} == {"label"} and {r["type"] for r in merged} == {"brushlabels"}
    np.testing.assert_array_equal(cfg.control.to_mask(merged, cfg.classmap), mask)
    split = []
    for r in merged:
        value = {k: v for k, v in r["value"].items() if k != "brushlabels"}
        split.append({**r, "from_name": "brush", "type": "brush", "value": value})
        split.append({**r, "type": "labels", "value": {"labels": r["value"]["brushlabels"]}})
    np.testing.assert_array_equal(cfg.control.to_mask(split, cfg.classmap), mask)


def test_polygon_labels_and_labels_with_polygon_are_accepted():
    cfg = parse_label_config(
        '<View><Image name="image" value="$image"/><Labels name="l" toName="image"><Label value="a"/></Labels>'
        '<Polygon name="p" toName="image"/></View>'
    )
    assert isinstance(cfg.control, PolygonControl) and cfg.control.tool_name == "p"


@pytest.mark.parametrize(
    "xml, match",
    [
        ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><View>&e;</View>', "DOCTYPE"),
        (
            '<View><Image name="image" value="$image"/><Labels name="l" toName="image"><Label value="a"/></Labels>'
            "</View>",
            "no <BrushLabels> or <PolygonLabels> \\(or <Labels> with a <Brush>\\)",
        ),
        (
            '<View><Image name="image" value="$image"/><Labels name="l" toName="image"></Labels>'
            '<Brush name="b" toName="image"/></View>',
            "has no <Label",
        ),
    ],
)
def test_more_bad_configs(xml, match):
    with pytest.raises(ConfigError, match=match):
        parse_label_config(xml)
