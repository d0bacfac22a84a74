"""Our COCO export read by FiftyOne's own COCO importer: one detection per (image, class), the
annotation's ``score`` as its confidence, masks that paint back the class masks.

FiftyOne runs in a subprocess pointed at a temporary database, so it never touches the user's
datasets and does not depend on which test imported FiftyOne first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.data.example import make_example
from core.formats import export_masks

ROOT = Path(__file__).resolve().parents[1]

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import fiftyone as fo

    images, labels, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    d = fo.Dataset.from_dir(
        dataset_type=fo.types.COCODetectionDataset, data_path=images, labels_path=labels,
        label_types=["segmentations"],
    )
    targets = {i: n for i, n in enumerate(names) if i}
    out = {}
    for s in d.iter_samples():
        dets = s["ground_truth"]
        h, w = s.metadata.height, s.metadata.width
        seg = dets.to_segmentation(frame_size=(w, h), mask_targets=targets)
        out[s.filepath.rsplit("/", 1)[1]] = {
            "labels": [x.label for x in dets.detections],
            "confidence": [x.confidence for x in dets.detections],
            "mask": seg.mask.tolist(),
        }
    print("RESULT" + json.dumps(out))
    """
)


def test_fiftyone_coco_importer_reads_one_detection_per_class_with_its_score(tmp_path):
    ds = make_example(tmp_path / "ex", n=6, size=48)
    masks = {s.stem: s.load_mask() for s in ds}
    scores = {s: 0.1 * (i + 1) for i, s in enumerate(masks)}
    out = export_masks(masks, ds, tmp_path / "coco.json", to="coco", image_scores=scores)
    env = {
        **os.environ,
        "FIFTYONE_DATABASE_DIR": str(tmp_path / "db"),
        "FIFTYONE_DEFAULT_DATASET_DIR": str(tmp_path / "datasets"),
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "PYTHONPATH": str(ROOT),
    }
    names = json.dumps(list(ds.classmap.names))
    args = [sys.executable, "-c", _SCRIPT, str(ds[0].image_path.parent), str(out), names]
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.split("RESULT", 1)[1])
    assert sorted(got) == sorted(f"{s}.png" for s in masks)
    for stem, m in masks.items():
        g = got[f"{stem}.png"]
        classes = [ds.classmap.names[int(c)] for c in np.unique(m) if c not in (0, 255)]
        assert sorted(g["labels"]) == sorted(classes)  # one detection per class, all its parts in it
        assert g["confidence"] == [pytest.approx(scores[stem])] * len(classes)
        back = np.array(g["mask"], dtype=np.uint8)
        assert back.shape == m.shape
        assert (back == m).mean() >= 0.98  # FiftyOne crops each mask to its rounded box
