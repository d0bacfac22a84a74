"""torch's intra-op threads for one block of work, restored afterwards (torch imported only when set)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Set torch's intra-op threads to ``n`` for the block and restore them afterwards.

    ``None`` leaves torch's setting alone (and does not import torch).
    """
    if n is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
