"""The review loop: the least reliable masks of a run go to a person in Label Studio and come back as
human masks, which the next ``auto_label`` run keeps as fixed labels.

Three ordinary functions (the operators ``send_to_labelstudio`` and ``fetch_from_labelstudio`` only
gather their arguments) and one the ``auto_label`` function calls:

- :func:`send_to_labelstudio`: the ``n`` samples of the target (a view, or the whole dataset) with the
  lowest ``<prefix>_reliability`` (no ground truth needed), or every sample of the target with
  ``n=None``, become tasks of a Label Studio project (created with a ``<BrushLabels>`` config of the
  run's classes, or an existing one whose brush labels cover them). Each image is uploaded, the
  task's data gets ``gfn_sample_id``/``gfn_stem``, and the run's mask is attached as a brush
  *prediction* (scored by its reliability), so the reviewer corrects it instead of drawing it;
- :func:`fetch_from_labelstudio`: each task's latest submitted (not skipped) annotation is decoded
  into a class-index mask and written to a ``fo.Segmentation`` field (default ``human_masks``, mask
  targets = the project's labels); an existing field is never written to unless ``overwrite``, and
  then only the samples that have an annotation are replaced;
- :func:`fixed_masks`: the masks of such a field, in a run's class indices, for
  ``core.refine.runner.run_autolabel(fixed=...)``.

Why not FiftyOne's ``view.annotate(backend="labelstudio")``: its Label Studio backend models a mask as
one label (it reads ``label.label`` to name the brush, ``AttributeError`` on our class-index
``Segmentation`` fields, which have no single label) and drives the SDK's legacy ``Client``. Rather than
splitting every mask into per-class instance labels to fit it, this module goes through the
``label-studio-sdk`` client (``LabelStudio``) directly and encodes brushes with the Label Studio
backend's own :class:`labelstudio_backend.controls.brush.BrushControl` (the same RLE codec the ML
backend serves its predictions with). Images are uploaded through the project's import endpoint
(``POST /api/projects/<id>/import``, multipart) with the SDK's HTTP client: the SDK's ``import_tasks``
takes JSON tasks only, and uploading needs no storage set up on the Label Studio side.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gfn_fiftyone import convert
from gfn_fiftyone.naming import RunNames

log = logging.getLogger(__name__)

URL_ENV, KEY_ENV = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"
SAMPLE_KEY, STEM_KEY = "gfn_sample_id", "gfn_stem"
"""Task-data keys linking a Label Studio task to its FiftyOne sample."""
DEFAULT_HUMAN_FIELD = "human_masks"
CONTROL_NAME = "tag"


def brush_config(classes: Sequence[str], control: str = CONTROL_NAME) -> str:
    """A labelling config: one ``<Image>`` and a ``<BrushLabels>`` with one label per class."""
    from xml.sax.saxutils import quoteattr

    labels = "".join(f"<Label value={quoteattr(c)}/>" for c in classes)
    return (
        f'<View><Image name="image" value="$image" zoom="true"/>'
        f'<BrushLabels name="{control}" toName="image">{labels}</BrushLabels></View>'
    )


def client(url: str | None = None, api_key: str | None = None):
    """A ``label_studio_sdk.LabelStudio`` client (``url``/``api_key`` default to ``$LABEL_STUDIO_URL`` /
    ``$LABEL_STUDIO_API_KEY``; ``ValueError`` saying which is missing)."""
    from label_studio_sdk import LabelStudio

    url = url or os.environ.get(URL_ENV)
    api_key = api_key or os.environ.get(KEY_ENV)
    if not url or not api_key:
        missing = [n for n, v in (("url", url), ("api_key", api_key)) if not v]
        raise ValueError(
            f"Label Studio {' and '.join(missing)} missing: pass them or set ${URL_ENV} / ${KEY_ENV} "
            f"(the API key is under Account & Settings in Label Studio)"
        )
    return LabelStudio(base_url=url.rstrip("/"), api_key=api_key, timeout=300)


# --------------------------------------------------------------------------------------- choosing
def review_view(collection, *, prefix: str = "gfn", n: int | None = 10, mask_field: str | None = None):
    """The samples to review: the ``n`` least reliable of ``collection`` by ``<prefix>_reliability``
    (ascending, samples without a mask or a reliability left out), or all of them with ``n=None``."""
    names = RunNames(prefix)
    mask_field = mask_field or names.best
    convert.require_field(collection, mask_field, ("Segmentation",), "mask_field")
    view = collection.exists(mask_field)
    if n is None:
        return view
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number >= 1 (or None for the whole view), got {n!r}")
    rel = names.best_reliability
    if rel not in collection.get_field_schema():
        raise ValueError(
            f"field {rel!r} is missing: run auto_label with output_prefix {prefix!r} first (it writes the "
            f"per-image reliability), or pass n=None to send the whole view"
        )
    return view.exists(rel).sort_by(rel).limit(n)


def _class_names(collection, mask_field: str) -> list[str]:
    """``names[i]`` = class of index ``i`` in ``mask_field``'s masks (from its mask targets)."""
    targets = convert.mask_targets_of(collection, mask_field)
    if not targets:
        raise ValueError(
            f"field {mask_field!r} has no mask targets ({{index: class}}); set dataset.mask_targets[{mask_field!r}]"
        )
    names = ["background"] * (max(targets) + 1)
    for i, name in targets.items():
        names[i] = name
    return names


