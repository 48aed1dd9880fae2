"""Video datasets with one interface: UCF101, HMDB51, Kinetics-style folders and list files.

Every dataset is a map-style ``torch.utils.data.Dataset`` whose items are
``(clips, label, index)``: ``clips`` a uint8 tensor (num_clips, T, H, W, 3) in RGB, as many
clips as its sampler draws (2 for pretraining, 1 for fine-tuning, 10 for evaluation); ``label``
the class number (0-based, into ``dataset.classes``); ``index`` the video the clips come from.

Split files are checked when the dataset is built: a line that does not parse, a label out of
range, a path that escapes the root or a video that does not exist is a ``ValueError`` naming
the file and line. Videos that turn out unreadable when loaded (empty, truncated, undecodable,
an unreadable frame) are skipped: one ``BadVideoWarning`` each, counted in ``num_bad``
(shared with DataLoader workers), and the item is served by the next good video, whose index
the item reports. If every video is bad, loading raises ``ValueError``.

A video is a file (``.avi``, ``.mp4``, ...) or a folder of its frames: where a split names
``Class/v_x.avi`` and only a folder ``Class/v_x/`` exists, the folder is read.

With ``cache=True`` every video is decoded once, whole, at ``frame_size``, into memory
(:meth:`VideoClipDataset.preload`), and clips are cut from the uint8 frames: for datasets that
fit (the training split of the built-in one is ~170 MB at 48x48), an epoch then costs what the model
costs. Preload before creating DataLoader workers, which then share the frames.

Randomness (clip positions) comes from a generator seeded per DataLoader worker from the
worker's seed, so two workers never draw the same clips, and ``torch.manual_seed`` makes a run
reproducible; in the main process it is seeded from ``seed`` or from torch's generator.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from fame_aug.data.decode import VIDEO_SUFFIXES, FrameSize, VideoDecodeError, VideoFile, _check_size, open_video
from fame_aug.data.sampling import ClipSampler, finetune_sampler

__all__ = ["HMDB51", "UCF101", "BadVideoWarning", "KineticsFolder", "VideoClipDataset", "VideoList", "collate_clips"]


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
        seed: seed of the main-process generator (workers mix it with their own seed).
        cache: keep every video's decoded frames in memory (see :meth:`preload`).
    """

    def __init__(
        self,
        videos: Sequence[tuple[str | Path, int]],
        classes: Sequence[str],
        sampler: ClipSampler | None = None,
        frame_size: FrameSize = (128, 171),
        seed: int | None = None,
        cache: bool = False,
    ) -> None:
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
        self.frame_size = _check_size(frame_size)
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

    def generator(self) -> np.random.Generator:
        """The generator for clip positions, (re)seeded in each DataLoader worker."""
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
            return frames[torch.from_numpy(self.sampler(frames.shape[0], self.generator()))]
        video = open_video(self.videos[index][0])
        frames = self._frame_counts.get(index, video.num_frames)
        indices = self.sampler(frames, self.generator())
        try:
            data = video.read(indices.ravel(), self.frame_size)
        except VideoDecodeError:  # nothing decodes from the first needed frame on: is the video shorter?
            if not isinstance(video, VideoFile) or not 0 < video.count_frames() <= indices.max():
                raise
            data = None
        real = getattr(video, "decoded_frames", None)
        if real is not None and indices.max() >= real:
            _check_not_truncated(frames, real)
            self._frame_counts[index] = real
            indices = self.sampler(real, self.generator())
            data = video.read(indices.ravel(), self.frame_size)
        assert data is not None
        return torch.from_numpy(data.reshape(*indices.shape, *data.shape[1:]))

    def _decode_whole(self, index: int) -> torch.Tensor:
        """Every frame of video ``index`` at ``frame_size``, uint8 (F, H, W, 3)."""
        video = open_video(self.videos[index][0])
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


# ------------------------------------------------------------------------------------------------
# Split files
# ------------------------------------------------------------------------------------------------


