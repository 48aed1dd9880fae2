"""Video datasets with one interface: UCF101, HMDB51, Kinetics-style folders and list files.

Every dataset is a map-style ``torch.utils.data.Dataset`` whose items are
``(clips, label, index)``: ``clips`` a uint8 tensor (num_clips, T, H, W, 3) in RGB, as many
clips as its sampler draws (2 for pretraining, 1 for fine-tuning, 10 for evaluation); ``label``
the class number (0-based, into ``dataset.classes``); ``index`` the video the clips come from.

Split files are checked when the dataset is built: a line that does not parse, a label out of
range, a path that escapes the root or a video that does not exist is a ``ValueError`` naming
the file and line. A video a split names twice is loaded once, with one ``DuplicateVideoWarning``
per file (named again with another class, it is an error); a video in both the training and
the test split (after links are followed; for Kinetics folders, also the same clip id) is an
error naming both files: a test on training videos measures memorisation. Videos that turn out
unreadable when loaded (empty, truncated, undecodable, an unreadable frame) are skipped: one
``BadVideoWarning`` each, counted in ``num_bad`` (shared with DataLoader workers), and the item
is served by the next good video, whose index the item reports. If every video is bad, loading raises ``ValueError``.

A video is a file (``.avi``, ``.mp4``, ...) or a folder of its frames: where a split names
``Class/v_x.avi`` and only a folder ``Class/v_x/`` exists, the folder is read.

With ``cache=True`` every video is decoded once, whole, at ``frame_size``, into memory
(:meth:`VideoClipDataset.preload`), and clips are cut from the uint8 frames: for datasets that
fit (the training split of the built-in one is ~170 MB at 48x48), an epoch then costs what the model
costs. Preload before creating DataLoader workers, which then share the frames.

Randomness (clip positions) comes from a numpy rng (``dataset.rng()``) seeded per DataLoader worker from the
worker's seed, so two workers never draw the same clips, and ``torch.manual_seed`` makes a run
reproducible; in the main process it is seeded from ``seed`` or from torch's generator.
"""

from fame_aug.data.datasets.base import BadVideoWarning, VideoClipDataset, collate_clips
from fame_aug.data.datasets.hmdb51 import HMDB51
from fame_aug.data.datasets.kinetics import KineticsFolder
from fame_aug.data.datasets.splits import DuplicateVideoWarning
from fame_aug.data.datasets.ucf101 import UCF101
from fame_aug.data.datasets.video_list import VideoList

__all__ = [
    "HMDB51",
    "UCF101",
    "BadVideoWarning",
    "DuplicateVideoWarning",
    "KineticsFolder",
    "VideoClipDataset",
    "VideoList",
    "collate_clips",
]
