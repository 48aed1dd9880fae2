"""Plumbing the loops share, kept out of their way: data, schedule, run folder, progress, evaluation."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from fame_aug.contrib.moco.checkpoint import (
    NonFiniteState,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from fame_aug.contrib.moco.config import RunConfig
from fame_aug.contrib.moco.distributed import World, all_gather_no_grad
from fame_aug.data import (
    HMDB51,
    UCF101,
    ClipSampler,
    KineticsFolder,
    VideoClipDataset,
    VideoList,
    collate_clips,
    make_background_bias_dataset,
)
from fame_aug.data.presets import ClipAugmentation

__all__ = [
    "Progress",
    "RunFolder",
    "TrainingDiverged",
    "autocast",
    "begin_epoch",
    "build_dataset",
    "build_loader",
    "build_optimizer",
    "checked_loss",
    "clip_outputs",
    "lr_at",
    "resume_into",
    "save_if_due",
    "seed_everything",
    "train_classifier",
    "wrap_distributed",
]


class TrainingDiverged(RuntimeError):
    """The loss or the training state became NaN or infinite; the last good checkpoint is kept."""


# Config keys that decide the shapes of a run's model and optimiser state: a checkpoint made with
# others cannot be resumed.
_MODEL_KEYS = ("backbone", "backbone_width", "moco_dim", "queue_size", "dataset", "optimizer")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed torch (all devices), numpy and Python; optionally make algorithms deterministic."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


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


def build_dataset(config: RunConfig, train: bool, sampler: ClipSampler) -> VideoClipDataset:
    """The training or test split of the configured dataset."""
    dataset = _open_dataset(config, train, sampler)
    if dataset.cache:
        dataset.preload()  # before any DataLoader worker starts: the workers share the frames
    return dataset


def _open_dataset(config: RunConfig, train: bool, sampler: ClipSampler) -> VideoClipDataset:
    cache = config.cache == "memory" or (config.cache == "auto" and config.dataset == "synthetic")
    options: dict[str, Any] = {
        "sampler": sampler,
        "frame_size": tuple(config.frame_size),
        "seed": config.seed,
        "cache": cache,
    }
    root = Path(config.data_root)
    if config.dataset == "synthetic":
        if not (root / "metadata.json").is_file():
            make_background_bias_dataset(root)
        return UCF101(root / "videos", root / "splits", split=1, train=train, **options)
    split_dir = config.split_dir or None
    if config.dataset == "ucf101":
        return UCF101(root, split_dir, split=config.split, train=train, **options)
    if config.dataset == "hmdb51":
        return HMDB51(root, split_dir, split=config.split, train=train, **options)
    if config.dataset == "kinetics":
        classes = (
            sorted(p.name for p in (root / "train").iterdir() if p.is_dir()) if (root / "train").is_dir() else None
        )
        return KineticsFolder(root, "train" if train else "val", classes=classes, **options)
    listing = config.train_list if train else config.test_list
    if not listing:
        raise ValueError(f"dataset 'list' needs {'train_list' if train else 'test_list'}")
    return VideoList(listing, **options)


def build_optimizer(parameters: Iterable[nn.Parameter], config: RunConfig) -> torch.optim.Optimizer:
    """The configured optimiser: SGD with momentum (the published recipe) or AdamW."""
    parameters = list(parameters)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def build_loader(
    dataset: VideoClipDataset, config: RunConfig, world: World, train: bool, batch_size: int | None = None
) -> DataLoader:
    """A loader of this process's share of ``dataset``; ``batch_size`` is the global batch."""
    total = batch_size or config.batch_size
    if total % world.size:
        raise ValueError(f"batch size {total} must be a multiple of the number of processes {world.size}")
    sampler = DistributedSampler(dataset, shuffle=train, seed=config.seed) if world.distributed else None
    return DataLoader(
        dataset,
        batch_size=total // world.size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate_clips,
        pin_memory=world.device.type == "cuda",
        drop_last=False,
    )


class Progress:
    """A console progress bar with loss, learning rate and clips/s; plain lines when not a terminal."""

    def __init__(self, total: int, label: str, world: World, every: int = 10) -> None:
        self.total, self.label, self.enabled = total, label, world.is_main
        self.every, self.tty = every, sys.stderr.isatty()
        self.begin, self.clips = time.perf_counter(), 0

    def update(self, index: int, clips: int, **values: float) -> None:
        """Count ``clips`` more after batch ``index`` and show ``values`` (e.g. loss, lr)."""
        self.clips += clips
        if not self.enabled or (not self.tty and index % self.every and index != self.total):
            return
        rate = self.clips / max(time.perf_counter() - self.begin, 1e-9)
        done = int(20 * index / max(self.total, 1))
        shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        text = f"{self.label} [{'=' * done}{' ' * (20 - done)}] {index}/{self.total} {shown} {rate:.1f} clips/s"
        end = "" if self.tty and index != self.total else "\n"
        print(("\r" if self.tty else "") + text, end=end, file=sys.stderr, flush=True)

    @property
    def clips_per_second(self) -> float:
        """Clips per second since the bar started."""
        return self.clips / max(time.perf_counter() - self.begin, 1e-9)


