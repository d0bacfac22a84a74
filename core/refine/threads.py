"""``torch_threads(n)``: one implementation, shared with the initial-mask routes."""

from core.initial.common import torch_threads

__all__ = ["torch_threads"]
