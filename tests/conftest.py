"""Shared test set-up: the repository root on sys.path, CPU-only, quiet threads."""

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
