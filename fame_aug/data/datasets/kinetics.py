"""Kinetics-style class folders: ``<root>/<split>/<class>/<id>.mp4``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fame_aug.data.datasets.base import VideoClipDataset
from fame_aug.data.decode import VIDEO_SUFFIXES

__all__ = ["KineticsFolder"]


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