def _project(ls, *, project_id: int | None, title: str | None, classes: Sequence[str]):
    """``(project id, control)``: an existing project whose brush labels hold ``classes``, or a new one."""
    from labelstudio_backend.controls.brush import BrushControl
    from labelstudio_backend.label_config import parse_label_config

    if project_id is None:
        project = ls.projects.create(title=title or "gfn-autolabel review", label_config=brush_config(classes))
        pid = int(project.id)
        xml = brush_config(classes)
    else:
        pid = int(project_id)
        xml = ls.projects.get(id=pid).label_config
    cfg = parse_label_config(xml)
    if not isinstance(cfg.control, BrushControl):
        raise ValueError(
            f"Label Studio project {pid} labels with <{type(cfg.control).__name__}>; the review needs "
            f"<BrushLabels> (create the project from gfn_fiftyone.review.brush_config)"
        )
    missing = [c for c in classes if c not in cfg.classmap.foreground]
    if missing:
        raise ValueError(
            f"Label Studio project {pid}'s brush labels {list(cfg.classmap.foreground)} lack {missing}; "
            f"add <Label value=.../> for them to its config"
        )
    return pid, cfg


def _upload(ls, pid: int, path: Path) -> int:
    """Upload one image into project ``pid`` (a new task); returns the task id."""
    before = {int(t.id) for t in ls.tasks.list(project=pid)}
    with open(path, "rb") as fh:
        resp = ls._client_wrapper.httpx_client.request(
            f"api/projects/{pid}/import", method="POST", files={"file": (path.name, fh.read())}
        )
    if resp.status_code >= 400:
        raise RuntimeError(f"Label Studio refused {path}: HTTP {resp.status_code} {resp.text[:300]}")
    new = sorted({int(t.id) for t in ls.tasks.list(project=pid)} - before)
    if len(new) != 1:
        raise RuntimeError(f"uploading {path} to project {pid} made {len(new)} tasks, expected 1")
    return new[0]


