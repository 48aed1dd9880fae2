"""Figure 1 of the FAME supplementary for video files: frames, FAME masks, merged clips."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fame_aug.data import read_clip, to_float_clips, to_uint8_clips
from fame_aug.functional import foreground_mask, merge, still_background
from fame_aug.visualize.figures import mask_figure

__all__ = ["masks_figure", "video_masks_figure"]


def masks_figure(
    clips: np.ndarray,
    mode: str = "official",
    beta: float = 0.5,
    num_frames: int = 8,
    style: str = "overlay",
    names: Sequence[str] | None = None,
    min_side: int = 96,
    clean_background: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """FAME masks of uint8 (N, T, H, W, 3) clips drawn under their frames.

    With several clips, a third row shows each clip merged onto the next clip's background: the
    whole partner clip (the published merge), or with ``clean_background`` its still background
    (:func:`~fame_aug.functional.still_background`, as ``FAME(clean_background=True)``).
    Frames smaller than ``min_side`` are drawn enlarged.

    Returns:
        The pair ``(image, masks)`` of the figure (uint8 RGB) and the (N, H, W) bool masks.
    """
    video = to_float_clips(clips)
    mask = foreground_mask(video, beta=beta, mode=mode)
    merged = None
    if len(clips) > 1:
        pairs = torch.arange(1, len(clips) + 1) % len(clips)
        partner = still_background(video) if clean_background else video
        merged = to_uint8_clips(merge(video, mask, pairs, background=partner))
    image = mask_figure(clips, mask.numpy(), merged, num_frames=num_frames, style=style, names=names, min_side=min_side)
    return image, mask.numpy()


def video_masks_figure(
    paths: Sequence[str | Path], size: int = 112, start: int = 0, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`masks_figure` for video files: 16 frames at stride 2 from ``start``, centre square at ``size``."""
    clips = np.stack([read_clip(path, start=start, size=size) for path in paths])
    return masks_figure(clips, names=[Path(p).stem[:24] for p in paths], **options)
