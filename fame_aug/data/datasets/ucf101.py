"""UCF101 and its official split files (``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt``)."""

from __future__ import annotations

from pathlib import Path

from fame_aug.data.datasets.splits import (
    OfficialSplits,
    check_disjoint,
    drop_repeats,
    is_integer,
    listed_paths,
    read_class_index,
    resolve_video,
    split_lines,
)

__all__ = ["UCF101"]


class UCF101(OfficialSplits):
    """UCF101: ``<root>/<Class>/v_<Class>_gXX_cYY.avi`` with the official split files.

    Args:
        root: folder of class folders.
        split_dir: folder of ``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt`` (default ``root``).
        split: 1, 2 or 3.
        train: the training list (labels 1-based in the file) or the test list (label from the
            class folder). A video listed twice is loaded once (with a ``DuplicateVideoWarning``);
            a video in both lists is an error.
        **kwargs: ``sampler``, ``frame_size``, ``seed``, ``cache``, ``reader`` of :class:`VideoClipDataset`.
    """

    @classmethod
    def read_split(
        cls, root: Path, split_dir: Path, split: int, train: bool
    ) -> tuple[list[tuple[Path, int]], list[str]]:
        """``(videos, classes)`` of split ``split``, training or test part."""
        classes = read_class_index(split_dir / "classInd.txt")
        list_file = split_dir / f"{'train' if train else 'test'}list{split:02d}.txt"
        other = split_dir / f"{'test' if train else 'train'}list{split:02d}.txt"
        videos, wheres = [], []
        for number, line in split_lines(list_file):
            where = f"{list_file}:{number}"
            parts = line.split()
            if len(parts) not in (1, 2) or (train and len(parts) != 2):
                raise ValueError(
                    f"{where}: expected '<Class>/<video> <label>'{'' if train else ' or a path'}, got {line!r}"
                )
            folder = Path(parts[0]).parent.name
            if len(parts) == 2:
                if not is_integer(parts[1]) or not 1 <= int(parts[1]) <= len(classes):
                    raise ValueError(f"{where}: label must be an integer in 1..{len(classes)}, got {parts[1]!r}")
                label = int(parts[1]) - 1
                if folder in classes and classes.index(folder) != label:
                    raise ValueError(f"{where}: label {parts[1]} is {classes[label]!r} but the video is in {folder!r}")
            elif folder in classes:
                label = classes.index(folder)
            else:
                raise ValueError(f"{where}: class folder {folder!r} of {parts[0]!r} is not in classInd.txt")
            videos.append((resolve_video(root, parts[0], where), label))
            wheres.append(where)
        if not videos:
            raise ValueError(f"{list_file} lists no video")
        videos = drop_repeats(videos, wheres, str(list_file))
        train_file, test_file = (list_file, other) if train else (other, list_file)
        mine, theirs = [path for path, _ in videos], listed_paths(other, root)
        check_disjoint(*((mine, theirs) if train else (theirs, mine)), str(train_file), str(test_file))
        return videos, classes