def send_to_labelstudio(
    collection,
    *,
    prefix: str = "gfn",
    n: int | None = 10,
    mask_field: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    project_id: int | None = None,
    project_title: str | None = None,
    progress=None,
) -> dict[str, Any]:
    """Send the samples chosen by :func:`review_view` to Label Studio with their masks as predictions.

    Returns ``{"project_id", "url", "n_tasks", "samples": [{"sample_id", "stem", "task_id",
    "reliability"}], "classes"}``. Raises ``ValueError`` (naming the field or the project) before
    anything is sent when the masks or the project cannot be used.
    """
    from core.io.images import image_size

    names = RunNames(prefix)
    mask_field = mask_field or names.best
    view = review_view(collection, prefix=prefix, n=n, mask_field=mask_field)
    if len(view) == 0:
        raise ValueError(f"no sample of the target has a mask in {mask_field!r}; nothing to review")
    class_names = _class_names(collection, mask_field)
    rel = names.best_reliability
    has_rel = rel in collection.get_field_schema()
    ids = view.values("id")
    paths = view.values("filepath")
    segs = view.values(mask_field)
    scores = view.values(rel) if has_rel else [None] * len(ids)
    stems = convert.unique_stems(paths, ids)
    masks = []
    for sid, path, seg in zip(ids, paths, segs):  # every mask read and checked before anything is sent
        mask = np.asarray(seg.get_mask())
        if mask.ndim != 2:
            raise ValueError(f"mask of sample {sid} in {mask_field!r} is not a class-index mask (shape {mask.shape})")
        if mask.shape != image_size(path):
            raise ValueError(f"mask of sample {sid} in {mask_field!r} is {mask.shape}, its image {image_size(path)}")
        masks.append(mask.astype(np.uint8))
    present = sorted({int(v) for m in masks for v in np.unique(m)} - {0, 255})
    classes = [c for c in class_names[1:] if c != "background"]
    unknown = [i for i in present if i >= len(class_names)]
    if unknown:
        raise ValueError(f"masks of {mask_field!r} hold class indices {unknown} without a mask target")
    ls = client(url, api_key)
    pid, cfg = _project(ls, project_id=project_id, title=project_title, classes=classes)
    out = []
    for i, (sid, path, stem, mask, score) in enumerate(zip(ids, paths, stems, masks, scores)):
        task_id = _upload(ls, pid, Path(path))
        task = ls.tasks.get(id=str(task_id))
        data = dict(task.data or {})
        data.update({SAMPLE_KEY: sid, STEM_KEY: stem})
        ls.tasks.update(id=str(task_id), data=data)
        results = cfg.control.to_results(mask, class_names, 0.0 if score is None else float(score))
        ls.predictions.create(
            task=task_id,
            result=results,
            score=None if score is None else float(score),
            model_version=f"gfn-autolabel/{prefix}",
        )
        out.append({"sample_id": sid, "stem": stem, "task_id": task_id, "reliability": score})
        if progress is not None:
            progress((i + 1) / len(ids), f"sent {i + 1}/{len(ids)}")
    base = str(ls._client_wrapper.get_base_url()).rstrip("/")
    log.info("sent %d sample(s) of %r to Label Studio project %d (%s)", len(out), mask_field, pid, base)
    return {
        "project_id": pid,
        "url": f"{base}/projects/{pid}/data",
        "n_tasks": len(out),
        "samples": out,
        "classes": classes,
        "mask_field": mask_field,
    }


# --------------------------------------------------------------------------------------- bringing back
def _latest_annotation(annotations: Sequence[Any]) -> Any | None:
    """The most recent submitted annotation (skipped ones left out), by update time then id."""
    kept = [a for a in annotations if not getattr(a, "was_cancelled", False) and getattr(a, "result", None)]
    if not kept:
        return None
    return max(kept, key=lambda a: (str(getattr(a, "updated_at", "") or ""), int(getattr(a, "id", 0) or 0)))


def fetch_from_labelstudio(
    dataset,
    *,
    project_id: int,
    human_field: str = DEFAULT_HUMAN_FIELD,
    url: str | None = None,
    api_key: str | None = None,
    overwrite: bool = False,
    progress=None,
) -> dict[str, Any]:
    """Write the project's corrected masks to ``human_field`` (``fo.Segmentation`` with inline masks;
    mask targets = the project's brush labels).

    Only tasks that carry ``gfn_sample_id`` (sent by :func:`send_to_labelstudio`) of samples of
    ``dataset`` and have a submitted annotation are taken. Raises ``ValueError`` when ``human_field``
    exists and ``overwrite`` is not set, or is not a Segmentation field, and when an annotation's size
    differs from its image (naming the sample); nothing is written then. Returns ``{"field",
    "written": [sample ids], "without_annotation": [...], "not_in_dataset": [...]}``.
    """
    import fiftyone as fo

    from core.io.images import image_size
    from labelstudio_backend.label_config import parse_label_config

    schema = dataset.get_field_schema()
    if human_field in schema:
        kind = convert.field_type_name(dataset, human_field)
        if kind != "Segmentation":
            raise ValueError(f"field {human_field!r} holds {kind}, not Segmentation; choose another human_field")
        if not overwrite:
            raise ValueError(
                f"field {human_field!r} exists on dataset '{dataset.name}'; pass overwrite=True to replace the "
                f"masks of the samples that have an annotation, or choose another human_field"
            )
    ls = client(url, api_key)
    cfg = parse_label_config(ls.projects.get(id=int(project_id)).label_config)
    ids_in_dataset = set(dataset.values("id"))
    masks: dict[str, np.ndarray] = {}
    without, foreign = [], []
    tasks = list(ls.tasks.list(project=int(project_id)))
    for i, task in enumerate(tasks):
        sid = (task.data or {}).get(SAMPLE_KEY)
        if not sid:
            continue
        if sid not in ids_in_dataset:
            foreign.append(sid)
            continue
        ann = _latest_annotation(ls.annotations.list(id=int(task.id)))
        if ann is None:
            without.append(sid)
            continue
        results = [r if isinstance(r, Mapping) else dict(r) for r in ann.result]
        mask = cfg.control.to_mask(results, cfg.classmap)
        path = dataset[sid].filepath
        if mask is None:  # an annotation that only erased the brushes: all background
            mask = np.zeros(image_size(path), np.uint8)
        if mask.shape != image_size(path):
            raise ValueError(
                f"annotation of task {task.id} (sample {sid}) is {mask.shape[1]}x{mask.shape[0]}, its image "
                f"{path} is {image_size(path)[1]}x{image_size(path)[0]}"
            )
        masks[sid] = mask
        if progress is not None:
            progress((i + 1) / len(tasks), f"read {i + 1}/{len(tasks)} tasks")
    if masks:
        dataset.set_values(human_field, {s: fo.Segmentation(mask=m) for s, m in masks.items()}, key_field="id")
        convert.set_mask_targets(dataset, human_field, cfg.classmap)
    log.info(
        "%d corrected mask(s) from project %s into %r (%d task(s) without annotation)",
        len(masks),
        project_id,
        human_field,
        len(without),
    )
    return {
        "field": human_field,
        "written": sorted(masks),
        "without_annotation": without,
        "not_in_dataset": foreign,
        "classes": list(cfg.classmap.foreground),
    }


