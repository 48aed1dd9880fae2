"""Synthetic clips of a moving object over a textured background, with the object's masks.

They need no download, and because the object's pixels are known, they show what FAME's
mask finds: ``fame-aug demo`` draws them, and tests use them as ground truth.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["BACKGROUND_KINDS", "background_texture", "moving_object_clips"]

BACKGROUND_KINDS = ("stripes", "checkers", "noise", "gradient", "blobs")


def _colours(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 256, size=(count, 3)).astype(np.float32)


def background_texture(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size, 3) uint8 texture of one procedural family with random colours.

    Args:
        kind: one of ``BACKGROUND_KINDS``.
        size: side in pixels.
        rng: source of randomness (colours, scale, orientation).
    """
    if kind not in BACKGROUND_KINDS:
        raise ValueError(f"kind must be one of {BACKGROUND_KINDS}, got {kind!r}")
    low, high = _colours(rng, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.08, 0.25)
        phase = (np.cos(angle) * xx + np.sin(angle) * yy) / period
        weight = (np.sin(2 * np.pi * phase) > 0).astype(np.float32)
    elif kind == "checkers":
        cells = int(rng.integers(4, 12))
        weight = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2).astype(np.float32)
    elif kind == "noise":
        coarse = rng.random((max(2, size // 8), max(2, size // 8))).astype(np.float32)
        weight = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        weight = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) / np.sqrt(2) + 0.5
    else:  # blobs
        weight = np.zeros((size, size), np.float32)
        for _ in range(int(rng.integers(4, 9))):
            cy, cx = rng.random(2)
            radius = rng.uniform(0.05, 0.2)
            weight = np.maximum(weight, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)))
    texture = low[None, None] * (1 - weight[..., None]) + high[None, None] * weight[..., None]
    return texture.clip(0, 255).astype(np.uint8)


def moving_object_clips(
    num_clips: int = 4, num_frames: int = 16, size: int = 112, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Clips of one object (disc or square) crossing a textured background in a straight line.

    Each clip draws its own background family, colours, object shape, size, direction and speed.

    Args:
        num_clips: clips to make.
        num_frames: frames per clip.
        size: frame side in pixels.
        seed: everything is deterministic given the seed.

    Returns:
        ``(clips, masks)``: uint8 RGB (N, T, size, size, 3) and bool object masks (N, T, size, size).
    """
    if num_clips < 1 or num_frames < 1 or size < 8:
        raise ValueError(f"need num_clips >= 1, num_frames >= 1, size >= 8; got {num_clips}, {num_frames}, {size}")
    rng = np.random.default_rng(seed)
    clips = np.empty((num_clips, num_frames, size, size, 3), np.uint8)
    masks = np.zeros((num_clips, num_frames, size, size), bool)
    for n in range(num_clips):
        background = background_texture(BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))], size, rng)
        colour = tuple(int(c) for c in _colours(rng, 1)[0])
        radius = int(size * rng.uniform(0.08, 0.16))
        square = bool(rng.integers(2))
        angle = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        travel = size * rng.uniform(0.35, 0.6)
        start = size / 2 - direction * travel / 2
        for t in range(num_frames):
            centre = start + direction * travel * t / max(num_frames - 1, 1)
            cx, cy = round(centre[0]), round(centre[1])
            frame = background.copy()
            shape_mask = np.zeros((size, size), np.uint8)
            if square:
                cv2.rectangle(shape_mask, (cx - radius, cy - radius), (cx + radius, cy + radius), 1, -1)
            else:
                cv2.circle(shape_mask, (cx, cy), radius, 1, -1)
            frame[shape_mask > 0] = colour
            clips[n, t] = frame
            masks[n, t] = shape_mask > 0
    return clips, masks
