"""Clips per second of the pretraining loader, against decoding whole videos.

Both sides serve the same items through the same ``DataLoader``: two clips of 16 frames at
stride 2 from random positions of each video, resized to 128x171 uint8.

- ``fame-aug``: :class:`fame_aug.data.VideoList` with the pretraining sampler: it seeks to each
  clip, decodes only up to its last frame and resizes each kept frame right away;
- ``naive``: decode the whole video at full size, then slice the two clips and resize them.

For 0, 1 and 2 workers, the loaders run alternately for a few epochs (the first one is a
warm-up) and report clips/s and their ratio from the same run. Run::

    python benchmarks/bench_data.py ../shared/videos
    python benchmarks/bench_data.py ../shared/videos --epochs 4 --workers 0 --workers 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fame_aug.data import VIDEO_SUFFIXES, VideoList, collate_clips, pretrain_sampler, resize_frame

FRAME_SIZE = (128, 171)


class NaiveClips(Dataset):
    """Decode every frame at full size, then cut the clips the sampler asks for."""

    def __init__(self, reference: VideoList) -> None:
        self.reference = reference

    def __len__(self) -> int:
        return len(self.reference)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        path, label = self.reference.videos[index]
        capture = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        capture.release()
        video = np.stack(frames)
        indices = self.reference.sampler(len(video), self.reference.rng())
        clips = np.stack([[resize_frame(video[i], FRAME_SIZE) for i in clip] for clip in indices])
        return torch.from_numpy(clips), label, index


def clips_per_second(loader: DataLoader, epochs: int) -> float:
    rates = []
    for epoch in range(epochs + 1):
        begin, count = time.perf_counter(), 0
        for clips, _, _ in loader:
            count += clips.shape[0] * clips.shape[1]
        if epoch > 0:  # the first epoch starts workers and warms caches
            rates.append(count / (time.perf_counter() - begin))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", type=Path, help="folder of video files (e.g. ../shared/videos)")
    parser.add_argument("--workers", type=int, action="append", help="DataLoader workers (default 0, 1 and 2)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loader (default 3)")
    parser.add_argument("--batch-size", type=int, default=2)
    args = parser.parse_args(argv)
    files = (
        sorted(p for p in args.videos.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if args.videos.is_dir() else []
    )
    if not files:
        print(f"bench_data: no video files in {args.videos}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "videos.txt"
        listing.write_text("".join(f"{path.resolve()} {n}\n" for n, path in enumerate(files)))
        ours = VideoList(listing, sampler=pretrain_sampler(), frame_size=FRAME_SIZE)
        naive = NaiveClips(ours)
        print(f"{len(files)} videos from {args.videos}; 2 clips x 16 frames at stride 2, {FRAME_SIZE} uint8")
        print(f"torch {torch.__version__}, OpenCV {cv2.__version__}, {torch.get_num_threads()} threads\n")
        print("| workers | fame-aug clips/s | naive clips/s | fame-aug / naive |")
        print("|---|---|---|---|")
        for workers in args.workers or [0, 1, 2]:
            options = {"batch_size": args.batch_size, "num_workers": workers, "collate_fn": collate_clips}
            if workers:
                options["persistent_workers"] = True
            fast = clips_per_second(DataLoader(ours, **options), args.epochs)
            slow = clips_per_second(DataLoader(naive, **options), args.epochs)
            print(f"| {workers} | {fast:.1f} | {slow:.1f} | {fast / slow:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
