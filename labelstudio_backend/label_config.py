"""Parse a Label Studio labelling config: the mask control, its ``<Image>``, and the class map.

Label names become the project's classes (background is implicit, index 0). A trained model
whose classes are not all in the config is refused with both lists and how to fix the config.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from core.classmap import BACKGROUND, ClassMap
from labelstudio_backend.controls import CONTROLS, MaskControl

EXAMPLE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <BrushLabels name="tag" toName="image">
    <Label value="cat"/>
    <Label value="dog"/>
  </BrushLabels>
</View>"""

PROMPT_TAGS = ("rectanglelabels", "keypointlabels")
"""Control tags whose regions are read as interactive prompts, not as labels."""


class ConfigError(ValueError):
    """The labelling config cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class LabelConfig:
    """What the backend needs from a labelling config.

    Attributes:
        control: the first ``<BrushLabels>`` or ``<PolygonLabels>`` bound to an ``<Image>``.
        image_name: the ``name`` of that ``<Image>`` (results' ``to_name``).
        image_key: the task-data key of the image (``value="$image"`` -> ``"image"``).
        classmap: background + the control's labels in config order.
        prompt_controls: names of ``<RectangleLabels>``/``<KeyPointLabels>`` on the same image.
    """

    control: MaskControl
    image_name: str
    image_key: str
    classmap: ClassMap
    prompt_controls: tuple[str, ...] = ()


def parse_label_config(xml: str | None) -> LabelConfig:
    """Parse ``xml``; raises :class:`ConfigError` explaining what to add when it cannot be used."""
    if not xml or not str(xml).strip():
        raise ConfigError(f"empty labelling config; expected for example:\n{EXAMPLE_CONFIG}")
    try:
        root = ET.fromstring(str(xml))
    except ET.ParseError as exc:
        raise ConfigError(f"the labelling config is not valid XML ({exc})") from None
    images: dict[str, str] = {}
    for el in root.iter():
        if el.tag.lower() == "image" and el.get("name"):
            images[el.get("name", "")] = el.get("value", "")
    if not images:
        raise ConfigError(
            f'the labelling config has no <Image name=... value="$image"/>; expected for example:\n{EXAMPLE_CONFIG}'
        )
    control: MaskControl | None = None
    prompts: list[str] = []
    for el in root.iter():
        tag = el.tag.lower()
        to_name = el.get("toName") or el.get("toname") or ""
        if tag in PROMPT_TAGS and to_name in images:
            prompts.append(el.get("name", ""))
        if tag not in CONTROLS or control is not None:
            continue
        name = el.get("name")
        if not name:
            raise ConfigError(f'<{el.tag}> has no name="..." attribute')
        if to_name not in images:
            raise ConfigError(
                f"<{el.tag} name={name!r}> points at toName={to_name!r}, which is not an <Image> "
                f"(images: {sorted(images)}); set toName to the Image's name"
            )
        labels = tuple(lab.get("value", "") for lab in el if lab.tag.lower() == "label")
        labels = tuple(v for v in labels if v)
        if not labels:
            raise ConfigError(f'<{el.tag} name={name!r}> has no <Label value="..."/>; add one per class')
        if BACKGROUND in labels:
            raise ConfigError(
                f"<{el.tag} name={name!r}> has a label {BACKGROUND!r}: background is implicit "
                f"(unpainted pixels); remove that label"
            )
        dup = sorted({v for v in labels if labels.count(v) > 1})
        if dup:
            raise ConfigError(f"<{el.tag} name={name!r}> repeats labels {dup}")
        control = CONTROLS[tag](from_name=name, to_name=to_name, labels=labels)
    if control is None:
        raise ConfigError(
            "the labelling config has no <BrushLabels> or <PolygonLabels> bound to an <Image>; this backend "
            f"predicts masks. Expected for example:\n{EXAMPLE_CONFIG}"
        )
    value = images[control.to_name]
    if not value.startswith("$") or len(value) < 2:
        raise ConfigError(
            f"<Image name={control.to_name!r}> has value={value!r}; expected a task-data "
            f'reference such as value="$image"'
        )
    return LabelConfig(
        control=control,
        image_name=control.to_name,
        image_key=value[1:],
        classmap=ClassMap.from_names(control.labels),
        prompt_controls=tuple(prompts),
    )


def check_model_classes(model_classes: Sequence[str], config: LabelConfig) -> None:
    """Refuse a model that predicts classes the config does not label.

    Labels in the config that the model does not know are allowed (the next training round
    learns them).
    """
    missing = [c for c in model_classes if c != BACKGROUND and c not in config.classmap.names]
    if missing:
        known = list(config.classmap.foreground)
        adds = " ".join(f'<Label value="{c}"/>' for c in missing)
        raise ConfigError(
            f"the trained model predicts classes {missing} that the labelling config's "
            f"<{config.control.tag} name={config.control.from_name!r}> does not have "
            f"(config labels: {known}; model classes: {[c for c in model_classes if c != BACKGROUND]}). "
            f"Fix: add {adds} to the config, or rename the labels back, or start the project's model "
            f"afresh by deleting its current.json under MODEL_DIR."
        )
