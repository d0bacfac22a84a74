"""Parse a Label Studio labelling config with label-studio-sdk's ``LabelInterface``: the mask
control, its ``<Image>``, the class map, and the ``<Choices>`` that give image-level labels.

Accepted mask controls, bound to an ``<Image value="$key">``: ``<BrushLabels>``,
``<PolygonLabels>``, or a ``<Labels>`` control together with a ``<Brush>`` (or ``<Polygon>``) tool
on the same image. Label names become the project's classes (background is implicit, index 0).
A ``<Choices>`` control on the same image whose choices name classes gives each task its
image-level labels (from the task's annotations, else its predictions). A trained model whose
classes are not all in the config is refused with both lists and how to fix the config.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from label_studio_sdk.label_interface import LabelInterface

from core.classmap import BACKGROUND, ClassMap
from labelstudio_backend.controls import CONTROLS, MaskControl

EXAMPLE_CONFIG = (
    '<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">'
    '<Label value="cat"/><Label value="dog"/></BrushLabels></View>'
)
"""A minimal usable config (one line, so that it fits in a one-line error message)."""

PROMPT_TAGS = ("rectanglelabels", "keypointlabels")
"""Control tags whose regions are read as interactive prompts, not as labels."""
TOOLS = {"brush": "brushlabels", "polygon": "polygonlabels"}
"""A bare drawing tool used with a ``<Labels>`` control -> the labelled control it stands for."""
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class ConfigError(ValueError):
    """The labelling config cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class ChoicesControl:
    """A ``<Choices>`` control on the mask's image whose choices name classes.

    Attributes:
        name: the control's ``name`` (results' ``from_name``).
        classes: its choices that are classes of the project, in config order.
        ignored: its other choices (not classes: never used as labels).
    """

    name: str
    classes: tuple[str, ...]
    ignored: tuple[str, ...] = ()

    def labels_in(self, results: Any) -> list[str] | None:
        """Class names chosen in a list of results (``None`` when it has no result of this control)."""
        if not isinstance(results, list):
            return None
        found: list[str] | None = None
        for r in results:
            if not isinstance(r, Mapping) or r.get("from_name") != self.name:
                continue
            if str(r.get("type", "")).lower() != "choices":
                continue
            value = r.get("value")
            chosen = value.get("choices") if isinstance(value, Mapping) else None
            if not isinstance(chosen, list):
                continue
            found = found or []
            found += [str(c) for c in chosen if str(c) in self.classes and str(c) not in found]
        return found


@dataclass(frozen=True)
class LabelConfig:
    """What the backend needs from a labelling config.

    Attributes:
        control: the ``<BrushLabels>``/``<PolygonLabels>`` (or ``<Labels>`` + tool) bound to an ``<Image>``.
        image_name: the ``name`` of that ``<Image>`` (results' ``to_name``).
        image_key: the task-data key of the image (``value="$image"`` -> ``"image"``).
        classmap: background + the control's labels in config order.
        prompt_controls: names of ``<RectangleLabels>``/``<KeyPointLabels>`` on the same image.
        choices: ``<Choices>`` controls on the same image naming classes (image-level labels).
    """

    control: MaskControl
    image_name: str
    image_key: str
    classmap: ClassMap
    prompt_controls: tuple[str, ...] = ()
    choices: tuple[ChoicesControl, ...] = ()

    def task_choices(self, task: Mapping[str, Any]) -> tuple[list[str] | None, str]:
        """Image-level labels chosen for ``task`` in its ``<Choices>``, and where they came from.

        The task's annotations first (the latest one that has a choice), else its predictions;
        ``(None, "")`` when neither has a result of these controls.
        """
        if not self.choices:
            return None, ""
        for field, what in (("annotations", "annotation"), ("predictions", "prediction")):
            items = task.get(field)
            if not isinstance(items, list):
                continue
            ordered = sorted(
                (a for a in items if isinstance(a, Mapping) and not a.get("was_cancelled")),
                key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""),
                reverse=True,
            )
            for item in ordered:
                for control in self.choices:
                    names = control.labels_in(item.get("result"))
                    if names is not None:
                        return names, f"{what} {item.get('id', '?')} <Choices name={control.name!r}>"
        return None, ""


def parse_label_config(xml: str | None) -> LabelConfig:
    """Parse ``xml``; raises :class:`ConfigError` explaining what to add when it cannot be used."""
    if not xml or not str(xml).strip():
        raise ConfigError(f"empty labelling config; expected for example: {EXAMPLE_CONFIG}")
    return _parse(str(xml))


