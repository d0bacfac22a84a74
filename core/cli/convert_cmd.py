"""``gfn-autolabel convert SRC DST --to {coco,voc,png}``: convert masks between formats.

SRC is a folder of PNG masks, a COCO JSON or a VOC root (detected). ``--images DIR`` gives the
pictures where the output needs them (VOC copies them; COCO takes file names and checks sizes);
a COCO or VOC source already knows its pictures.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from core.classmap import ClassMap
from core.data.dataset import Dataset, Sample

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert",
        help="convert masks between COCO JSON, PASCAL VOC and PNG folders",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", help="a folder of PNG masks, a COCO .json, or a VOC root")
    p.add_argument("dst", help="output: a .json file (coco), a root folder (voc), a mask folder (png)")
    p.add_argument("--to", required=True, choices=("coco", "voc", "png"), help="output format")
    p.add_argument("--images", metavar="DIR", help="folder of the pictures (needed for --to voc from PNG masks)")
    p.add_argument("--polygons", action="store_true", help="COCO polygons instead of RLE (holes kept by slits)")
    p.add_argument(
        "--coco-instances",
        choices=("class", "parts"),
        default="class",
        help="COCO: one annotation per image and class (default) or one per connected part",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="VOC: share of the images listed in val.txt (default 0.2); the output loads in "
        "torchvision.datasets.VOCSegmentation(DST, year='2012', image_set='train'|'val'|'trainval')",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--classes", metavar="JSON", help="class map {index: name} (for PNG masks without classes.json)")
    return p


def _infer_classmap(masks) -> ClassMap:
    """Generic names ``class_1``... for the largest index found in ``masks`` (reads them all)."""
    from core.classmap import present_classes

    top = max((max(present_classes(masks[s]), default=0) for s in masks), default=0)
    log.warning("no class map for these masks (pass --classes classes.json); using class_1..class_%d", top)
    return ClassMap.from_names([f"class_{i}" for i in range(1, max(top, 1) + 1)])


def _dataset_for(kind: str, path: Path, stems: list[str], cmap: ClassMap, images: str | None) -> Dataset | None:
    """The pictures of ``stems`` (not opened yet), or ``None`` when nothing says where they are."""
    from core.io.images import list_images

    if images is not None:
        files = {p.stem: p for p in list_images(images)}
        missing = [s for s in stems if s not in files]
        if missing:
            raise ValueError(
                f"{len(missing)} mask(s) have no picture in {images}: {missing[:10]}"
                f"{' ...' if len(missing) > 10 else ''}"
            )
        return Dataset(tuple(Sample(stem=s, image_path=files[s]) for s in stems), cmap)
    if kind == "coco":
        from core.data.coco_file import parse_coco
        from core.data.read_coco import coco_image_path, coco_image_root

        coco = parse_coco(path)
        root = coco_image_root(coco, None)
        by_stem = dict(zip(coco.stems(), coco.images))
        return Dataset(tuple(Sample(stem=s, image_path=coco_image_path(coco, by_stem[s], root)) for s in stems), cmap)
    if kind == "voc":
        from core.data.read_voc import voc_image_path

        return Dataset(tuple(Sample(stem=s, image_path=voc_image_path(path, s)) for s in stems), cmap)
    return None


def run(args) -> int:
    from core.cli import CLIError
    from core.cli.progress import ProgressBars
    from core.data.classes import load_classes
    from core.formats import detect_mask_source, export_masks, load_masks
    from core.formats.remap import remap_masks

    kind, path = detect_mask_source(args.src)
    masks, cmap = load_masks(path)
    given = load_classes(args.classes)
    if given is not None:
        if cmap is not None and cmap != given:
            masks = remap_masks(masks, cmap, given)
        cmap = given
    if cmap is None:
        cmap = _infer_classmap(masks)
    dataset = _dataset_for(kind, path, list(masks), cmap, args.images)
    if dataset is None and args.to == "voc":
        raise CLIError("--to voc copies the pictures: pass --images DIR")
    with ProgressBars() as bars:
        out = export_masks(
            masks,
            dataset if dataset is not None else cmap,
            args.dst,
            to=args.to,
            polygons=args.polygons,
            instances=args.coco_instances,
            val_fraction=args.val_fraction,
            overwrite=args.overwrite,
            progress=bars,
        )
    print(f"wrote {len(masks)} masks ({kind} -> {args.to}) to {out}")
    return 0
