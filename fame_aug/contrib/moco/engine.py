"""Plumbing the loops share, kept out of their way: data, schedule, run folder, progress, evaluation.

The loops' console messages (one line per epoch, "resumed from", evaluation results, unreadable
videos) go through :mod:`logging`, to the loggers under ``fame_aug``: the ``fame-aug`` command
shows them on stderr (:func:`log_to_stderr`); in your own program, configure logging (for
example ``logging.basicConfig(level=logging.INFO)``) to see or redirect them.
"""

from __future__ import annotations

import csv
import json
import logging
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
from tqdm import tqdm

from fame_aug.contrib.moco.checkpoint import (
    NonFiniteState,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from fame_aug.contrib.moco.config import RunConfig, needs_synthetic_dataset
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
    "log_to_stderr",
    "lr_at",
    "read_metrics",
    "report_unreadable",
    "resume_into",
    "save_if_due",
    "seed_everything",
    "train_classifier",
    "wrap_distributed",
]


logger = logging.getLogger(__name__)


class _Console(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a message comes (a redirect included)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _ConsoleFormat(logging.Formatter):
    """Messages as the loops would print them; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def log_to_stderr(level: int = logging.INFO) -> logging.Handler:
    """Show fame-aug's messages (``fame_aug`` loggers, ``level`` and above) on stderr, as the command line does.

    Calling it again changes the level and adds no second handler. The handler writes to the
    ``sys.stderr`` of the moment, so ``contextlib.redirect_stderr`` captures the messages too.

    Returns:
        The handler, to remove with ``logging.getLogger("fame_aug").removeHandler(handler)``.
    """
    package = logging.getLogger("fame_aug")
    package.setLevel(level)
    for handler in package.handlers:
        if isinstance(handler, _Console):
            return handler
    handler = _Console()
    handler.setFormatter(_ConsoleFormat("%(message)s"))
    package.addHandler(handler)
    return handler


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
        if needs_synthetic_dataset(root):  # only in the default folder; elsewhere a clear error
            logger.info("making the built-in background-bias dataset in %s (first use)", root)
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
    """The progress of one pass over a loader: a tqdm bar with elapsed time, ETA, loss, lr and clips/s.

    The bar is drawn by the main process only, and only when stderr is a terminal; it clears
    itself when the pass ends, leaving the epoch's one logged line (``RunFolder.log_epoch``),
    which is all a log file or a pipe receives. ``update`` takes numbers the loop already holds
    on the host: it never waits for the device. Use it as a context manager, or call ``close``.
    """

    def __init__(self, total: int, label: str, world: World) -> None:
        self.total, self.label = total, label
        self.begin, self.clips = time.perf_counter(), 0
        shown = world.is_main and sys.stderr.isatty()
        self.bar = tqdm(
            total=total, desc=label, unit="step", leave=False, dynamic_ncols=True, disable=not shown, file=sys.stderr
        )

    def update(self, index: int, clips: int, **values: float) -> None:
        """Count ``clips`` more after batch ``index`` (from 1) and show ``values`` (e.g. loss, lr)."""
        self.clips += clips
        if self.bar.disable:
            return
        shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        self.bar.set_postfix_str(f"{shown} {self.clips_per_second:.1f} clips/s".lstrip(), refresh=False)
        self.bar.update(index - self.bar.n)

    def close(self) -> None:
        """Clear the bar."""
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def seconds(self) -> float:
        """Seconds since the pass started."""
        return time.perf_counter() - self.begin

    @property
    def clips_per_second(self) -> float:
        """Clips per second since the pass started."""
        return self.clips / max(self.seconds, 1e-9)


def read_metrics(path: Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv``, epochs numbered from 1 (as the progress display shows them).

    Files written by fame-aug 0.1.0 numbered epochs from 0; their rows are renumbered.

    Raises:
        ValueError: naming the file, if it is damaged.
    """
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        shift = 1 if rows and int(rows[0]["epoch"]) == 0 else 0
        for row in rows:
            row["epoch"] = str(int(row["epoch"]) + shift)
    except (ValueError, KeyError, TypeError, csv.Error) as error:
        raise ValueError(f"{path} is damaged ({error}); repair or delete it to resume") from None
    return rows


class RunFolder:
    """The run's folder: config.json, metrics.csv (one row per epoch), checkpoint.pt, TensorBoard.

    Only the main process writes. Epochs are numbered from 1 in metrics.csv, TensorBoard and the
    console alike: row N is the Nth epoch, and a checkpoint whose ``epoch`` is N holds rows 1 to
    N. Checkpoints are atomic; on resume, metrics rows of epochs the checkpoint does not cover
    are dropped, so the CSV matches the state.
    """

    def __init__(self, config: RunConfig, world: World, checkpoints: bool = True) -> None:
        self.path, self.world, self.config = Path(config.out), world, config
        self.checkpoint = self.path / "checkpoint.pt"
        self.metrics = self.path / "metrics.csv"
        self.writer: Any = None
        self._epoch_seconds: list[float] = []  # the epochs of this session, for the ETA
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
            self._write_rows([r for r in read_metrics(self.metrics) if int(r["epoch"]) <= epoch])
        if self.world.is_main:
            total = self.config.epochs
            left = f"{total - epoch} more to train" if epoch < total else "nothing left to train"
            logger.info("resumed from %s at epoch %d of %d (step %d); %s", self.checkpoint, epoch, total, step, left)
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

    def log_epoch(self, epoch: int, values: dict[str, float], label: str = "epoch") -> None:
        """Record the epoch of index ``epoch`` (from 0): row ``epoch + 1`` of metrics.csv, TensorBoard, one logged line.

        The line reads ``{label} {epoch + 1}/{epochs}: {values}, {clips/s}, {seconds}, elapsed, ETA``
        (elapsed and the ETA of the run's end count this session's epochs; ``values`` may hold
        ``clips_per_s`` and ``seconds``, shown in their own words).
        """
        if not self.world.is_main:
            return
        number = epoch + 1
        row = {"epoch": number, **values}
        new = not self.metrics.is_file()
        with self.metrics.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.log_scalars(values, number)
        self._epoch_seconds.append(float(values.get("seconds", 0.0)))
        elapsed = sum(self._epoch_seconds)
        remaining = elapsed / len(self._epoch_seconds) * (self.config.epochs - number)
        shown = " ".join(f"{k} {v:.4g}" for k, v in values.items() if k not in ("clips_per_s", "seconds", "bad_videos"))
        timing = [f"{values['clips_per_s']:.1f} clips/s"] if "clips_per_s" in values else []
        timing += [f"{self._epoch_seconds[-1]:.1f} s"] if "seconds" in values else []
        timing += [f"elapsed {tqdm.format_interval(elapsed)}", f"ETA {tqdm.format_interval(remaining)}"]
        logger.info("%s %d/%d: %s | %s", label, number, self.config.epochs, shown, ", ".join(timing))

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        """Write ``values`` to TensorBoard at ``step`` (main process, when tensorboard is installed)."""
        if self.writer is None or not self.world.is_main:
            return
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
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


def report_unreadable(dataset: VideoClipDataset, label: str, before: int = 0) -> int:
    """Log a warning when more of ``dataset``'s videos were skipped as unreadable than ``before``.

    Each skipped video was named in a ``BadVideoWarning`` when it was met; this says how many
    there are, once per epoch or evaluation at most.

    Returns:
        The count now, to pass as ``before`` next time.
    """
    count = dataset.num_bad
    if count > before:
        names = ", ".join(str(path) for path in dataset.bad_videos[:3]) + (", ..." if count > 3 else "")
        logger.warning("%s: %d of %d videos are unreadable and skipped (%s)", label, count, len(dataset), names)
    return count


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
    unreadable = 0
    for epoch in range(start_epoch, config.epochs):
        lr = begin_epoch(optimizer, loader, epoch, config)
        model.train()
        began, total_loss, correct, seen = time.perf_counter(), 0.0, 0, 0
        with Progress(len(loader), f"{label} {epoch + 1}/{config.epochs}", world) as progress:
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
        run.log_epoch(epoch, metrics, label)
        if world.is_main:
            unreadable = report_unreadable(dataset, f"{label} {epoch + 1}/{config.epochs}", unreadable)
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
    results: torch.Tensor | None = None
    seen = torch.zeros(len(dataset), dtype=torch.bool, device=world.device)
    with Progress(len(loader), label, world) as progress:
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
    if world.is_main:
        logger.info(
            "%s: %d videos in %.1f s (%.1f clips/s)", label, len(dataset), progress.seconds, progress.clips_per_second
        )
        report_unreadable(dataset, label)
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