@functools.lru_cache(maxsize=64)
def _parse(xml: str) -> LabelConfig:
    if _DECLARATION.search(xml):
        raise ConfigError("the labelling config has a <!DOCTYPE> or <!ENTITY> declaration; remove it")
    try:
        ET.fromstring(xml)  # a plain syntax check first, with a short message
    except ET.ParseError as exc:
        raise ConfigError(f"the labelling config is not valid XML ({exc})") from None
    try:
        li = LabelInterface(xml)
    except Exception as exc:  # the SDK raises its own exception classes (and pydantic's) for bad configs
        raise ConfigError(f"label-studio-sdk cannot read the labelling config ({type(exc).__name__}: {exc})") from None
    images = {o.name: str(o.value or "") for o in li.objects if o.tag.lower() == "image" and o.name}
    if not images:
        raise ConfigError(
            f'the labelling config has no <Image name=... value="$image"/>; expected for example: {EXAMPLE_CONFIG}'
        )
    controls = [c for c in li.controls if c.name]
    _check_targets(controls, images)
    control = _mask_control(controls, images)
    value = images[control.to_name]
    if not value.startswith("$") or len(value) < 2:
        raise ConfigError(
            f"<Image name={control.to_name!r}> has value={value!r}; expected a task-data "
            f'reference such as value="$image"'
        )
    prompts = tuple(c.name for c in controls if c.tag.lower() in PROMPT_TAGS and control.to_name in (c.to_name or []))
    choices = []
    for c in controls:
        if c.tag.lower() != "choices" or control.to_name not in (c.to_name or []):
            continue
        values = tuple(str(v) for v in (c.labels or []))
        classes = tuple(v for v in values if v in control.labels)
        if classes:
            choices.append(ChoicesControl(c.name, classes, tuple(v for v in values if v not in classes)))
    return LabelConfig(
        control=control,
        image_name=control.to_name,
        image_key=value[1:],
        classmap=ClassMap.from_names(control.labels),
        prompt_controls=prompts,
        choices=tuple(choices),
    )


def _check_targets(controls: Sequence[Any], images: Mapping[str, str]) -> None:
    for c in controls:
        tag = c.tag.lower()
        if tag not in CONTROLS and tag not in TOOLS and tag != "labels":
            continue
        missing = [t for t in (c.to_name or []) if t not in images]
        if missing:
            raise ConfigError(
                f"<{c.tag} name={c.name!r}> points at toName={','.join(c.to_name or [])!r}, which is not an <Image> "
                f"(images: {sorted(images)}); set toName to the Image's name"
            )


def _labels_of(c: Any) -> tuple[str, ...]:
    labels = tuple(str(v) for v in (c.labels or []) if v)
    if not labels:
        raise ConfigError(f'<{c.tag} name={c.name!r}> has no <Label value="..."/>; add one per class')
    if BACKGROUND in labels:
        raise ConfigError(
            f"<{c.tag} name={c.name!r}> has a label {BACKGROUND!r}: background is implicit "
            f"(unpainted pixels); remove that label"
        )
    dup = sorted({v for v in labels if labels.count(v) > 1})
    if dup:
        raise ConfigError(f"<{c.tag} name={c.name!r}> repeats labels {dup}")
    return labels


def _mask_control(controls: Sequence[Any], images: Mapping[str, str]) -> MaskControl:
    """The first labelled mask control: ``<BrushLabels>``/``<PolygonLabels>``, else ``<Labels>`` + a tool."""
    for c in controls:
        tag = c.tag.lower()
        if tag in CONTROLS:
            return CONTROLS[tag](from_name=c.name, to_name=c.to_name[0], labels=_labels_of(c))
    for c in controls:
        if c.tag.lower() != "labels":
            continue
        for tool in controls:
            kind = tool.tag.lower()
            if kind in TOOLS and set(tool.to_name or []) & set(c.to_name or []):
                target = next(t for t in c.to_name if t in (tool.to_name or []))
                return CONTROLS[TOOLS[kind]](
                    from_name=c.name, to_name=target, labels=_labels_of(c), tool_name=tool.name
                )
    raise ConfigError(
        "the labelling config has no <BrushLabels> or <PolygonLabels> (or <Labels> with a <Brush>) bound to an "
        f"<Image>; this backend predicts masks. Expected for example: {EXAMPLE_CONFIG}"
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
