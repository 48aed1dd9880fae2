"""Reading split and list files: comment-free lines, integer labels, paths kept inside the root.

Every error names the file and line, so that a typo in a split file is found before training.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fame_aug.data.datasets.base import VideoClipDataset

__all__ = [
    "MAX_UNNAMED_CLASSES",
    "DuplicateVideoWarning",
    "OfficialSplits",
    "check_disjoint",
    "check_split_number",
    "drop_repeats",
    "is_integer",
    "listed_paths",
    "read_class_index",
    "resolve_video",
    "split_lines",
]


# Integer labels without class names build one class per number up to the largest: a typo such as
# 100000000 must not build a hundred million classes.
MAX_UNNAMED_CLASSES = 100_000


class DuplicateVideoWarning(UserWarning):
    """A split or list file names a video more than once: the video is loaded once."""


def _identity(path: str | Path) -> object:
    """What makes two paths one video: the file itself (its device and inode), else the resolved path.

    Hard and symbolic links to one file are the same video; a path that does not exist is its
    resolved path.
    """
    try:
        info = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (info.st_dev, info.st_ino)


def drop_repeats(videos: Sequence[tuple[Path, int]], wheres: Sequence[str], source: str) -> list[tuple[Path, int]]:
    """The videos without repeats: a video named twice (the same file, under any name) is kept once.

    One :class:`DuplicateVideoWarning` per ``source`` says how many lines repeated a video; a
    video named again with another class is an error, naming both lines.
    """
    seen: dict[object, tuple[int, str]] = {}
    kept, repeats = [], []
    for (path, label), where in zip(videos, wheres, strict=True):
        key = _identity(path)
        if key in seen:
            first_label, first_where = seen[key]
            if first_label != label:
                raise ValueError(f"{where}: video {path} is listed again with another class (first at {first_where})")
            repeats.append(where)
            continue
        seen[key] = (label, where)
        kept.append((path, label))
    if repeats:
        warnings.warn(
            f"{source}: {len(repeats)} line(s) name a video already listed (first at {repeats[0]}); "
            f"each video is loaded once",
            DuplicateVideoWarning,
            stacklevel=3,
        )
    return kept


def check_disjoint(
    train: Iterable[str | Path], test: Iterable[str | Path], train_source: str, test_source: str
) -> None:
    """Refuse splits that share videos (the same file, under any name): the test would measure memorisation.

    Raises:
        ValueError: naming both sources, how many videos they share and one of them.
    """
    named = {_identity(p): p for p in train}
    shared = [p for p in test if _identity(p) in named]
    if shared:
        raise ValueError(
            f"{len(shared)} video(s) are in both the training split ({train_source}) and the test split "
            f"({test_source}), e.g. {shared[0]}: a test on training videos measures memorisation; fix the split"
        )


def listed_paths(list_file: Path, root: Path) -> list[Path]:
    """The paths a split file's lines start with, joined to ``root`` (not checked: for :func:`check_disjoint`)."""
    if not list_file.is_file():
        return []
    paths = []
    for _, line in split_lines(list_file):
        path = Path(os.path.normpath(root / line.split()[0]))
        folder = path.with_suffix("")
        paths.append(folder if not path.exists() and path.suffix and folder.is_dir() else path)
    return paths


def split_lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines that are not comments (``#``, indented or not), stripped, with their 1-based numbers.

    A UTF-8 byte-order mark (Windows editors write one) is dropped.
    """
    if not path.is_file():
        raise ValueError(f"split file not found: {path}")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    stripped = ((n, line.strip()) for n, line in enumerate(text.splitlines(), 1))
    return [(n, line) for n, line in stripped if line and not line.startswith("#")]


def is_integer(text: str) -> bool:
    """ASCII digits with an optional minus: ``str.isdigit`` also accepts '²' and other digits."""
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit()


def resolve_video(root: Path | None, relative: str, where: str) -> Path:
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


def read_class_index(path: Path) -> list[str]:
    """UCF101's ``classInd.txt``: lines "1 ApplyEyeMakeup", ids 1..N in order."""
    classes: list[str] = []
    for number, line in split_lines(path):
        parts = line.split()
        if len(parts) != 2 or not is_integer(parts[0]):
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


def check_split_number(split: int, allowed: range) -> int:
    """Check a split number (UCF101 and HMDB51 have splits 1, 2 and 3)."""
    if isinstance(split, bool) or not isinstance(split, int) or split not in allowed:
        raise ValueError(f"split must be one of {list(allowed)}, got {split!r}")
    return split


class OfficialSplits(VideoClipDataset):
    """A dataset defined by its official split files: ``root``, ``split_dir``, split 1-3, train or test.

    Subclasses read their own file format in :meth:`read_split`.
    """

    def __init__(
        self,
        root: str | Path,
        split_dir: str | Path | None = None,
        split: int = 1,
        train: bool = True,
        **kwargs: Any,
    ) -> None:
        root = Path(root)
        split_dir = Path(split_dir) if split_dir is not None else root
        videos, classes = self.read_split(root, split_dir, check_split_number(split, range(1, 4)), train)
        super().__init__(videos, classes, **kwargs)

    @classmethod
    def read_split(
        cls, root: Path, split_dir: Path, split: int, train: bool
    ) -> tuple[list[tuple[Path, int]], list[str]]:
        """``(videos, classes)``: the ``(path, label)`` pairs of one split's training or test part."""
        raise NotImplementedError