class RunFolder:
    """The run's folder: config.json, metrics.csv (one row per epoch), checkpoint.pt, TensorBoard.

    Only the main process writes. Checkpoints are atomic; on resume, metrics rows of epochs the
    checkpoint does not cover are dropped, so the CSV matches the state.
    """

    def __init__(self, config: RunConfig, world: World, checkpoints: bool = True) -> None:
        self.path, self.world, self.config = Path(config.out), world, config
        self.checkpoint = self.path / "checkpoint.pt"
        self.metrics = self.path / "metrics.csv"
        self.writer: Any = None
        if world.is_main:
            self.path.mkdir(parents=True, exist_ok=True)
            if checkpoints and not config.resume and self.checkpoint.exists():
                raise ValueError(f"{self.checkpoint} exists: pass --resume to continue it, or choose another --out")
            (self.path / "config.json").write_text(json.dumps(asdict(config), indent=2))
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.path / "tensorboard"))
            except Exception:  # tensorboard is optional
                self.writer = None

    def resume(self) -> dict[str, Any] | None:
        """The checkpoint to continue from, if ``resume`` is set and one exists.

        Raises:
            ValueError: naming the file, if the checkpoint is not this run's (another model, a
                damaged or foreign file) or ``metrics.csv`` is damaged.
        """
        if not self.config.resume:
            return None
        if not self.checkpoint.is_file():
            raise ValueError(f"--resume: no checkpoint at {self.checkpoint}")
        state = load_checkpoint(self.checkpoint, self.world.device)
        missing = sorted({"model", "optimizer", "epoch", "step", "rng", "config"} - set(state))
        if missing:
            raise ValueError(f"{self.checkpoint} is not a fame-aug training checkpoint (it lacks {missing})")
        epoch, step = state["epoch"], state["step"]
        if not (isinstance(epoch, int) and isinstance(step, int) and 0 <= epoch <= self.config.epochs and step >= 0):
            raise ValueError(
                f"{self.checkpoint}: epoch {epoch!r} and step {step!r} cannot be resumed to {self.config.epochs} epochs"
            )
        stored = state["config"] if isinstance(state["config"], dict) else {}
        now = asdict(self.config)
        changed = [k for k in _MODEL_KEYS if k in now and k in stored and stored[k] != now[k]]
        if changed:
            details = ", ".join(f"{k} {stored[k]!r} -> {now[k]!r}" for k in changed)
            raise ValueError(f"{self.checkpoint} was trained with other model settings ({details}); use another --out")
        if self.world.is_main and self.metrics.is_file():
            try:
                rows = list(csv.DictReader(self.metrics.open()))
                kept = [r for r in rows if int(r["epoch"]) < epoch]
            except (ValueError, KeyError, TypeError, csv.Error) as error:
                raise ValueError(f"{self.metrics} is damaged ({error}); repair or delete it to resume") from None
            self._write_rows(kept)
        return state

    def kept(self) -> str:
        """What the run leaves behind when it stops early: the last good checkpoint, if there is one."""
        if self.checkpoint.is_file():
            return f"The last good checkpoint is kept at {self.checkpoint}"
        return "No checkpoint had been written yet"

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            self.metrics.unlink(missing_ok=True)
            return
        with self.metrics.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def log_epoch(self, epoch: int, values: dict[str, float]) -> None:
        """Append one row to metrics.csv (and TensorBoard)."""
        if not self.world.is_main:
            return
        row = {"epoch": epoch, **values}
        new = not self.metrics.is_file()
        with self.metrics.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, epoch)
            self.writer.flush()

    def save(self, state: dict[str, Any]) -> None:
        """Write the checkpoint (main process), with the random states of this process."""
        if self.world.is_main:
            try:
                save_checkpoint(self.checkpoint, {**state, "rng": capture_rng_state(), "config": asdict(self.config)})
            except NonFiniteState as error:
                raise TrainingDiverged(
                    f"the training state became non-finite; checkpoint {error}. {self.kept()}"
                ) from None

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        """Write ``data`` as ``name`` in the run folder (main process)."""
        path = self.path / name
        if self.world.is_main:
            path.write_text(json.dumps(data, indent=2))
        return path


