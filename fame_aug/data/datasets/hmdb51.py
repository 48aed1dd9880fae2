"""HMDB51 and its split files (``<class>_test_split<N>.txt``)."""

from __future__ import annotations

from pathlib import Path

from fame_aug.data.datasets.splits import OfficialSplits, check_disjoint, drop_repeats, resolve_video, split_lines

__all__ = ["HMDB51"]


class HMDB51(OfficialSplits):
    """HMDB51: ``<root>/<class>/<name>.avi`` with split files ``<class>_test_split<N>.txt``.

    Each split file line is ``<name>.avi K`` with K = 1 (train), 2 (test) or 0 (unused).

    Args:
        root: folder of class folders.
        split_dir: folder of the split files (default ``root``).
        split: 1, 2 or 3.
        train: the K = 1 videos, or the K = 2 videos. A video listed twice is loaded once (with
            a ``DuplicateVideoWarning``); a video marked both 1 and 2 is an error.
        **kwargs: ``sampler``, ``frame_size``, ``seed``, ``cache``, ``reader`` of :class:`VideoClipDataset`.
    """

    @classmethod
    def read_split(
        cls, root: Path, split_dir: Path, split: int, train: bool
    ) -> tuple[list[tuple[Path, int]], list[str]]:
        """``(videos, classes)`` of split ``split``, training or test part."""
        suffix = f"_test_split{split}.txt"
        files = sorted(split_dir.glob(f"*{suffix}"))
        if not files:
            raise ValueError(f"no HMDB51 split files '*{suffix}' in {split_dir}")
        classes = [f.name[: -len(suffix)] for f in files]
        wanted = "1" if train else "2"
        videos, wheres = [], []
        parts_of: dict[str, list[Path]] = {"1": [], "2": []}
        for label, split_file in enumerate(files):
            for number, line in split_lines(split_file):
                where = f"{split_file}:{number}"
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise ValueError(f"{where}: expected '<name>.avi <0|1|2>', got {line!r}")
                if parts[1] in parts_of:
                    parts_of[parts[1]].append(root / classes[label] / parts[0])
                if parts[1] == wanted:
                    videos.append((resolve_video(root, f"{classes[label]}/{parts[0]}", where), label))
                    wheres.append(where)
        check_disjoint(parts_of["1"], parts_of["2"], f"the '1' lines of {split_dir}/*{suffix}", "their '2' lines")
        if not videos:
            raise ValueError(f"no video of {split_dir}/*{suffix} is marked {wanted} ({'train' if train else 'test'})")
        videos = drop_repeats(videos, wheres, f"{split_dir}/*{suffix}")
        return videos, classes
