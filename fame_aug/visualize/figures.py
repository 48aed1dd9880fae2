"""Figure building blocks: labelled rows of frames, mask and heat-map overlays, PNG output.

All images are uint8 RGB numpy arrays (H, W, 3); ``write_png`` converts to OpenCV's BGR.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "clip_rows_figure",
    "heatmap_overlay",
    "mask_figure",
    "mask_overlay",
    "stack_images",
    "tile_row",
    "upscale",
    "write_png",
]

_LABEL_HEIGHT = 14
_GAP = 2


def mask_overlay(frames: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 40, 40)) -> np.ndarray:
    """Show the foreground of every frame: (T, H, W, 3) uint8 frames, (H, W) bool mask.

    The foreground keeps its colors, the background is greyed and darkened, and the mask's
    outline is drawn in ``color``.
    """
    grey = frames.astype(np.float32).mean(axis=-1, keepdims=True) * 0.35
    out = np.where(mask[None, ..., None], frames.astype(np.float32), grey).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    for frame in out:
        cv2.drawContours(frame, contours, -1, color, 1)
    return out


def heatmap_overlay(frames: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a JET heat map over frames: (T, H, W, 3) uint8 frames, (T, H, W) heat in [0, 1]."""
    if heat.shape != frames.shape[:3]:
        raise ValueError(f"heat must have shape {frames.shape[:3]}, got {heat.shape}")
    out = np.empty_like(frames)
    for t, (frame, level) in enumerate(zip(frames, heat, strict=True)):
        colored = cv2.applyColorMap((level.clip(0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
        colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB).astype(np.float32)
        out[t] = ((1 - alpha) * frame.astype(np.float32) + alpha * colored).clip(0, 255).astype(np.uint8)
    return out


def upscale(images: np.ndarray, min_side: int) -> np.ndarray:
    """Enlarge (..., H, W, 3) images by a whole factor (nearest neighbour) until the shorter side >= ``min_side``."""
    factor = -(-min_side // min(images.shape[-3:-1])) if min_side else 1
    if factor <= 1:
        return images
    return images.repeat(factor, axis=-3).repeat(factor, axis=-2)


def _label(width: int, text: str, color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    strip = np.full((_LABEL_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (2, _LABEL_HEIGHT - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    return strip


def tile_row(tiles: Sequence[tuple[str, np.ndarray, tuple[int, int, int] | None]], border: int = 3) -> np.ndarray:
    """Images side by side, each with a label above and an optional colored border.

    Args:
        tiles: ``(label, image (H, W, 3) uint8, border color or None)``, all the same size.
        border: border width in pixels.
    """
    if not tiles:
        raise ValueError("tiles must not be empty")
    height, width = tiles[0][1].shape[:2]
    cells = []
    for label, image, color in tiles:
        if image.shape[:2] != (height, width):
            raise ValueError(f"every tile must be {height}x{width}, got {image.shape[:2]} for {label!r}")
        framed = np.full((height + 2 * border, width + 2 * border, 3), 255, np.uint8)
        if color is not None:
            framed[:] = color
        framed[border : border + height, border : border + width] = image
        cells.append(np.concatenate([_label(framed.shape[1], label), framed], axis=0))
        cells.append(np.full((cells[-1].shape[0], _GAP, 3), 255, np.uint8))
    return np.concatenate(cells[:-1], axis=1)


def stack_images(images: Sequence[np.ndarray], title: str | None = None) -> np.ndarray:
    """Stack images vertically (padded to the widest), with an optional title strip on top."""
    width = max(image.shape[1] for image in images)
    padded = [np.pad(i, ((0, _GAP), (0, width - i.shape[1]), (0, 0)), constant_values=255) for i in images]
    body = np.concatenate(padded, axis=0)
    return np.concatenate([_label(width, title), body], axis=0) if title else body


def _sample(count: int, wanted: int) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, num=min(wanted, count)).round().astype(int))


def clip_rows_figure(rows: Sequence[tuple[str, np.ndarray]], num_frames: int = 8, min_side: int = 0) -> np.ndarray:
    """Stack labelled rows of frames: each row is ``(label, (T, H, W, 3) uint8)``, all the same H, W.

    ``num_frames`` frames are sampled uniformly from each row's clip; frames smaller than
    ``min_side`` are enlarged (nearest neighbour) so that small clips stay readable.
    """
    if not rows:
        raise ValueError("rows must not be empty")
    rows = [(label, upscale(frames, min_side)) for label, frames in rows]
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
    min_side: int = 0,
) -> np.ndarray:
    """Figure 1 of the FAME supplementary, per clip: frames, then its mask, then (optionally) the merge.

    Args:
        clips: uint8 (N, T, H, W, 3) RGB clips.
        masks: bool (N, H, W) foreground masks.
        merged: optional uint8 (N, T, H, W, 3) FAME outputs.
        num_frames: frames shown per row.
        style: ``"overlay"`` (tinted foreground on the frames) or ``"binary"`` (white mask on black).
        names: optional label per clip.
        min_side: enlarge smaller frames to this side (nearest neighbour).

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
    return clip_rows_figure(rows, num_frames, min_side)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
