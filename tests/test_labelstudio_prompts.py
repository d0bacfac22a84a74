"""Interactive prompts from a request context: rectangles and positive/negative keypoints."""

import pytest

from core.classmap import ClassMap
from labelstudio_backend.prompts import parse_prompt

CMAP = ClassMap.from_names(["cat", "dog"])


def kp(x, y, labels, **extra):
    return {"type": "keypointlabels", "value": {"x": x, "y": y, "width": 1, "keypointlabels": labels}, **extra}


def test_no_context_is_an_empty_prompt():
    assert parse_prompt(None, CMAP, width=10, height=10).empty
    assert parse_prompt({}, CMAP, width=10, height=10).empty


def test_rectangle_in_percent_becomes_pixels_and_names_the_class():
    ctx = {
        "result": [
            {
                "type": "rectanglelabels",
                "value": {"x": 10, "y": 20, "width": 50, "height": 25, "rectanglelabels": ["dog"]},
            }
        ]
    }
    p = parse_prompt(ctx, CMAP, width=200, height=100)
    assert p.box == (20, 20, 120, 45) and p.class_name == "dog" and not p.points


def test_keypoints_positive_and_negative():
    ctx = {
        "result": [
            kp(50, 50, ["cat"], is_positive=True),
            kp(10, 10, ["cat"], is_positive=False),
            kp(90, 90, ["negative"]),
            kp(20, 80, ["positive"]),
        ]
    }
    p = parse_prompt(ctx, CMAP, width=100, height=100)
    assert p.points == ((50, 50, True), (10, 10, False), (90, 90, False), (20, 80, True))
    assert p.class_name == "cat" and p.box is None


def test_coordinates_are_clamped_to_the_image():
    p = parse_prompt({"result": [kp(100, 120, ["positive"])]}, CMAP, width=64, height=32)
    assert p.points == ((63, 31, True),)


def test_bad_numbers_are_named():
    with pytest.raises(ValueError, match="x='left'"):
        parse_prompt({"result": [kp("left", 1, ["positive"])]}, CMAP, width=10, height=10)