# --------------------------------------------------------------------------------------- next run
def fixed_masks(collection, target: convert.Target, human_field: str) -> dict[str, np.ndarray]:
    """``{stem: (H, W) uint8 mask in target.classmap's indices}`` for the target's samples that have a
    mask in ``human_field`` (its mask targets map its indices to the run's; classes the run does not
    know become 255 = ignore)."""
    convert.require_field(collection, human_field, ("Segmentation",), "fixed_field")
    dataset = collection._root_dataset
    lut = convert.gt_lut(convert.mask_targets_of(collection, human_field), target.classmap)
    by_id = {sid: stem for stem, sid in target.ids.items()}
    out: dict[str, np.ndarray] = {}
    view = dataset.select(list(by_id)).exists(human_field)
    for sid, seg in zip(view.values("id"), view.values(human_field)):
        mask = np.asarray(seg.get_mask())
        if mask.ndim != 2:
            raise ValueError(f"{human_field!r} of sample {sid} is not a class-index mask (shape {mask.shape})")
        mask = mask.astype(np.uint8)
        out[by_id[sid]] = mask if lut is None else lut[mask]
    return out


# --------------------------------------------------------------------------------------- operators
def _operators():
    """The two operator classes (built on first use: importing this module does not import
    ``fiftyone.operators``)."""
    import fiftyone.operators as foo
    import fiftyone.operators.types as types

    from gfn_fiftyone.operators import _dropdown, _mark, _no_dataset, _problem, _run_choices, run_work

    def _connection(inputs) -> None:
        inputs.str(
            "url",
            label="Label Studio URL",
            default=os.environ.get(URL_ENV, ""),
            description=f"e.g. http://localhost:8080 (default ${URL_ENV})",
        )
        inputs.str(
            "api_key",
            label="Label Studio API key",
            description=f"Account & Settings > Access token (default ${KEY_ENV})",
        )

    def _sent_outputs(results: dict[str, Any]) -> types.Property:
        out = types.Object()
        out.int("project_id", label="Label Studio project")
        out.str("url", label="Open it at")
        out.int("n_tasks", label="Tasks created")
        return types.Property(out, view=types.View(label="Sent to Label Studio"))

    def _fetched_outputs(results: dict[str, Any]) -> types.Property:
        out = types.Object()
        out.str("field", label="Human-mask field")
        out.list("written", types.String(), label="Samples written")
        out.list("without_annotation", types.String(), label="Tasks not annotated yet")
        return types.Property(out, view=types.View(label="Corrected masks brought back"))

    class SendToLabelStudio(foo.Operator):
        """The least reliable masks of a run (or the current view) to a Label Studio project."""

        @property
        def config(self) -> foo.OperatorConfig:
            return foo.OperatorConfig(
                name="send_to_labelstudio",
                label="GFN: send the least reliable masks to Label Studio",
                description="Creates tasks pre-annotated with the run's masks (brush predictions)",
                icon="rate_review",
                dynamic=True,
                execute_as_generator=True,
                allow_immediate_execution=True,
            )

        def resolve_input(self, ctx) -> types.Property:
            inputs = types.Object()
            if ctx.dataset is None:
                return _no_dataset(inputs)
            inputs.view_target(ctx, action_description="Review")
            runs = _run_choices(ctx)
            prefix_prop = _dropdown(
                inputs,
                "prefix",
                runs,
                label="Run",
                default=runs[0] if runs else None,
                required=True,
                description="Its best masks (<prefix>) and reliability (<prefix>_reliability) are used",
            )
            inputs.int("n", label="How many", default=10, min=1, description="The least reliable first")
            inputs.bool("whole_view", label="Send the whole target instead", default=False)
            inputs.int("project_id", label="Existing project id (empty: create one)")
            inputs.str("project_title", label="New project title", default="gfn-autolabel review")
            _connection(inputs)
            prefix = ctx.params.get("prefix")
            if prefix:
                _mark(prefix_prop, _problem(lambda: review_view(ctx.target_view(), prefix=prefix, n=None)))
            return types.Property(inputs, view=types.View(label="Send to Label Studio"))

        def execute(self, ctx):
            p = ctx.params
            view = ctx.target_view()

            def work(progress) -> dict[str, Any]:
                return send_to_labelstudio(
                    view,
                    prefix=p.get("prefix") or "gfn",
                    n=None if p.get("whole_view") else int(p.get("n") or 10),
                    url=p.get("url") or None,
                    api_key=p.get("api_key") or None,
                    project_id=p.get("project_id") or None,
                    project_title=p.get("project_title") or None,
                    progress=progress,
                )

            return run_work(ctx, work, _sent_outputs, reload=False)

        def resolve_output(self, ctx) -> types.Property:
            return _sent_outputs(getattr(ctx, "results", None) or {})

    class FetchFromLabelStudio(foo.Operator):
        """The corrected masks of a Label Studio project back as a human-mask field."""

        @property
        def config(self) -> foo.OperatorConfig:
            return foo.OperatorConfig(
                name="fetch_from_labelstudio",
                label="GFN: bring corrected masks back from Label Studio",
                description="Writes each task's latest annotation as a Segmentation field (fixed labels "
                "for the next auto_label run)",
                icon="download",
                dynamic=True,
                execute_as_generator=True,
                allow_immediate_execution=True,
            )

        def resolve_input(self, ctx) -> types.Property:
            inputs = types.Object()
            if ctx.dataset is None:
                return _no_dataset(inputs)
            inputs.int("project_id", label="Label Studio project id", required=True)
            field_prop = inputs.str("human_field", label="Human-mask field", default=DEFAULT_HUMAN_FIELD)
            inputs.bool("overwrite", label="Overwrite the field's masks of annotated samples", default=False)
            _connection(inputs)
            field = ctx.params.get("human_field") or DEFAULT_HUMAN_FIELD
            if field in ctx.dataset.get_field_schema() and not ctx.params.get("overwrite"):
                _mark(field_prop, f"field {field!r} exists: tick Overwrite or choose another name")
            return types.Property(inputs, view=types.View(label="Bring corrected masks back"))

        def execute(self, ctx):
            p = ctx.params
            dataset = ctx.dataset

            def work(progress) -> dict[str, Any]:
                return fetch_from_labelstudio(
                    dataset,
                    project_id=int(p["project_id"]),
                    human_field=p.get("human_field") or DEFAULT_HUMAN_FIELD,
                    url=p.get("url") or None,
                    api_key=p.get("api_key") or None,
                    overwrite=bool(p.get("overwrite")),
                    progress=progress,
                )

            return run_work(ctx, work, _fetched_outputs)

        def resolve_output(self, ctx) -> types.Property:
            return _fetched_outputs(getattr(ctx, "results", None) or {})

    return SendToLabelStudio, FetchFromLabelStudio


def operators() -> tuple[type, ...]:
    """``(SendToLabelStudio, FetchFromLabelStudio)``, registered by the plugin's ``register``."""
    global _OPERATORS
    if _OPERATORS is None:
        _OPERATORS = _operators()
    return _OPERATORS


_OPERATORS: tuple[type, ...] | None = None
