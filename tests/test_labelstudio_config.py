"""Labelling configs: controls, image key, class map, and mismatch errors that say how to fix them."""

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
