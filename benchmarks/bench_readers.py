"""Video readers against OpenCV on the same clips, as ratios in one run.

For each video of a folder (default ``../shared/videos``), each reader opens the file and reads
the frames of two 16-frame clips at stride 2 (the pretraining loader's), at 128x171; readers
alternate, and each reports its median over the rounds. Run::

    python benchmarks/bench_readers.py                    # ../shared/videos
    python benchmarks/bench_readers.py VIDEOS --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from fame_aug.data import READERS, pretrain_sampler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared" / "videos"
    parser.add_argument("folder", nargs="?", type=Path, default=default)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    videos = sorted(p for p in args.folder.glob("*") if p.suffix.lower() in (".avi", ".mp4"))
    if not videos:
        print(f"no .avi or .mp4 video in {args.folder}")
        return 2
    sampler, rng = pretrain_sampler(16, 2), np.random.default_rng(0)
    print(f"readers on {len(videos)} videos of {args.folder}: two 16-frame clips at stride 2, 128x171, one thread")
    print("| video | frames | " + " | ".join(f"{name} ms" for name in READERS) + " | pyav / opencv |")
    print("|---|---|" + "---|" * (len(READERS) + 1))
    ratios = []
    for path in videos:
        count = READERS["opencv"](path).num_frames
        indices = sampler(count, rng).ravel()
        times: dict[str, list[float]] = {name: [] for name in READERS}
        for _ in range(args.rounds):
            for name, reader in READERS.items():
                begin = time.perf_counter()
                reader(path).read(indices, (128, 171))
                times[name].append(time.perf_counter() - begin)
        medians = {name: statistics.median(values) for name, values in times.items()}
        ratios.append(medians["pyav"] / medians["opencv"])
        cells = " | ".join(f"{1000 * medians[name]:.1f}" for name in READERS)
        print(f"| {path.name[:40]} | {count} | {cells} | {ratios[-1]:.2f}x |")
    mean = float(np.exp(np.mean(np.log(ratios))))
    print(f"pyav / opencv: {min(ratios):.2f}x to {max(ratios):.2f}x (geometric mean {mean:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
