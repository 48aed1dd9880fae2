"""Kinetics-style class folders: ``<root>/<split>/<class>/<id>.mp4``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fame_aug.data.datasets.base import VideoClipDataset
from fame_aug.data.datasets.splits import check_disjoint, drop_repeats
from fame_aug.data.decode import VIDEO_SUFFIXES

__all__ = ["KineticsFolder"]


class KineticsFolder(VideoClipDataset):
    """Class folders of videos: ``<root>/<split>/<class>/<id>.mp4`` (Kinetics' usual layout).

    A video may also be a folder of frames. Classes are the sorted class folder names, or
    ``classes`` (e.g. the training set's, for a validation set missing some classes). A video
    in another split folder of ``root`` too (the same file, or the same clip id: the file name
    without its suffix) is an error; one file linked into two class folders is an error too.

    Args:
        root: dataset root.
        split: sub-folder (``"train"``, ``"val"``, ...); ``None`` or ``""`` reads ``root`` itself.
        classes: class names to use instead of the folders found.
        **kwargs: ``sampler``, ``frame_size``, ``seed``, ``cache``, ``reader`` of :class:`VideoClipDataset`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        classes: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        base = Path(root) / split if split else Path(root)
        if not base.is_dir():
            raise ValueError(f"dataset folder not found: {base}")
        folders = sorted(p for p in base.iterdir() if p.is_dir())
        names = list(classes) if classes is not None else [p.name for p in folders]
        unknown = [p.name for p in folders if p.name not in names]
        if unknown:
            raise ValueError(f"{base}: class folders {unknown[:5]} are not among the given classes")
        videos, wheres = [], []
        for folder in folders:
            for entry in _videos_in(folder):
                videos.append((entry, names.index(folder.name)))
                wheres.append(str(entry))
        if not videos:
            raise ValueError(f"no video ({', '.join(VIDEO_SUFFIXES)}) or frame folder under {base}")
        videos = drop_repeats(videos, wheres, str(base))
        if split:
            _check_other_splits(Path(root), split, [path for path, _ in videos])
        super().__init__(videos, names, **kwargs)


def _videos_in(folder: Path) -> list[Path]:
    return [e for e in sorted(folder.iterdir()) if e.is_dir() or e.suffix.lower() in VIDEO_SUFFIXES]


def _check_other_splits(root: Path, split: str, videos: list[Path]) -> None:
    """Refuse a video that another split folder of ``root`` holds too: the same file, or the same clip id."""
    mine = {path.stem: path for path in videos}
    for other in sorted(p for p in root.iterdir() if p.is_dir() and p.name != split):
        theirs = [entry for folder in sorted(other.iterdir()) if folder.is_dir() for entry in _videos_in(folder)]
        check_disjoint(videos, theirs, str(root / split), str(other))
        shared = sorted(set(mine) & {path.stem for path in theirs})
        if shared:
            raise ValueError(
                f"{len(shared)} clip id(s) are in both {root / split} and {other}, e.g. {mine[shared[0]]}: "
                f"a test on training videos measures memorisation; remove them from one split"
            )
