"""The base of every dataset: labelled videos in, clips out, bad videos skipped and counted."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from fame_aug.data.decode import FrameSize, VideoDecodeError, check_frame_size, open_video
from fame_aug.data.readers import VideoReader, resolve_reader
from fame_aug.data.sampling import ClipSampler, finetune_sampler

__all__ = ["BadVideoWarning", "Item", "VideoClipDataset", "collate_clips"]


class BadVideoWarning(UserWarning):
    """A video skipped because it could not be read."""


Item = tuple[torch.Tensor, int, int]


class VideoClipDataset(Dataset[Item]):
    """Clips of a list of labelled videos; the base of every dataset here.

    Args:
        videos: ``(path, label)`` pairs; a path is a video file or a frame folder.
        classes: class names; labels index them.
        sampler: where clips start (default: one random clip of 16 frames at stride 2).
        frame_size: resize on the CPU, before anything becomes float: ``(H, W)`` covers and
            centre-crops to exactly that size (default ``(128, 171)``, for 112-pixel crops);
            an int sets the short side (shapes then vary with the aspect ratio); None keeps
            the decoded size.
        seed: seed of the main-process rng (workers mix it with their own seed).
        cache: keep every video's decoded frames in memory (see :meth:`preload`).
        reader: how video files are decoded: ``"opencv"`` (default), ``"pyav"`` (``pip install
            fame-aug[pyav]``) or a callable path -> :class:`~fame_aug.data.readers.Video`
            (picklable, for DataLoader workers).
    """

    def __init__(
        self,
        videos: Sequence[tuple[str | Path, int]],
        classes: Sequence[str],
        sampler: ClipSampler | None = None,
        frame_size: FrameSize = (128, 171),
        seed: int | None = None,
        cache: bool = False,
        reader: str | VideoReader = "opencv",
    ) -> None:
        self.reader = resolve_reader(reader)
        self.videos = [(Path(path), int(label)) for path, label in videos]
        self.classes = list(classes)
        if not self.videos:
            raise ValueError("the dataset holds no video")
        bad_labels = [label for _, label in self.videos if not 0 <= label < len(self.classes)]
        if bad_labels:
            raise ValueError(f"labels must lie in [0, {len(self.classes)}), got {sorted(set(bad_labels))[:5]}")
        self.sampler = sampler if sampler is not None else finetune_sampler()
        if not isinstance(self.sampler, ClipSampler):
            raise TypeError(f"sampler must be a ClipSampler, got {type(self.sampler).__name__}")
        self.frame_size = check_frame_size(frame_size)
        self.seed = seed
        if not isinstance(cache, bool):
            raise TypeError(f"cache must be a bool, got {type(cache).__name__}")
        self.cache = cache
        self._frames: dict[int, torch.Tensor] = {}  # decoded videos, uint8 (F, H, W, 3), when caching
        # Shared memory, so that DataLoader workers report bad videos to the main process.
        self._bad = torch.zeros(len(self.videos), dtype=torch.bool).share_memory_()
        self._frame_counts: dict[int, int] = {}  # true counts of videos whose container lies
        self._rng: np.random.Generator | None = None
        self._rng_key: object = ()

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def labels(self) -> list[int]:
        """The label of every video, in order."""
        return [label for _, label in self.videos]

    @property
    def num_bad(self) -> int:
        """How many videos were skipped as unreadable so far (all workers included)."""
        return int(self._bad.sum())

    @property
    def bad_videos(self) -> list[Path]:
        """The videos skipped as unreadable so far."""
        return [self.videos[i][0] for i in torch.nonzero(self._bad).flatten().tolist()]

    def rng(self) -> np.random.Generator:
        """The numpy random generator of clip positions, (re)seeded in each DataLoader worker."""
        info = get_worker_info()
        key = None if info is None else info.seed
        if self._rng is None or key != self._rng_key:
            if key is None:
                seed = self.seed if self.seed is not None else int(torch.randint(2**62, ()))
                self._rng = np.random.default_rng(seed)
            else:
                self._rng = np.random.default_rng([key, 0 if self.seed is None else self.seed])
            self._rng_key = key
        return self._rng

    def __getitem__(self, index: int) -> Item:
        count = len(self.videos)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for a dataset of {count} videos")
        index %= count
        first_error: Exception | None = None
        for offset in range(count):
            current = (index + offset) % count
            if self._bad[current]:
                continue
            try:
                return self.load(current), self.videos[current][1], current
            except VideoDecodeError as error:
                first_error = first_error or error
                self._mark_bad(current, error)
        raise ValueError(f"every one of the {count} videos failed to load; the first error: {first_error}")

    def load(self, index: int) -> torch.Tensor:
        """The clips of video ``index``, uint8 (num_clips, T, H, W, 3); raises ``VideoDecodeError``."""
        if self.cache:
            frames = self._frames.get(index)
            if frames is None:
                frames = self._frames[index] = self._decode_whole(index)
            return frames[torch.from_numpy(self.sampler(frames.shape[0], self.rng()))]
        video = open_video(self.videos[index][0], self.reader)
        frames = self._frame_counts.get(index, video.num_frames)
        indices = self.sampler(frames, self.rng())
        try:
            data = video.read(indices.ravel(), self.frame_size)
        except VideoDecodeError:  # nothing decodes from the first needed frame on: is the video shorter?
            if not hasattr(video, "count_frames") or not 0 < video.count_frames() <= indices.max():
                raise
            data = None
        real = getattr(video, "decoded_frames", None)
        if real is not None and indices.max() >= real:
            _check_not_truncated(frames, real)
            self._frame_counts[index] = real
            indices = self.sampler(real, self.rng())
            data = video.read(indices.ravel(), self.frame_size)
        assert data is not None
        return torch.from_numpy(data.reshape(*indices.shape, *data.shape[1:]))

    def _decode_whole(self, index: int) -> torch.Tensor:
        """Every frame of video ``index`` at ``frame_size``, uint8 (F, H, W, 3)."""
        video = open_video(self.videos[index][0], self.reader)
        data = video.read(range(video.num_frames), self.frame_size)
        real = getattr(video, "decoded_frames", None)
        if real is not None and real < video.num_frames:
            _check_not_truncated(video.num_frames, real)
            data = data[:real]
        return torch.from_numpy(np.ascontiguousarray(data))

    def preload(self, max_bytes: int | None = None) -> int:
        """Decode every video into memory now (``cache=True``); returns the bytes held.

        Unreadable videos are skipped as in loading (warned and counted in ``num_bad``).

        Args:
            max_bytes: refuse to hold more than this (default: half of the machine's memory).

        Raises:
            ValueError: if the frames would exceed ``max_bytes``; lower ``frame_size`` or
                turn the cache off.
        """
        if not self.cache:
            raise ValueError("preload needs a dataset made with cache=True")
        limit = max_bytes if max_bytes is not None else _half_of_memory()
        for index in range(len(self.videos)):
            if index in self._frames or self._bad[index]:
                continue
            try:
                self._frames[index] = self._decode_whole(index)
            except VideoDecodeError as error:
                self._mark_bad(index, error)
                continue
            if self.cached_bytes > limit:
                self._frames.clear()
                raise ValueError(
                    f"the decoded videos need more than {limit / 2**30:.1f} GiB (after {index + 1} of "
                    f"{len(self.videos)}); lower frame_size or turn the cache off"
                )
        if self.num_bad == len(self.videos):
            raise ValueError(f"every one of the {len(self.videos)} videos failed to load")
        return self.cached_bytes

    @property
    def cached_bytes(self) -> int:
        """Bytes of decoded frames held in memory."""
        return sum(frames.numel() for frames in self._frames.values())

    def _mark_bad(self, index: int, error: Exception) -> None:
        if not self._bad[index]:
            self._bad[index] = True
            warnings.warn(f"skipping unreadable video {self.videos[index][0]}: {error}", BadVideoWarning, stacklevel=3)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} videos, {len(self.classes)} classes, {self.sampler}, "
            f"frame_size={self.frame_size})"
        )


def _check_not_truncated(reported: int, real: int) -> None:
    """Accept a container that reports a few frames more than decode; refuse a truncated file.

    HMDB51's files report one frame too many: reading within the real length is right. Many
    missing frames mean a truncated file, which is skipped as unreadable.
    """
    if reported - real > max(2, reported // 20):
        raise VideoDecodeError(f"truncated: the container reports {reported} frames but only {real} decode")


def _half_of_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # not POSIX: a conservative 4 GiB
        return 4 * 2**30


def collate_clips(batch: Sequence[Item]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack items into ``(clips uint8 (B, num_clips, T, H, W, 3), labels (B,), indices (B,))``."""
    clips, labels, indices = zip(*batch, strict=True)
    return torch.stack(clips), torch.tensor(labels, dtype=torch.long), torch.tensor(indices, dtype=torch.long)
