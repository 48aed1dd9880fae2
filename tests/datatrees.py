"""Small generated video trees for the dataset tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_video(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """Write RGB uint8 (T, H, W, 3) frames losslessly (FFV1 in AVI)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def counter_frames(count: int, height: int = 24, width: int = 32) -> np.ndarray:
    """Frames whose value encodes their index: frame i is filled with i (count <= 256)."""
    return np.stack([np.full((height, width, 3), i, np.uint8) for i in range(count)])


def frame_numbers(clips: np.ndarray) -> np.ndarray:
    """Inverse of counter_frames for decoded (..., H, W, 3) clips: the frame index of each frame."""
    return np.asarray(clips, np.float64).mean(axis=(-3, -2, -1)).round().astype(int)


def write_frame_folder(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames, 1):
        cv2.imwrite(str(folder / f"img_{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder
