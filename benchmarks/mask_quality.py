"""How much of a real moving object does each FAME mask mode keep?

For every sequence with ground-truth object masks, laid out as ``<seq>/frames/<id>.jpg`` and
``<seq>/masks/<id>.png`` in one or more folders (e.g. ``../shared/segvideos``), this cuts 16-frame
windows at stride 2, crops the centre square, resizes it to each size, computes each mask mode at
``beta``, and reports per sequence:

- recall: share of the object's pixels (union over the window's frames) inside the mask;
- precision: share of the mask's pixels that lie on the object;
- recall / cap: recall relative to the most any mask of ``beta`` of the frame can keep,
  ``min(1, beta / object share)`` per window (an object larger than ``beta`` cannot be kept whole).

A random mask has recall ``beta`` and precision equal to the object's share of the frame
(printed as ``object``). Label values: 255 (or any value above 170) is the object, 170 is
CDnet's "unknown" band at object edges, left out of both scores; everything else is
background (CDnet's shadow value 50 included). Run::

    python benchmarks/mask_quality.py ../shared/segvideos ../shared/segvideos-tracking
    python benchmarks/mask_quality.py ../shared/segvideos --size 112 --mode motion --json out.json
    python benchmarks/mask_quality.py --synthetic      # generated clips under moving cameras

With ``--synthetic``, generated 16-frame clips at 112 px (``moving_object_clips``, 32 per setting),
whose object is known, are filmed by cameras that pan (0-24 px per frame, or speeding up to or
slowing down from 32), zoom, roll, and track the object (it stays near the centre while the
background moves) at several speeds, and the table gives each mode's mean recall of the object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from fame_aug import MASK_MODES, foreground_mask
from fame_aug.data import center_square, moving_object_clips, to_float_clips

OBJECT, UNKNOWN = 255, 170
FRAMES, STRIDE = 16, 2


def load_sequence(folder: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N, size, size, 3) uint8 RGB and label maps (N, size, size) uint8 of one sequence."""
    frame_files = sorted((folder / "frames").glob("*.jpg"))
    if not frame_files:
        raise ValueError(f"no frames in {folder / 'frames'}")
    frames, labels = [], []
    for frame_file in frame_files:
        label_file = folder / "masks" / f"{frame_file.stem}.png"
        if not label_file.is_file():
            raise ValueError(f"{frame_file} has no mask {label_file}")
        frames.append(cv2.cvtColor(cv2.imread(str(frame_file)), cv2.COLOR_BGR2RGB))
        labels.append(cv2.imread(str(label_file), cv2.IMREAD_GRAYSCALE))
    frames_sq = center_square(np.stack(frames), size)
    labels_sq = center_square(np.stack(labels), size, interpolation=cv2.INTER_NEAREST)
    return frames_sq, labels_sq


