"""DistributedDataParallel set-up when launched with ``torchrun`` (no code change for the user).

``torchrun --nproc_per_node=N script.py`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; the trainer
then initialises one process group (gloo on CPU, nccl on GPU), wraps the model in DDP and shards
the data with a ``DistributedSampler``. Only rank 0 writes checkpoints and reports progress.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def setup_distributed(device: torch.device) -> DistInfo:
    """Initialise the process group if launched by ``torchrun`` with ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        atexit.register(_destroy)
        log.info("distributed training: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return DistInfo(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0"))
    )


def pick_device(name: str | None) -> torch.device:
    """``None`` = ``cuda:LOCAL_RANK`` when a GPU is available, else CPU."""
    if name is not None:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True if ``flag`` is true on any rank (so all ranks stop at the same step)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def sync_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank, so all end identical."""
    if info.enabled:
        for b in model.buffers():
            dist.broadcast(b, src=0)
