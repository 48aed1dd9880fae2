"""Draw FAME masks under the frames of clips, like Figure 1 of the FAME supplementary.

Run: python examples/show_masks.py VIDEO [VIDEO ...] --out masks.png [--mode motion] [--beta 0.5]
 or: python examples/show_masks.py --synthetic 3 --out masks.png   (generated moving objects)
 or: python examples/show_masks.py --synthetic 3 --pan 4 --mode official --mode stabilized --out pan.png
     (a moving camera, 4 px per frame; one block of rows per mask mode)
 or: python examples/show_masks.py --sequence ../shared/segvideos-tracking/soapbox --mode stabilized
     (a folder of frames, <seq>/frames/*.jpg; with <seq>/masks/*.png it also prints how much of the
     annotated object each mask keeps)

Each video clip is cut as in the paper's training (16 frames at stride 2), centre-cropped to a
square and resized to --size. FAME's mask depends on the clip only, so one clip is enough; with
several, the figure also shows each clip merged onto the next one's background. For generated
clips, where the object is known, it prints how much of each object the mask keeps.
"""

import argparse
from pathlib import Path

import cv2
import numpy as np

from fame_aug import MASK_MODES
from fame_aug.data import center_square, moving_object_clips, read_clip
from fame_aug.data.synthetic import RAMPS
from fame_aug.visualize import masks_figure, write_png


def read_sequence(folder: Path, start: int, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """16 frames at stride 2 of ``folder/frames/*.jpg`` from ``start``, uint8 RGB centre squares.

    Also the object's masks ``folder/masks/<same name>.png`` (bool, values above 170) when every
    frame has one, else None.
    """
    files = sorted((folder / "frames").glob("*.jpg"))[start : start + 31 : 2]
    if len(files) < 2:
        raise SystemExit(f"{folder}: fewer than 2 frames in {folder / 'frames'} from frame {start}")
    frames = center_square(np.stack([cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]), size)
    labels = [folder / "masks" / f"{f.stem}.png" for f in files]
    if not all(label.is_file() for label in labels):
        return frames, None
    maps = np.stack([cv2.imread(str(label), cv2.IMREAD_GRAYSCALE) for label in labels])
    return frames, center_square(maps, size, interpolation=cv2.INTER_NEAREST) > 170


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--synthetic", type=int, default=0, help="draw this many generated clips instead")
    parser.add_argument("--sequence", type=Path, action="append", help="a folder of frames, <seq>/frames/*.jpg")
    parser.add_argument("--out", type=Path, default=Path("masks.png"))
    parser.add_argument("--mode", action="append", choices=MASK_MODES, help="mask mode (repeatable; default official)")
    parser.add_argument("--pan", type=float, default=0.0, help="generated clips: camera speed in px per frame")
    parser.add_argument("--zoom", type=float, default=0.0, help="generated clips: the view's scale change per frame")
    parser.add_argument("--rotate", type=float, default=0.0, help="generated clips: camera roll in degrees per frame")
    parser.add_argument("--track", action="store_true", help="generated clips: the camera follows the object")
    parser.add_argument(
        "--ramp", default="none", choices=RAMPS, help="generated clips: the pan speeds up (up) or slows down (down)"
    )
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--start", type=int, default=0, help="first frame of each clip")
    parser.add_argument("--frames", type=int, default=8, help="frames shown per row")
    parser.add_argument("--style", default="binary", choices=["binary", "overlay"], help="how the mask row looks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if sum(map(bool, (args.videos, args.synthetic, args.sequence))) != 1:
        parser.error("give video files, --synthetic N or --sequence DIR (one of them)")

    if args.synthetic:
        camera = {"pan": args.pan, "zoom": args.zoom, "rotate": args.rotate, "track": args.track, "ramp": args.ramp}
        clips, objects = moving_object_clips(args.synthetic, 16, args.size, seed=args.seed, **camera)
        names = [f"clip {n}" for n in range(args.synthetic)]
    elif args.sequence:
        read = [read_sequence(folder, args.start, args.size) for folder in args.sequence]
        clips = np.stack([frames for frames, _ in read])
        known = all(labels is not None for _, labels in read)
        objects = np.stack([labels for _, labels in read]) if known else None
        names = [folder.name for folder in args.sequence]
    else:
        clips = np.stack([read_clip(path, start=args.start, size=args.size) for path in args.videos])
        objects, names = None, [p.stem[:24] for p in args.videos]
    images = []
    for mode in args.mode or ["official"]:
        labels = [f"{name} [{mode}]" for name in names]
        image, mask = masks_figure(clips, mode, args.beta, num_frames=args.frames, style=args.style, names=labels)
        images.append(image)
        if objects is not None:
            swept = objects.any(axis=1)
            for name, kept in zip(names, (mask & swept).sum(axis=(1, 2)) / swept.sum(axis=(1, 2)), strict=True):
                print(f"{name}: the {mode} mask keeps {kept:.0%} of the moving object's pixels")
    print(f"wrote {write_png(args.out, np.concatenate(images, axis=0))}")


if __name__ == "__main__":
    main()
