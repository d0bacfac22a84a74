"""Datasets: images + image-level labels + optional ground-truth masks."""

from core.data.dataset import Dataset, Sample

__all__ = ["Dataset", "Sample"]