def wrap_distributed(model: nn.Module, world: World) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several processes."""
    if not world.distributed:
        return model
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[world.device] if world.device.type == "cuda" else None
    )


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
        dataset.generator().bit_generator.state = state["dataset_rng"]
    return state["epoch"], state["step"]


def begin_epoch(optimizer: torch.optim.Optimizer, loader: DataLoader, epoch: int, config: RunConfig) -> float:
    """Set the epoch's learning rate (and the distributed sampler's epoch); returns the rate."""
    lr = lr_at(epoch, config)
    for group in optimizer.param_groups:
        group["lr"] = lr
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    return lr


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
    sampler_state = dataset.generator().bit_generator.state if config.workers == 0 else None
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


def train_classifier(
    model: nn.Module,
    trained: nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: VideoClipDataset,
    augment: ClipAugmentation,
    config: RunConfig,
    world: World,
    run: RunFolder,
    label: str,
) -> dict[str, float]:
    """The supervised epochs of fine-tuning and of the linear probe (cross-entropy on one clip per video).

    Args:
        model: the network called on clips (possibly wrapped for distributed training).
        trained: the part whose weights are checkpointed (the whole model, or the probe's classifier).
        optimizer: its optimiser.
        dataset: training videos.
        augment: the clip augmentation.
        config: the run's configuration.
        world: this process.
        run: the run folder.
        label: name shown in the progress bar.

    Returns:
        The last epoch's metrics.
    """
    loader = build_loader(dataset, config, world, train=True)
    start_epoch, step = resume_into(run, trained, optimizer, dataset)
    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, config.epochs):
        lr = begin_epoch(optimizer, loader, epoch, config)
        model.train()
        progress = Progress(len(loader), f"{label} {epoch + 1}/{config.epochs}", world)
        began, total_loss, correct, seen = time.perf_counter(), 0.0, 0, 0
        for index, (clips, labels, _) in enumerate(loader, 1):
            video = augment(clips[:, 0].to(world.device, non_blocking=True))
            labels = labels.to(world.device, non_blocking=True)
            with autocast(config, world):
                logits = model(video)
            loss = F.cross_entropy(logits.float(), labels)
            loss_value = checked_loss(loss, epoch, index, run)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            total_loss += loss_value
            correct += int((logits.argmax(dim=1) == labels).sum())
            seen += labels.shape[0]
            progress.update(index, clips.shape[0], loss=loss_value, lr=lr)
        metrics = {
            "loss": total_loss / len(loader),
            "train_top1": correct / max(seen, 1),
            "lr": lr,
            "clips_per_s": progress.clips_per_second * world.size,
            "seconds": time.perf_counter() - began,
        }
        run.log_epoch(epoch, metrics)
        save_if_due(run, config, epoch, step, trained, optimizer, dataset, classes=dataset.classes)
    return metrics


@torch.no_grad()
def clip_outputs(
    forward: Callable[[torch.Tensor], torch.Tensor],
    dataset: VideoClipDataset,
    augment: ClipAugmentation,
    config: RunConfig,
    world: World,
    label: str = "evaluate",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-video outputs averaged over the video's clips (the evaluation protocol).

    ``forward`` maps (N, 3, T, H, W) clips to (N, D) outputs. Every process evaluates its share
    and the results are gathered.

    Returns:
        ``(outputs (V, D), labels (V,), valid (V,) bool)`` for the V videos of ``dataset``;
        ``valid`` is False for videos skipped as unreadable.
    """
    loader = build_loader(dataset, config, world, train=False, batch_size=config.eval_batch_size * world.size)
    progress = Progress(len(loader), label, world)
    results: torch.Tensor | None = None
    seen = torch.zeros(len(dataset), dtype=torch.bool, device=world.device)
    for index, (clips, _, videos) in enumerate(loader, 1):
        clips = clips.to(world.device, non_blocking=True)
        with autocast(config, world):
            out = forward(augment(clips).flatten(0, 1)).float()
        per_video = out.view(clips.shape[0], clips.shape[1], -1).mean(dim=1)
        videos = videos.to(world.device)
        per_video, videos = all_gather_padded(per_video, videos)
        if results is None:
            results = torch.zeros(len(dataset), per_video.shape[1], device=world.device)
        results[videos] = per_video
        seen[videos] = True
        progress.update(index, clips.shape[0] * clips.shape[1])
    assert results is not None
    broken = int((~torch.isfinite(results[seen])).any(dim=1).sum())  # once per evaluation, not per step
    if broken:
        source = getattr(config, "pretrained", "") or config.out
        raise ValueError(
            f"{label}: the model's outputs are NaN or infinite for {broken} of {int(seen.sum())} videos; "
            f"the weights ({source}) are not usable (a diverged or damaged checkpoint?)"
        )
    labels = torch.tensor(dataset.labels, device=world.device)
    return results, labels, seen


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
