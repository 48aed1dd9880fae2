"""Figures of FAME masks: rows of frames, masks and merged clips, written with OpenCV.

All images are uint8 RGB numpy arrays (H, W, 3); ``write_png`` converts to OpenCV's BGR.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = ["clip_rows_figure", "mask_figure", "mask_overlay", "write_png"]

_LABEL_HEIGHT = 14
_GAP = 2


def mask_overlay(frames: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (255, 40, 40)) -> np.ndarray:
    """Show the foreground of every frame: (T, H, W, 3) uint8 frames, (H, W) bool mask.

    The foreground keeps its colours, the background is greyed and darkened, and the mask's
    outline is drawn in ``colour``.
    """
    grey = frames.astype(np.float32).mean(axis=-1, keepdims=True) * 0.35
    out = np.where(mask[None, ..., None], frames.astype(np.float32), grey).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    for frame in out:
        cv2.drawContours(frame, contours, -1, colour, 1)
    return out


def _sample(count: int, wanted: int) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, num=min(wanted, count)).round().astype(int))


def clip_rows_figure(rows: Sequence[tuple[str, np.ndarray]], num_frames: int = 8) -> np.ndarray:
    """Stack labelled rows of frames: each row is ``(label, (T, H, W, 3) uint8)``, all the same H, W.

    ``num_frames`` frames are sampled uniformly from each row's clip.
    """
    if not rows:
        raise ValueError("rows must not be empty")
    height, width = rows[0][1].shape[1:3]
    picked = _sample(rows[0][1].shape[0], num_frames)
    strips = []
    for label, frames in rows:
        if frames.shape[1:] != (height, width, 3):
            raise ValueError(f"every row must hold (T, {height}, {width}, 3) frames, got {frames.shape} for {label!r}")
        tiles = [frames[min(i, frames.shape[0] - 1)] for i in picked]
        row = np.full((_LABEL_HEIGHT + height, len(tiles) * (width + _GAP) - _GAP, 3), 255, np.uint8)
        for k, tile in enumerate(tiles):
            row[_LABEL_HEIGHT:, k * (width + _GAP) : k * (width + _GAP) + width] = tile
        cv2.putText(row, label, (2, _LABEL_HEIGHT - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        strips.append(row)
    return np.concatenate(strips, axis=0)


def mask_figure(
    clips: np.ndarray,
    masks: np.ndarray,
    merged: np.ndarray | None = None,
    num_frames: int = 8,
    style: str = "overlay",
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Figure 1 of the FAME supplementary, per clip: frames, then its mask, then (optionally) the merge.

    Args:
        clips: uint8 (N, T, H, W, 3) RGB clips.
        masks: bool (N, H, W) foreground masks.
        merged: optional uint8 (N, T, H, W, 3) FAME outputs.
        num_frames: frames shown per row.
        style: ``"overlay"`` (tinted foreground on the frames) or ``"binary"`` (white mask on black).
        names: optional label per clip.

    Returns:
        uint8 RGB image.
    """
    if clips.ndim != 5 or masks.shape != (clips.shape[0], *clips.shape[2:4]):
        raise ValueError(f"clips must be (N, T, H, W, 3) and masks (N, H, W); got {clips.shape} and {masks.shape}")
    if style not in ("overlay", "binary"):
        raise ValueError(f"style must be 'overlay' or 'binary', got {style!r}")
    rows: list[tuple[str, np.ndarray]] = []
    for n in range(clips.shape[0]):
        name = names[n] if names is not None else f"clip {n}"
        mask = masks[n].astype(bool)
        if style == "overlay":
            shown = mask_overlay(clips[n], mask)
        else:
            shown = np.repeat((mask[None, ..., None] * 255).astype(np.uint8), clips.shape[1], axis=0).repeat(3, -1)
        rows += [(f"{name}: frames", clips[n]), (f"{name}: FAME mask ({mask.mean():.0%} kept)", shown)]
        if merged is not None:
            rows.append((f"{name}: merged", merged[n]))
    return clip_rows_figure(rows, num_frames)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