def window_scores(mask: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(recall, precision, object share) of one (H, W) mask against a window's (T, H, W) labels."""
    is_object = (labels > UNKNOWN).any(axis=0)
    scored = is_object | ~(labels == UNKNOWN).any(axis=0)  # unknown band left out unless object elsewhere
    hits = (mask & is_object).sum()
    recall = hits / max(is_object.sum(), 1)
    precision = hits / max((mask & scored).sum(), 1)
    return float(recall), float(precision), float(is_object.sum() / scored.sum())


def evaluate(root: Path, sizes: list[int], modes: list[str], beta: float, step: int, device: str) -> list[dict]:
    """One row per (sequence, size): mean scores over the sequence's windows for each mode."""
    rows = []
    for folder in sorted(p for p in root.iterdir() if (p / "frames").is_dir()):
        for size in sizes:
            frames, labels = load_sequence(folder, size)
            span = (FRAMES - 1) * STRIDE + 1
            starts = list(range(0, len(frames) - span + 1, step)) or [0]
            windows = [frames[s : s + span : STRIDE] for s in starts]
            video = to_float_clips(np.stack(windows)).to(device)
            row: dict = {"folder": root.name, "sequence": folder.name, "size": size, "windows": len(starts)}
            for mode in modes:
                masks = foreground_mask(video, beta=beta, mode=mode).cpu().numpy()
                scores = [window_scores(m, labels[s : s + span : STRIDE]) for m, s in zip(masks, starts, strict=True)]
                row[f"{mode}_recall"] = statistics.mean(s[0] for s in scores)
                row[f"{mode}_precision"] = statistics.mean(s[1] for s in scores)
                row[f"{mode}_of_cap"] = statistics.mean(s[0] / min(1.0, beta / max(s[2], 1e-9)) for s in scores)
                row["object"] = statistics.mean(s[2] for s in scores)
                row["cap"] = statistics.mean(min(1.0, beta / max(s[2], 1e-9)) for s in scores)
            rows.append(row)
    return rows


PANS = (0, 2, 4, 8, 12, 16, 20, 24)
# Further cameras of ``--synthetic``: (label, keyword arguments of ``moving_object_clips``). Every
# label names its pan, so that the rows of this table never read as rows of the pan table.
CAMERAS = (
    *((f"pan 0, zoom {zoom:+.0%}", {"zoom": zoom}) for zoom in (0.01, 0.02, 0.04, -0.02)),
    *((f"pan 0, roll {deg}°", {"rotate": float(deg)}) for deg in (1, 2, 4)),
    ("pan 8, zoom +2%, roll 2°", {"pan": 8.0, "zoom": 0.02, "rotate": 2.0}),
    *((f"tracking, pan {pan}", {"pan": float(pan), "track": True}) for pan in (2, 4, 8, 12, 16)),
    ("tracking, pan 4, zoom +2%, roll 1°", {"pan": 4.0, "zoom": 0.02, "rotate": 1.0, "track": True}),
    ("pan 0 -> 32, speeding up", {"pan": 32.0, "ramp": "up"}),
    ("tracking, pan 0 -> 32, speeding up", {"pan": 32.0, "ramp": "up", "track": True}),
    ("tracking, pan 32 -> 0, slowing down", {"pan": 32.0, "ramp": "down", "track": True}),
)


def synthetic_cameras(modes: list[str], beta: float, clips_per_setting: int = 32, seed: int = 7) -> list[dict]:
    """Print each mode's mean object recall on generated clips for each camera setting; return the rows.

    Two tables: a camera panning at each speed, then cameras that zoom, roll, and track the object.
    """
    setup = f"{clips_per_setting} per setting, 16 frames at 112 px, beta={beta}"
    print(f"generated clips, {setup}: mean recall of the object\n")
    rows = []

    def table(header: str, settings: list[tuple[str, str, dict]]) -> None:
        print(f"| {header} | " + " | ".join(modes) + " |")
        print("|---|" + "---|" * len(modes))
        for label, cell, camera in settings:
            clips, objects = moving_object_clips(clips_per_setting, FRAMES, 112, seed=seed, **camera)
            video, swept = to_float_clips(clips), torch.from_numpy(objects.any(axis=1))
            row: dict = {"camera": label}
            for mode in modes:
                kept = foreground_mask(video, beta=beta, mode=mode) & swept
                row[f"{mode}_recall"] = float((kept.sum(dim=(1, 2)) / swept.sum(dim=(1, 2))).mean())
            rows.append(row)
            print(f"| {cell} | " + " | ".join(f"{row[f'{m}_recall']:.3f}" for m in modes) + " |", flush=True)

    table("camera pan (px/frame)", [(f"pan {pan}", str(pan), {"pan": float(pan)}) for pan in PANS])
    print("\nzoom: change of scale per frame; roll: degrees per frame; tracking: the object stays near the centre\n")
    table("camera (pan in px/frame)", [(label, label, camera) for label, camera in CAMERAS])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", type=Path, nargs="*", help="folders of sequences (<seq>/frames, <seq>/masks)")
    parser.add_argument("--synthetic", action="store_true", help="generated clips under moving cameras instead")
    parser.add_argument("--size", type=int, action="append", help="frame sizes (default 112 and 224)")
    parser.add_argument("--mode", action="append", choices=MASK_MODES, help="mask modes (default all)")
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--step", type=int, default=8, help="frames between window starts (default 8)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    modes = args.mode or list(MASK_MODES)
    if args.synthetic:
        with torch.no_grad():
            rows = synthetic_cameras(modes, args.beta)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return 0
    missing = [str(root) for root in args.roots if not root.is_dir()]
    if not args.roots or missing:
        given = missing or "none given"
        print(f"mask_quality: give folders of sequences (missing: {given}) or --synthetic", file=sys.stderr)
        return 2
    sizes = args.size or [112, 224]
    with torch.no_grad():
        rows = [row for root in args.roots for row in evaluate(root, sizes, modes, args.beta, args.step, args.device)]

    print(f"beta={args.beta}: recall (share of object pixels kept) / precision (share of mask on the object) / ")
    print(f"recall relative to its cap min(1, {args.beta} / object share); random mask: recall {args.beta:.2f}\n")
    header = (
        "| folder | sequence | size | windows | object | cap | "
        + " | ".join(f"{m} recall | {m} precision | {m} of cap" for m in modes)
        + " |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for row in rows:
        cells = " | ".join(
            f"{row[f'{m}_recall']:.3f} | {row[f'{m}_precision']:.3f} | {row[f'{m}_of_cap']:.3f}" for m in modes
        )
        print(
            f"| {row['folder']} | {row['sequence']} | {row['size']} | {row['windows']} | {row['object']:.3f} | "
            f"{row['cap']:.3f} | {cells} |"
        )
    groups = [(root.name, [root.name]) for root in args.roots]
    if len(args.roots) > 1:
        groups.append(("all", [root.name for root in args.roots]))
    for name, folders in groups:
        for size in sizes:
            sized = [r for r in rows if r["size"] == size and r["folder"] in folders]
            cells = " | ".join(
                f"{statistics.mean(r[f'{m}_{key}'] for r in sized):.3f}"
                for m in modes
                for key in ("recall", "precision", "of_cap")
            )
            print(
                f"| **mean** | {name} | {size} | | {statistics.mean(r['object'] for r in sized):.3f} | "
                f"{statistics.mean(r['cap'] for r in sized):.3f} | {cells} |"
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
