"""The configured dataset and its loader: one entry point each, as the loops need them."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, DistributedSampler

from fame_aug.contrib.moco.config import RunConfig, needs_synthetic_dataset
from fame_aug.contrib.moco.distributed import World
from fame_aug.data.background_bias import make_background_bias_dataset
from fame_aug.data.datasets import HMDB51, UCF101, KineticsFolder, VideoClipDataset, VideoList, collate_clips
from fame_aug.data.datasets.splits import DuplicateVideoWarning, check_disjoint
from fame_aug.data.decode import VideoDecodeError, open_video
from fame_aug.data.sampling import ClipSampler, finetune_sampler

__all__ = ["available_cpus", "build_dataset", "build_loader", "check_test_split", "report_unreadable"]

logger = logging.getLogger(__name__)


# ``cache: auto`` keeps a dataset in memory when its decoded frames are estimated below this.
AUTO_CACHE_BYTES = 2**30


def build_dataset(config: RunConfig, train: bool, sampler: ClipSampler) -> VideoClipDataset:
    """The training or test split of the configured dataset."""
    dataset = _open_dataset(config, train, sampler)
    if config.cache == "auto" and not dataset.cache:
        dataset.cache = _estimated_bytes(dataset) < AUTO_CACHE_BYTES
    if dataset.cache:
        dataset.preload()  # before any DataLoader worker starts: the workers share the frames
    return dataset


def check_test_split(config: RunConfig) -> None:
    """Read and check the test split's files (its videos exist, its classes are the training set's) without decoding.

    Pretraining reads only the training split; it checks the test split too, where the dataset
    has one (a Kinetics ``val`` folder, a ``test_list``), so that a broken split file is found
    before the run, not by the evaluation after it.
    """
    if config.dataset == "kinetics" and not (Path(config.data_root) / "val").is_dir():
        return
    if config.dataset == "list":  # the training split's build has loaded the test list (to compare them)
        return
    _open_dataset(config, train=False, sampler=finetune_sampler(config.num_frames, config.stride))


def _estimated_bytes(dataset: VideoClipDataset, sample: int = 8) -> float:
    """The decoded size of ``dataset`` at its frame size, from the frame counts of up to ``sample`` videos.

    Infinite when it cannot tell (a frame size that keeps the aspect ratio, or unreadable videos).
    """
    size = dataset.frame_size
    if not isinstance(size, tuple):
        return float("inf")
    picked = np.linspace(0, len(dataset) - 1, min(sample, len(dataset))).round().astype(int)
    try:
        frames = [open_video(dataset.videos[i][0], dataset.reader).num_frames for i in picked]
    except (VideoDecodeError, OSError, ValueError):
        return float("inf")
    return float(np.mean(frames)) * len(dataset) * size[0] * size[1] * 3


def _open_dataset(config: RunConfig, train: bool, sampler: ClipSampler) -> VideoClipDataset:
    cache = config.cache == "memory" or (config.cache == "auto" and config.dataset == "synthetic")
    options: dict[str, Any] = {
        "sampler": sampler,
        "frame_size": tuple(config.frame_size),
        "seed": config.seed,
        "cache": cache,
        "reader": config.reader,
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
    listing, other = (config.train_list, config.test_list) if train else (config.test_list, config.train_list)
    if not listing:
        raise ValueError(f"dataset 'list' needs {'train_list' if train else 'test_list'}")
    dataset = VideoList(listing, **options)
    if other:
        with warnings.catch_warnings():  # the other list warns of its own repeats when it is loaded
            warnings.simplefilter("ignore", DuplicateVideoWarning)
            theirs = [path for path, _ in VideoList(other).videos]
        mine = [path for path, _ in dataset.videos]
        check_disjoint(*((mine, theirs) if train else (theirs, mine)), config.train_list, config.test_list)
    return dataset


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def build_loader(
    dataset: VideoClipDataset, config: RunConfig, world: World, train: bool, batch_size: int | None = None
) -> DataLoader:
    """A loader of this process's share of ``dataset``; ``batch_size`` is the global batch."""
    total = batch_size or config.batch_size
    if total % world.size:
        raise ValueError(f"batch size {total} must be a multiple of the number of processes {world.size}")
    sampler: DistributedSampler | None = None
    if world.distributed:
        sampler = DistributedSampler(dataset, shuffle=train, seed=config.seed)
    return DataLoader(
        dataset,
        batch_size=total // world.size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=min(config.workers, available_cpus()),  # more workers than CPUs only compete
        collate_fn=collate_clips,
        pin_memory=world.device.type == "cuda",
        drop_last=False,
    )


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
