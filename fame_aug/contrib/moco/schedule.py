"""The optimiser and its learning-rate schedule: warm-up, then steps or a cosine."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from fame_aug.contrib.moco.config import RunConfig

__all__ = ["begin_epoch", "build_optimizer", "lr_at"]


def build_optimizer(parameters: Iterable[nn.Parameter], config: RunConfig) -> torch.optim.Optimizer:
    """The configured optimiser: SGD with momentum (the published recipe) or AdamW."""
    parameters = list(parameters)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def lr_at(epoch: int, config: RunConfig) -> float:
    """Learning rate of an epoch.

    A linear warm-up over ``warmup_epochs``, then steps at ``milestones`` (x ``gamma``) or a
    cosine to zero over the remaining epochs.
    """
    warmup = config.warmup_epochs  # never clipped to a short run: 1 + 2 resumed epochs must equal 3
    if epoch < warmup:
        return config.lr * (epoch + 1) / (warmup + 1)
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / (config.epochs - warmup)))
    return config.lr * config.gamma ** sum(epoch >= m for m in config.milestones)


def begin_epoch(optimizer: torch.optim.Optimizer, loader: DataLoader, epoch: int, config: RunConfig) -> float:
    """Set the epoch's learning rate (and the distributed sampler's epoch); returns the rate."""
    lr = lr_at(epoch, config)
    for group in optimizer.param_groups:
        group["lr"] = lr
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    return lr
