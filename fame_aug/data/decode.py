"""Decode clips from video files and frame folders with OpenCV, as uint8 RGB frames.

Two sources behind one interface (:func:`open_video`):

- a video file, read with ``cv2.VideoCapture``: it seeks to each run of needed frames and
  decodes only up to the last one, converting and resizing only the frames it keeps;
- a folder of pre-extracted frames (``<video>/img_00001.jpg`` ...): it reads only the needed
  images.

Frames are resized on the CPU while still uint8 (see :func:`resize_frame`), so nothing
full-size ever becomes float. ``read_clip(path, start=0)`` reproduces the published
implementation's clips byte for byte (16 frames at stride 2, centre square, ``INTER_AREA``;
``tests/test_golden.py``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

__all__ = [
    "FRAME_SUFFIXES",
    "VIDEO_SUFFIXES",
    "FrameFolder",
    "VideoDecodeError",
    "VideoFile",
    "center_crop",
    "center_square",
    "check_frame_size",
    "open_video",
    "read_clip",
    "read_frames",
    "resize_frame",
    "to_float_clips",
    "to_uint8_clips",
]

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# Needed frames closer than this are decoded in one sequential run; farther apart, the reader
# seeks. Seeking lands on the previous keyframe and decodes forward, so it only pays across gaps.
_SEEK_GAP = 48

FrameSize = int | tuple[int, int] | None


class VideoDecodeError(ValueError):
    """A video file, or a frame of a frame folder, that cannot be opened or decoded."""


def _resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to (height, width): an exact integer block average first, then bilinear.

    OpenCV's ``INTER_AREA`` is exact and fast for integer factors but about ten times slower
    for others; averaging by the integer part of the factor and finishing bilinearly is within
    about one grey level of ``INTER_AREA`` at a sixth of its cost.
    """
    rows, cols = frame.shape[:2]
    factor = min(rows // height, cols // width)
    if factor >= 2:
        frame = cv2.resize(frame, (cols // factor, rows // factor), interpolation=cv2.INTER_AREA)
    if frame.shape[:2] != (height, width):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
    return frame


def resize_frame(frame: np.ndarray, size: FrameSize) -> np.ndarray:
    """Resize one (H, W, C) uint8 frame.

    Args:
        frame: the frame.
        size: ``None`` keeps it; an int makes the short side that long (aspect kept); ``(H, W)``
            scales the frame to cover ``H x W`` (aspect kept) and crops the centre, so that every
            video of a dataset gives the same shape, e.g. ``(128, 171)`` for 112-pixel crops.

    Returns:
        The resized frame, uint8.
    """
    if size is None:
        return frame
    rows, cols = frame.shape[:2]
    if isinstance(size, int):
        scale = size / min(rows, cols)
        height, width = (size, round(cols * scale)) if rows <= cols else (round(rows * scale), size)
        return _resize(frame, height, width)
    height, width = size
    scale = max(height / rows, width / cols)
    # Crop the part that will be kept first, in source pixels: less to resize.
    keep_rows, keep_cols = min(rows, round(height / scale)), min(cols, round(width / scale))
    top, left = (rows - keep_rows) // 2, (cols - keep_cols) // 2
    return _resize(frame[top : top + keep_rows, left : left + keep_cols], height, width)


def check_frame_size(size: FrameSize) -> FrameSize:
    """Check a ``frame_size``: None, a positive int (shorter side) or a (H, W) pair of positive ints."""
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    if (
        isinstance(size, tuple | list)
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        return (int(size[0]), int(size[1]))
    raise ValueError(f"frame size must be None, a positive int (short side) or (height, width), got {size!r}")


def _runs(wanted: Sequence[int], gap: int) -> list[list[int]]:
    """Split sorted frame indices into runs whose neighbours are at most ``gap`` apart."""
    runs: list[list[int]] = [[wanted[0]]]
    for index in wanted[1:]:
        if index - runs[-1][-1] > gap:
            runs.append([index])
        else:
            runs[-1].append(index)
    return runs


class VideoFile:
    """A video file decoded with OpenCV.

    ``num_frames`` is what the container reports, which is not always true (some HMDB51 files
    report one frame more than they hold): :meth:`read` maps frames past the real end to the
    last decodable frame, and :meth:`count_frames` counts by decoding.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoDecodeError(f"video file not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise VideoDecodeError(f"video file is empty (0 bytes): {self.path}")
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise VideoDecodeError(f"OpenCV cannot open {self.path}")
        self.num_frames = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        self._capture: cv2.VideoCapture | None = capture  # reused by the first read: one open per clip
        self.decoded_frames: int | None = None  # set when a read reaches the real end of the video
        if self.num_frames == 0:
            self.num_frames = self.count_frames()
        if self.num_frames < 2:  # an image renamed .avi opens as one frame; an empty container as none
            capture.release()
            self._capture = None
            raise VideoDecodeError(f"{self.path} holds {self.num_frames} frames: not a video")

    def _open(self) -> cv2.VideoCapture:
        capture, self._capture = self._capture, None
        if capture is None:
            capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise VideoDecodeError(f"OpenCV cannot open {self.path}")
        return capture

    def __del__(self) -> None:
        capture = getattr(self, "_capture", None)
        if capture is not None:
            capture.release()

    def count_frames(self) -> int:
        """Count the frames by decoding them all (slow; for files whose container lies)."""
        capture = self._open()
        count = 0
        try:
            while capture.grab():
                count += 1
        finally:
            capture.release()
        self.decoded_frames = count
        return count

    def read(self, indices: Sequence[int], size: FrameSize = None) -> np.ndarray:
        """Decode the frames at ``indices`` (any order, repeats allowed) as uint8 RGB (N, H, W, 3).

        Frames past the real end of the video repeat its last decodable frame; when a read
        reaches the end, ``decoded_frames`` holds the real frame count.

        Raises:
            VideoDecodeError: if no frame at or after ``min(indices)`` can be decoded.
        """
        size = check_frame_size(size)
        wanted = sorted(set(int(i) for i in indices))
        if not wanted or wanted[0] < 0:
            raise ValueError(f"indices must be non-negative frame numbers, got {list(indices)[:8]}")
        frames: dict[int, np.ndarray] = {}
        capture = self._open()
        try:
            position = 0
            for run in _runs(wanted, _SEEK_GAP):
                if run[0] - position > _SEEK_GAP or run[0] < position:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, run[0])
                    position = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
                    if position != run[0]:  # the container cannot seek exactly: read from the start
                        capture.release()
                        capture = cv2.VideoCapture(str(self.path))
                        position = 0
                ended = False
                for index in run:
                    while position < index:
                        if not capture.grab():
                            ended = True
                            break
                        position += 1
                    if ended:
                        break
                    ok, frame = capture.read()
                    if not ok:
                        ended = True
                        break
                    position += 1
                    frames[index] = cv2.cvtColor(resize_frame(frame, size), cv2.COLOR_BGR2RGB)
                if ended:
                    self.decoded_frames = position  # the end: frames past it do not exist
                    break
        finally:
            capture.release()
        if not frames:
            raise VideoDecodeError(f"no frame of {self.path} could be decoded at or after frame {wanted[0]}")
        last = frames[max(frames)]
        return np.stack([frames.get(int(i), last) if int(i) <= max(frames) else last for i in indices])


class FrameFolder:
    """A folder of pre-extracted frames, e.g. ``img_00001.jpg`` ... (any image suffix, sorted by name)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise VideoDecodeError(f"frame folder not found: {self.path}")
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not self.files:
            raise VideoDecodeError(f"frame folder holds no images ({', '.join(FRAME_SUFFIXES)}): {self.path}")
        self.num_frames = len(self.files)
        numbers = [re.search(r"(\d+)$", p.stem) for p in self.files]
        if all(numbers):
            found = sorted(int(n.group(1)) for n in numbers if n)
            gaps = [a + 1 for a, b in itertools.pairwise(found) if b != a + 1]
            if gaps:  # a missing frame would be read as a jump in time
                raise VideoDecodeError(
                    f"frame folder {self.path} misses frame number {gaps[0]} (of {found[0]}-{found[-1]})"
                )

    def count_frames(self) -> int:
        """The number of frame images (a folder's count is exact)."""
        return self.num_frames

    def read(self, indices: Sequence[int], size: FrameSize = None) -> np.ndarray:
        """Read the frames at ``indices`` as uint8 RGB (N, H, W, 3); past the end repeats the last."""
        size = check_frame_size(size)
        cache: dict[int, np.ndarray] = {}
        out = []
        for index in indices:
            index = min(int(index), self.num_frames - 1)
            if index < 0:
                raise ValueError(f"indices must be non-negative frame numbers, got {index}")
            if index not in cache:
                image = cv2.imread(str(self.files[index]), cv2.IMREAD_COLOR)
                if image is None:
                    raise VideoDecodeError(f"unreadable frame {self.files[index]}")
                cache[index] = cv2.cvtColor(resize_frame(image, size), cv2.COLOR_BGR2RGB)
            out.append(cache[index])
        shapes = {frame.shape for frame in out}
        if len(shapes) > 1:
            raise VideoDecodeError(f"frames of {self.path} differ in size: {sorted(shapes)}")
        return np.stack(out)


def open_video(path: str | Path, reader: Any = "opencv") -> Any:
    """Open a video file with ``reader`` (a name in ``readers.READERS`` or a callable), or a frame folder.

    Returns:
        A :class:`fame_aug.data.readers.Video`, with ``num_frames`` and ``read(indices, size)``.
    """
    from fame_aug.data.readers import resolve_reader

    path = Path(path)
    return FrameFolder(path) if path.is_dir() else resolve_reader(reader)(path)


def read_frames(path: str | Path, start: int = 0, num_frames: int = 16, stride: int = 2) -> np.ndarray:
    """Decode frames ``start + i * stride`` for ``i < num_frames`` at full size, uint8 RGB (T, H, W, 3).

    A video that ends early repeats its last decoded frame to fill the clip.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: on bad arguments, or if no frame at or after ``start`` can be decoded.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video not found: {path}")
    for name, value, low in (("start", start, 0), ("num_frames", num_frames, 1), ("stride", stride, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return open_video(path).read(range(start, start + num_frames * stride, stride))


def center_square(frames: np.ndarray, size: int, interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Crop the centre square of (T, H, W[, C]) frames and resize it to ``size``.

    ``interpolation`` is an OpenCV flag: ``INTER_AREA`` (default) for images, ``INTER_NEAREST``
    for label maps.
    """
    if frames.ndim not in (3, 4):
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, C), got shape {frames.shape}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    side = min(frames.shape[1:3])
    crop = center_crop(frames, side)
    return np.stack([cv2.resize(frame, (size, size), interpolation=interpolation) for frame in crop])


def center_crop(frames: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """The central ``height`` x ``width`` (default square) region of (T, H, W[, C]) frames, as a view."""
    if frames.ndim not in (3, 4):
        raise ValueError(f"frames must be (T, H, W) or (T, H, W, C), got shape {frames.shape}")
    width = height if width is None else width
    rows, cols = frames.shape[1:3]
    if not (0 < height <= rows and 0 < width <= cols):
        raise ValueError(f"cannot crop {height}x{width} from {rows}x{cols} frames")
    top, left = (rows - height) // 2, (cols - width) // 2
    return frames[:, top : top + height, left : left + width]


def read_clip(path: str | Path, start: int = 0, num_frames: int = 16, stride: int = 2, size: int = 112) -> np.ndarray:
    """A centre-cropped square clip, uint8 RGB (T, size, size, 3): ``read_frames`` + ``center_square``."""
    return center_square(read_frames(path, start, num_frames, stride), size)


def to_float_clips(clips: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 clips (N, T, H, W, C) to contiguous float (N, C, T, H, W) in [0, 1], the layout FAME expects.

    The conversion happens on the clips' device; call it after moving uint8 clips to the GPU.
    """
    tensor = torch.as_tensor(clips)
    if tensor.dtype != torch.uint8 or tensor.dim() != 5:
        raise ValueError(f"clips must be uint8 (N, T, H, W, C), got {tensor.dtype} {tuple(tensor.shape)}")
    return tensor.permute(0, 4, 1, 2, 3).contiguous().float().div_(255)


def to_uint8_clips(video: torch.Tensor) -> np.ndarray:
    """Float clips (N, C, T, H, W) in [0, 1] back to uint8 (N, T, H, W, C) numpy arrays (rounded)."""
    if not video.is_floating_point() or video.dim() != 5:
        raise ValueError(f"video must be float (N, C, T, H, W), got {video.dtype} {tuple(video.shape)}")
    return (video.detach().permute(0, 2, 3, 4, 1).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
