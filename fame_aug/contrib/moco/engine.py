"""The training loop every command shares, given what one step does; and what the loop needs."""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fame_aug.contrib.moco.checkpoint import restore_rng_state
from fame_aug.contrib.moco.config import RunConfig
from fame_aug.contrib.moco.console import Progress
from fame_aug.contrib.moco.distributed import World
from fame_aug.contrib.moco.loaders import build_loader, report_unreadable
from fame_aug.contrib.moco.run_folder import RunFolder, TrainingDiverged
from fame_aug.contrib.moco.schedule import begin_epoch
from fame_aug.data import VideoClipDataset
from fame_aug.data.presets import ClipAugmentation

__all__ = [
    "Step",
    "autocast",
    "checked_loss",
    "classification_step",
    "resume_into",
    "save_if_due",
    "seed_everything",
    "train",
]

logger = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed torch (all devices), numpy and Python; optionally make algorithms deterministic."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def autocast(config: RunConfig, world: World) -> torch.autocast:
    """bfloat16 autocast for the network when ``config.amp`` is set on CUDA; a no-op otherwise."""
    return torch.autocast(world.device.type, dtype=torch.bfloat16, enabled=config.amp and world.device.type == "cuda")


def resume_into(
    run: RunFolder, trained: nn.Module, optimizer: torch.optim.Optimizer, dataset: VideoClipDataset
) -> tuple[int, int]:
    """Load the run's checkpoint into ``trained`` and ``optimizer`` and restore every random state.

    Returns:
        ``(epoch, step)`` to continue from; ``(0, 0)`` for a new run.
    """
    state = run.resume()
    if state is None:
        return 0, 0
    try:
        trained.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, ValueError) as error:
        reason = str(error).splitlines()[0]
        raise ValueError(f"{run.checkpoint} does not fit this run's model ({reason})") from None
    restore_rng_state(state["rng"])
    if state.get("dataset_rng") is not None:
        dataset.rng().bit_generator.state = state["dataset_rng"]
    return state["epoch"], state["step"]


def checked_loss(loss: torch.Tensor, epoch: int, index: int, run: RunFolder) -> float:
    """The loss as a float; stops the run with :class:`TrainingDiverged` if it is NaN or infinite."""
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingDiverged(f"the loss became {value} at epoch {epoch + 1}, step {index}; stopped. {run.kept()}")
    return value


def save_if_due(
    run: RunFolder,
    config: RunConfig,
    epoch: int,
    step: int,
    trained: nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: VideoClipDataset,
    **extra: Any,
) -> None:
    """Checkpoint after ``epoch`` every ``save_every`` epochs and after the last one."""
    if (epoch + 1) % config.save_every and epoch + 1 != config.epochs:
        return
    sampler_state = dataset.rng().bit_generator.state if config.workers == 0 else None
    run.save(
        {
            "model": trained.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch + 1,
            "step": step,
            "dataset_rng": sampler_state,  # with workers, their seeds follow torch's generator
            **extra,
        }
    )


# What one training step does: (clips (B, N, T, H, W, 3) uint8, labels (B,)) on the device -> the
# loss to minimise and the batch's sums of any other numbers to report (divided by the videos seen).
# The step augments the clips (in float32) and runs the network under ``autocast``.
Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def train(
    step: Step,
    model: nn.Module,
    trained: nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: VideoClipDataset,
    config: RunConfig,
    world: World,
    run: RunFolder,
    label: str,
    **checkpoint_extra: Any,
) -> dict[str, float]:
    """Train for the configured epochs, resuming from the run's checkpoint; the one loop of every command.

    Each epoch sets the learning rate, runs ``step`` on every batch and the optimiser on its
    loss, logs one line and one metrics row, and checkpoints when due.

    Args:
        step: what one step computes (see ``Step``): MoCo's contrastive loss, or cross-entropy.
        model: the network ``step`` calls (possibly wrapped for distributed training), put in
            training mode each epoch.
        trained: the part whose weights are checkpointed (the whole model, or the probe's classifier).
        optimizer: its optimiser.
        dataset: training videos.
        config: the run's configuration.
        world: this process.
        run: the run folder.
        label: the name shown in the progress bar and the log.
        **checkpoint_extra: more entries for the checkpoint (e.g. the class names).

    Returns:
        The last epoch's metrics (``loss``, the means of what ``step`` reports, ``lr``,
        ``clips_per_s``, ``seconds``, ``bad_videos``) and ``step``, the optimiser steps taken.
    """
    loader = build_loader(dataset, config, world, train=True)
    start_epoch, step_count = resume_into(run, trained, optimizer, dataset)
    run.open()  # everything is validated, the checkpoint included: now the folder is created and held
    metrics: dict[str, float] = {}
    unreadable = 0
    for epoch in range(start_epoch, config.epochs):
        lr = begin_epoch(optimizer, loader, epoch, config)
        model.train()
        began, total_loss, seen = time.perf_counter(), 0.0, 0
        sums: dict[str, torch.Tensor] = {}  # on the device: read once per epoch, not per step
        with Progress(len(loader), f"{label} {epoch + 1}/{config.epochs}", world) as progress:
            for index, (clips, labels, _) in enumerate(loader, 1):
                clips = clips.to(world.device, non_blocking=True)
                labels = labels.to(world.device, non_blocking=True)
                loss, reported = step(clips, labels)
                loss_value = checked_loss(loss, epoch, index, run)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step_count += 1
                total_loss += loss_value
                seen += clips.shape[0]
                for key, value in reported.items():
                    sums[key] = sums[key] + value.detach() if key in sums else value.detach()
                progress.update(index, clips.shape[0] * clips.shape[1], loss=loss_value, lr=lr)
        metrics = {
            "loss": total_loss / len(loader),
            **{key: float(value) / max(seen, 1) for key, value in sums.items()},
            "lr": lr,
            "clips_per_s": progress.clips_per_second * world.size,
            "seconds": time.perf_counter() - began,
            "bad_videos": dataset.num_bad,
        }
        run.log_epoch(epoch, metrics, label)
        if world.is_main:
            unreadable = report_unreadable(dataset, f"{label} {epoch + 1}/{config.epochs}", unreadable)
        save_if_due(run, config, epoch, step_count, trained, optimizer, dataset, **checkpoint_extra)
    return {**metrics, "step": step_count}


def classification_step(model: nn.Module, augment: ClipAugmentation, config: RunConfig, world: World) -> Step:
    """The supervised step of fine-tuning and the linear probe: cross-entropy on one clip per video.

    Reports ``train_top1``, the share of training clips classified right.
    """

    def step(clips: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        video = augment(clips[:, 0])
        with autocast(config, world):
            logits = model(video)
        correct = (logits.argmax(dim=1) == labels).sum()
        return F.cross_entropy(logits.float(), labels), {"train_top1": correct}

    return step