# Integer labels without class names build one class per number up to the largest: a typo such as
# 100000000 must not build a hundred million classes.
_MAX_UNNAMED_CLASSES = 100_000


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines that are not comments (``#``, indented or not), stripped, with their 1-based numbers.

    A UTF-8 byte-order mark (Windows editors write one) is dropped.
    """
    if not path.is_file():
        raise ValueError(f"split file not found: {path}")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    stripped = ((n, line.strip()) for n, line in enumerate(text.splitlines(), 1))
    return [(n, line) for n, line in stripped if line and not line.startswith("#")]


def _is_integer(text: str) -> bool:
    """ASCII digits with an optional minus: ``str.isdigit`` also accepts '²' and other digits."""
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit()


def _resolve(root: Path | None, relative: str, where: str) -> Path:
    """The video a split line names, inside ``root``; a frame folder stands in for a missing file.

    Inside means after symbolic links are followed: a link in the root that points elsewhere is
    refused like a ``../`` path.
    """
    candidate = Path(relative)
    if root is not None:
        joined = Path(os.path.normpath(root / candidate))
        base = Path(root).resolve()
        if candidate.is_absolute() or not joined.resolve().is_relative_to(base):
            raise ValueError(f"{where}: path {relative!r} escapes the dataset root {root}")
        candidate = joined
    if candidate.is_file() or candidate.is_dir():
        return candidate
    folder = candidate.with_suffix("")
    if candidate.suffix and folder.is_dir():
        if root is not None and not folder.resolve().is_relative_to(Path(root).resolve()):
            raise ValueError(f"{where}: path {relative!r} escapes the dataset root {root}")
        return folder
    raise ValueError(f"{where}: video {relative!r} does not exist (looked for {candidate} and {folder}/)")


def _class_index(path: Path) -> list[str]:
    """UCF101's ``classInd.txt``: lines "1 ApplyEyeMakeup", ids 1..N in order."""
    classes = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not _is_integer(parts[0]):
            raise ValueError(f"{path}:{number}: expected '<id> <ClassName>', got {line!r}")
        if parts[1] in classes:
            first = classes.index(parts[1]) + 1
            raise ValueError(f"{path}:{number}: class {parts[1]!r} is listed twice (also as id {first})")
        if int(parts[0]) != len(classes) + 1:
            raise ValueError(f"{path}:{number}: class ids must run 1, 2, 3, ...; got {parts[0]} after {len(classes)}")
        classes.append(parts[1])
    if not classes:
        raise ValueError(f"{path} lists no class")
    return classes


def _check_split_number(split: int, allowed: range) -> int:
    if isinstance(split, bool) or not isinstance(split, int) or split not in allowed:
        raise ValueError(f"split must be one of {list(allowed)}, got {split!r}")
    return split


class UCF101(VideoClipDataset):
    """UCF101: ``<root>/<Class>/v_<Class>_gXX_cYY.avi`` with the official split files.

    Args:
        root: folder of class folders.
        split_dir: folder of ``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt`` (default ``root``).
        split: 1, 2 or 3.
        train: the training list (labels 1-based in the file) or the test list (label from the
            class folder).
        **kwargs: ``sampler``, ``frame_size``, ``seed``, ``cache`` of :class:`VideoClipDataset`.
    """

    def __init__(
        self,
        root: str | Path,
        split_dir: str | Path | None = None,
        split: int = 1,
        train: bool = True,
        **kwargs: object,
    ) -> None:
        root = Path(root)
        split_dir = Path(split_dir) if split_dir is not None else root
        split = _check_split_number(split, range(1, 4))
        classes = _class_index(split_dir / "classInd.txt")
        list_file = split_dir / f"{'train' if train else 'test'}list{split:02d}.txt"
        videos = []
        for number, line in _lines(list_file):
            where = f"{list_file}:{number}"
            parts = line.split()
            if len(parts) not in (1, 2) or (train and len(parts) != 2):
                raise ValueError(
                    f"{where}: expected '<Class>/<video> <label>'{'' if train else ' or a path'}, got {line!r}"
                )
            folder = Path(parts[0]).parent.name
            if len(parts) == 2:
                if not _is_integer(parts[1]) or not 1 <= int(parts[1]) <= len(classes):
                    raise ValueError(f"{where}: label must be an integer in 1..{len(classes)}, got {parts[1]!r}")
                label = int(parts[1]) - 1
                if folder in classes and classes.index(folder) != label:
                    raise ValueError(f"{where}: label {parts[1]} is {classes[label]!r} but the video is in {folder!r}")
            elif folder in classes:
                label = classes.index(folder)
            else:
                raise ValueError(f"{where}: class folder {folder!r} of {parts[0]!r} is not in classInd.txt")
            videos.append((_resolve(root, parts[0], where), label))
        super().__init__(videos, classes, **kwargs)  # type: ignore[arg-type]


class HMDB51(VideoClipDataset):
    """HMDB51: ``<root>/<class>/<name>.avi`` with split files ``<class>_test_split<N>.txt``.

    Each split file line is ``<name>.avi K`` with K = 1 (train), 2 (test) or 0 (unused).

    Args:
        root: folder of class folders.
        split_dir: folder of the split files (default ``root``).
        split: 1, 2 or 3.
        train: the K = 1 videos, or the K = 2 videos.
        **kwargs: ``sampler``, ``frame_size``, ``seed``, ``cache`` of :class:`VideoClipDataset`.
    """

    def __init__(
        self,
        root: str | Path,
        split_dir: str | Path | None = None,
        split: int = 1,
        train: bool = True,
        **kwargs: object,
    ) -> None:
        root = Path(root)
        split_dir = Path(split_dir) if split_dir is not None else root
        split = _check_split_number(split, range(1, 4))
        suffix = f"_test_split{split}.txt"
        files = sorted(split_dir.glob(f"*{suffix}"))
        if not files:
            raise ValueError(f"no HMDB51 split files '*{suffix}' in {split_dir}")
        classes = [f.name[: -len(suffix)] for f in files]
        wanted = "1" if train else "2"
        videos = []
        for label, split_file in enumerate(files):
            for number, line in _lines(split_file):
                where = f"{split_file}:{number}"
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise ValueError(f"{where}: expected '<name>.avi <0|1|2>', got {line!r}")
                if parts[1] == wanted:
                    videos.append((_resolve(root, f"{classes[label]}/{parts[0]}", where), label))
        super().__init__(videos, classes, **kwargs)  # type: ignore[arg-type]


class KineticsFolder(VideoClipDataset):
    """Class folders of videos: ``<root>/<split>/<class>/<id>.mp4`` (Kinetics' usual layout).

    A video may also be a folder of frames. Classes are the sorted class folder names, or
    ``classes`` (e.g. the training set's, for a validation set missing some classes).

    Args:
        root: dataset root.
        split: sub-folder (``"train"``, ``"val"``, ...); ``None`` or ``""`` reads ``root`` itself.
        classes: class names to use instead of the folders found.
        **kwargs: ``sampler``, ``frame_size``, ``seed``, ``cache`` of :class:`VideoClipDataset`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        classes: Sequence[str] | None = None,
        **kwargs: object,
    ) -> None:
        base = Path(root) / split if split else Path(root)
        if not base.is_dir():
            raise ValueError(f"dataset folder not found: {base}")
        folders = sorted(p for p in base.iterdir() if p.is_dir())
        names = list(classes) if classes is not None else [p.name for p in folders]
        unknown = [p.name for p in folders if p.name not in names]
        if unknown:
            raise ValueError(f"{base}: class folders {unknown[:5]} are not among the given classes")
        videos = []
        for folder in folders:
            for entry in sorted(folder.iterdir()):
                if entry.is_dir() or entry.suffix.lower() in VIDEO_SUFFIXES:
                    videos.append((entry, names.index(folder.name)))
        if not videos:
            raise ValueError(f"no video ({', '.join(VIDEO_SUFFIXES)}) or frame folder under {base}")
        super().__init__(videos, names, **kwargs)  # type: ignore[arg-type]


class VideoList(VideoClipDataset):
    """A text or CSV list of ``path label`` lines (``path,label`` in CSV; a header line is skipped).

    Labels are either all integers (0-based class numbers) or all class names (classes are
    then the sorted names, unless ``classes`` is given).

    Args:
        list_file: the list.
        root: folder the paths are relative to, and must stay inside; by default the list's
            folder, and absolute paths are allowed.
        classes: class names (required to give integer labels names; checks names otherwise).
        **kwargs: ``sampler``, ``frame_size``, ``seed``, ``cache`` of :class:`VideoClipDataset`.
    """

    def __init__(
        self,
        list_file: str | Path,
        root: str | Path | None = None,
        classes: Sequence[str] | None = None,
        **kwargs: object,
    ) -> None:
        list_file = Path(list_file)
        confine = Path(root) if root is not None else None
        base = confine if confine is not None else list_file.parent
        entries: list[tuple[Path, str, str]] = []
        for number, line in _lines(list_file):
            where = f"{list_file}:{number}"
            parts = [p.strip() for p in line.rsplit(",", 1)] if "," in line else line.rsplit(None, 1)
            if len(parts) != 2 or not parts[0]:
                raise ValueError(f"{where}: expected '<path> <label>' or '<path>,<label>', got {line!r}")
            if number == 1 and parts[0].lower() == "path" and parts[1].lower() in ("label", "class"):
                continue  # header
            path = parts[0] if confine is not None or Path(parts[0]).is_absolute() else str(base / parts[0])
            entries.append((_resolve(confine, path, where), parts[1], where))
        numeric = [_is_integer(label) for _, label, _ in entries]
        if any(numeric) and not all(numeric):
            raise ValueError(f"{list_file}: labels must be all integers or all class names, not a mix")
        if entries and all(numeric):
            top = max(int(label) for _, label, _ in entries)
            if classes is None and top >= _MAX_UNNAMED_CLASSES:
                where = next(where for _, label, where in entries if int(label) == top)
                raise ValueError(
                    f"{where}: label {top} would make {top + 1} classes; pass classes= to name them "
                    f"(without names, labels must lie below {_MAX_UNNAMED_CLASSES})"
                )
            names = list(classes) if classes is not None else [str(i) for i in range(top + 1)]
            videos = []
            for path, label, where in entries:
                if not 0 <= int(label) < len(names):
                    raise ValueError(f"{where}: label {label} out of range 0..{len(names) - 1}")
                videos.append((path, int(label)))
        else:
            names = list(classes) if classes is not None else sorted({label for _, label, _ in entries})
            videos = []
            for path, label, where in entries:
                if label not in names:
                    raise ValueError(f"{where}: class {label!r} is not among the given classes")
                videos.append((path, names.index(label)))
        super().__init__(videos, names, **kwargs)  # type: ignore[arg-type]
