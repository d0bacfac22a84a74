"""Datasets (images, image-level labels, optional ground-truth masks) and the readers of their files.

Imports nothing from ``core.formats`` (which builds on this package).
"""

from core.data.dataset import Dataset, Sample

__all__ = ["Dataset", "Sample"]
