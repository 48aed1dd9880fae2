"""Any videos listed in a text or CSV file of ``path label`` lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fame_aug.data.datasets.base import VideoClipDataset
from fame_aug.data.datasets.splits import MAX_UNNAMED_CLASSES, drop_repeats, is_integer, resolve_video, split_lines

__all__ = ["VideoList"]


class VideoList(VideoClipDataset):
    """A text or CSV list of ``path label`` lines (``path,label`` in CSV; a header line is skipped).

    Labels are either all integers (0-based class numbers) or all class names (classes are
    then the sorted names, unless ``classes`` is given).

    Args:
        list_file: the list.
        root: folder the paths are relative to, and must stay inside; by default the list's
            folder, and absolute paths are allowed.
        classes: class names (required to give integer labels names; checks names otherwise).
            A video listed twice is loaded once (with a ``DuplicateVideoWarning``); listed
            again with another class, it is an error.
        **kwargs: ``sampler``, ``frame_size``, ``seed``, ``cache``, ``reader`` of :class:`VideoClipDataset`.
    """

    def __init__(
        self,
        list_file: str | Path,
        root: str | Path | None = None,
        classes: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        list_file = Path(list_file)
        confine = Path(root) if root is not None else None
        base = confine if confine is not None else list_file.parent
        entries: list[tuple[Path, str, str]] = []
        for number, line in split_lines(list_file):
            where = f"{list_file}:{number}"
            parts = [p.strip() for p in line.rsplit(",", 1)] if "," in line else line.rsplit(None, 1)
            if len(parts) != 2 or not parts[0]:
                raise ValueError(f"{where}: expected '<path> <label>' or '<path>,<label>', got {line!r}")
            if number == 1 and parts[0].lower() == "path" and parts[1].lower() in ("label", "class"):
                continue  # header
            name = parts[0] if confine is not None or Path(parts[0]).is_absolute() else str(base / parts[0])
            entries.append((resolve_video(confine, name, where), parts[1], where))
        numeric = [is_integer(label) for _, label, _ in entries]
        if any(numeric) and not all(numeric):
            raise ValueError(f"{list_file}: labels must be all integers or all class names, not a mix")
        if entries and all(numeric):
            top = max(int(label) for _, label, _ in entries)
            if classes is None and top >= MAX_UNNAMED_CLASSES:
                where = next(where for _, label, where in entries if int(label) == top)
                raise ValueError(
                    f"{where}: label {top} would make {top + 1} classes; pass classes= to name them "
                    f"(without names, labels must lie below {MAX_UNNAMED_CLASSES})"
                )
            names = list(classes) if classes is not None else [str(i) for i in range(top + 1)]
            videos: list[tuple[Path, int]] = []
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
        if not videos:
            raise ValueError(f"{list_file} lists no video")
        videos = drop_repeats(videos, [where for _, _, where in entries], str(list_file))
        super().__init__(videos, names, **kwargs)
