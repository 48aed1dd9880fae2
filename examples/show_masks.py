"""Draw FAME masks under the frames of real clips, like Figure 1 of the FAME supplementary.

Run: python examples/show_masks.py VIDEO [VIDEO ...] --out masks.png [--mode motion] [--beta 0.5]

Each clip is cut as in the paper's training (16 frames at stride 2), centre-cropped to a
square and resized to --size. FAME's mask depends on the clip only, so one clip is enough;
with several, the figure also shows each clip merged onto the next one's background.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from fame_aug import foreground_mask, merge
from fame_aug.data import read_clip, to_float_clips
from fame_aug.visualize import mask_figure, write_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("masks.png"))
    parser.add_argument("--mode", default="official", choices=["official", "motion"])
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--start", type=int, default=0, help="first frame of each clip")
    parser.add_argument("--style", default="binary", choices=["binary", "overlay"], help="how the mask row looks")
    args = parser.parse_args()

    clips = np.stack([read_clip(path, start=args.start, size=args.size) for path in args.videos])
    video = to_float_clips(clips)
    mask = foreground_mask(video, beta=args.beta, mode=args.mode)
    merged = None
    if len(clips) > 1:  # clip b on the background of clip b + 1
        pairs = torch.arange(1, len(clips) + 1) % len(clips)
        merged_video = merge(video, mask, pairs)
        merged = (merged_video.permute(0, 2, 3, 4, 1) * 255).round().to(torch.uint8).numpy()
    figure = mask_figure(clips, mask.numpy(), merged, style=args.style, names=[p.stem[:24] for p in args.videos])
    print(f"wrote {write_png(args.out, figure)}")


if __name__ == "__main__":
    main()
