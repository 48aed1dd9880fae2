"""Decode clips from video files with OpenCV, as uint8 RGB frames.

``read_clip(path, start=0)`` reads frames ``start, start + 2, ...`` (16 of them), crops the
centre square and resizes it with ``INTER_AREA``: exactly how the clips of
``shared/golden`` were cut, so it reproduces them byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

__all__ = ["center_square", "read_clip", "read_frames", "to_float_clips"]


def read_frames(path: str | Path, start: int = 0, num_frames: int = 16, stride: int = 2) -> np.ndarray:
    """Decode frames ``start + i * stride`` for ``i < num_frames``, as uint8 RGB (T, H, W, 3).

    The container's frame count is not trusted (some files report frames they do not hold):
    decoding stops at the first frame that cannot be read. A video that ends early repeats its
    last decoded frame to fill the clip.

    Args:
        path: video file readable by OpenCV.
        start: index of the first frame (0-based).
        num_frames: frames in the clip.
        stride: step between frames.

    Returns:
        uint8 array (num_frames, H, W, 3), RGB.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: on bad arguments, or if no frame at or after ``start`` can be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    for name, value, low in (("start", start, 0), ("num_frames", num_frames, 1), ("stride", stride, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ValueError(f"OpenCV cannot open {path}")
        if start > 0:
            capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        frames: list[np.ndarray] = []
        index = start
        last = start + (num_frames - 1) * stride
        while index <= last:
            if (index - start) % stride == 0:
                ok, frame = capture.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            elif not capture.grab():  # skipped frames are decoded but not converted
                break
            index += 1
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"no frame could be decoded from {path} at or after frame {start}")
    frames.extend([frames[-1]] * (num_frames - len(frames)))
    return np.stack(frames)


def center_square(frames: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Crop the centre square of (T, H, W[, C]) frames and resize it to ``size``.

    ``interpolation`` is an OpenCV flag: ``INTER_AREA`` (default) for images, ``INTER_NEAREST``
    for label maps.
    """
    if frames.ndim not in (3, 4):
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, C), got shape {frames.shape}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    height, width = frames.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = frames[:, top : top + side, left : left + side]
    return np.stack([cv2.resize(frame, (size, size), interpolation=interpolation) for frame in crop])


def read_clip(path: str | Path, start: int = 0, num_frames: int = 16, stride: int = 2, size: int = 112) -> np.ndarray:
    """A centre-cropped square clip, uint8 RGB (T, size, size, 3): ``read_frames`` + ``center_square``."""
    return center_square(read_frames(path, start, num_frames, stride), size)


def to_float_clips(clips: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 clips (N, T, H, W, C) to float (N, C, T, H, W) in [0, 1], the layout FAME expects."""
    tensor = torch.as_tensor(clips)
    if tensor.dtype != torch.uint8 or tensor.dim() != 5:
        raise ValueError(f"clips must be uint8 (N, T, H, W, C), got {tensor.dtype} {tuple(tensor.shape)}")
    return tensor.permute(0, 4, 1, 2, 3).float().div_(255)
