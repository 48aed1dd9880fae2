"""The little that distributed training needs: start-up, gathering, and batch shuffling for BN.

Runs unchanged as one process (CPU or one GPU) and under ``torchrun --nproc_per_node N``
(gloo on CPU, NCCL on GPU): every helper is the identity when the world has one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["World", "all_gather_no_grad", "all_gather_padded", "init_world", "shuffled_forward", "wrap_distributed"]


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes, on ``device``."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.size > 1


def init_world(device: str = "auto") -> World:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Args:
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            Under torchrun each process takes the GPU of its local rank.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    wanted = torch.device(device)
    if wanted.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available")
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        if wanted.type == "cuda" and wanted.index is not None:
            torch.cuda.set_device(wanted)
        return World(device=wanted)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if wanted.type == "cuda":
        wanted = torch.device("cuda", local_rank)
        torch.cuda.set_device(wanted)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if wanted.type == "cuda" else "gloo")
    return World(rank=rank, size=size, local_rank=local_rank, device=wanted)


def all_gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0 (equal shapes; no gradient)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


@torch.no_grad()
def shuffled_forward(module: torch.nn.Module, batch: torch.Tensor, splits: int = 1) -> torch.Tensor:
    """``module(batch)`` with its batch-norm statistics computed over shuffled sub-batches.

    The key encoder of MoCo must not see a query's own sub-batch in its batch-norm statistics,
    or it can cheat ("shuffle BN", He et al. 2020). Across processes, the gathered batch is
    permuted (the permutation comes from rank 0) and each process encodes its share; in one
    process, the batch is permuted and encoded in ``splits`` chunks. Outputs come back in the
    input order.
    """
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if distributed:
        full = all_gather_no_grad(batch)
        order = torch.randperm(full.shape[0], device=full.device)
        dist.broadcast(order, src=0)
        rank, share = dist.get_rank(), batch.shape[0]
        mine = order[rank * share : (rank + 1) * share]
        encoded = all_gather_no_grad(module(full[mine]))
        restored = torch.empty_like(encoded)
        restored[order] = encoded
        return restored[rank * share : (rank + 1) * share]
    if splits <= 1 or batch.shape[0] < 2 * splits:
        return module(batch)
    order = torch.randperm(batch.shape[0], device=batch.device)
    encoded = torch.cat([module(chunk) for chunk in batch[order].chunk(splits)])
    restored = torch.empty_like(encoded)
    restored[order] = encoded
    return restored


def wrap_distributed(model: nn.Module, world: World) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several processes."""
    if not world.distributed:
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[world.device] if world.device.type == "cuda" else None
    )


def all_gather_padded(values: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather rows and their video indices from every process, even when batch sizes differ."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values, indices
    size = torch.tensor([values.shape[0]], device=values.device)
    largest = int(all_gather_no_grad(size).max())
    padded = torch.zeros(largest, values.shape[1], device=values.device, dtype=values.dtype)
    padded[: values.shape[0]] = values
    padded_indices = torch.full((largest,), -1, device=indices.device, dtype=indices.dtype)
    padded_indices[: indices.shape[0]] = indices
    gathered, gathered_indices = all_gather_no_grad(padded), all_gather_no_grad(padded_indices)
    keep = gathered_indices >= 0
    return gathered[keep], gathered_indices[keep]
