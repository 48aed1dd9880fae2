"""Pluggable video readers: a small protocol, OpenCV (the default) and PyAV (``pip install fame-aug[pyav]``).

A reader is anything that opens a path and returns a :class:`Video`: an object with a
``num_frames`` attribute and a ``read(indices, size=None)`` method returning uint8 RGB frames
(N, H, W, 3), frames past the real end repeating the last one. Datasets take ``reader=`` (a name
in ``READERS`` or such a callable); frame folders are always read as images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fame_aug.data.decode import FrameSize, VideoDecodeError, VideoFile, check_frame_size, resize_frame

__all__ = ["READERS", "PyAVVideo", "Video", "VideoReader", "resolve_reader"]


@runtime_checkable
class Video(Protocol):
    """An opened video: its frame count and random access to its frames."""

    num_frames: int

    def read(self, indices: Sequence[int], size: FrameSize = None) -> np.ndarray:
        """uint8 RGB frames (N, H, W, 3) at ``indices`` (any order, repeats allowed), resized to ``size``."""
        ...


VideoReader = Callable[[Path], Video]


class PyAVVideo:
    """A video file decoded with PyAV (FFmpeg's libraries through the ``av`` package).

    Frames are counted in decoding order from the first one, as OpenCV counts them; a read decodes
    from the start of the file up to the last frame it needs (no seeking, so frame ``i`` is the
    ``i``-th decoded frame in every container). ``num_frames`` is the stream's count, or the
    decoded count where the container reports none.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            import av
        except ImportError as error:
            raise ImportError("the PyAV reader needs the av package: pip install fame-aug[pyav]") from error
        self._av = av
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoDecodeError(f"video file not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise VideoDecodeError(f"video file is empty (0 bytes): {self.path}")
        self.decoded_frames: int | None = None  # set when a read reaches the real end of the video
        with self._open() as container:
            self.num_frames = int(container.streams.video[0].frames)
        if self.num_frames == 0:
            self.num_frames = self.count_frames()
        if self.num_frames < 2:
            raise VideoDecodeError(f"{self.path} holds {self.num_frames} frames: not a video")

    def _open(self, motion_vectors: bool = False) -> Any:
        try:
            container = self._av.open(str(self.path), metadata_errors="replace")  # e.g. Latin-1 titles
        except self._av.FFmpegError as error:
            raise VideoDecodeError(f"PyAV cannot open {self.path} ({error})") from None
        if not container.streams.video:
            container.close()
            raise VideoDecodeError(f"{self.path} has no video stream")
        if motion_vectors:
            container.streams.video[0].codec_context.options = {"flags2": "+export_mvs"}
        return container

    def _frames(self, last: int | None = None, motion_vectors: bool = False) -> Any:
        """Decoded frames in order, up to index ``last``; a decoding error ends the video there."""
        with self._open(motion_vectors) as container:
            try:
                for index, frame in enumerate(container.decode(video=0)):
                    yield frame
                    if last is not None and index >= last:
                        return
            except self._av.FFmpegError:
                return

    def count_frames(self) -> int:
        """Count the frames by decoding them all (for containers that report no count)."""
        self.decoded_frames = sum(1 for _ in self._frames())
        return self.decoded_frames

    def read(self, indices: Sequence[int], size: FrameSize = None) -> np.ndarray:
        """Decode the frames at ``indices`` as uint8 RGB (N, H, W, 3); past the end repeats the last.

        Raises:
            VideoDecodeError: if no frame at or after ``min(indices)`` can be decoded.
        """
        size = check_frame_size(size)
        wanted = sorted({int(i) for i in indices})
        if not wanted or wanted[0] < 0:
            raise ValueError(f"indices must be non-negative frame numbers, got {list(indices)[:8]}")
        frames: dict[int, np.ndarray] = {}
        keep, decoded = set(wanted), 0
        rgb = self._av.video.reformatter.VideoReformatter()  # one converter for the read: 3x faster
        for index, frame in enumerate(self._frames(last=wanted[-1])):
            decoded = index + 1
            if index in keep:
                frames[index] = resize_frame(rgb.reformat(frame, format="rgb24").to_ndarray(), size)
        if decoded <= wanted[-1]:
            self.decoded_frames = decoded  # the end: frames past it do not exist
        if not frames:
            raise VideoDecodeError(f"no frame of {self.path} could be decoded at or after frame {wanted[0]}")
        last = frames[max(frames)]
        return np.stack([frames.get(int(i), last) for i in indices])

    def motion_vectors(self, indices: Sequence[int]) -> list[np.ndarray]:
        """The codec's motion vectors of the frames at ``indices`` (for motion-vector masks).

        Returns:
            One structured array per index, with FFmpeg's fields (``source``, ``w``, ``h``,
            ``src_x``, ``src_y``, ``dst_x``, ``dst_y``, ...); empty for intra-coded frames and
            frames past the end.
        """
        wanted = {int(i) for i in indices}
        found: dict[int, np.ndarray] = {}
        for index, frame in enumerate(self._frames(last=max(wanted), motion_vectors=True)):
            if index in wanted:
                vectors = frame.side_data.get("MOTION_VECTORS") if hasattr(frame.side_data, "get") else None
                found[index] = vectors.to_ndarray() if vectors is not None else np.empty(0)
        return [found.get(int(i), np.empty(0)) for i in indices]


READERS: dict[str, VideoReader] = {"opencv": VideoFile, "pyav": PyAVVideo}


def resolve_reader(reader: str | VideoReader) -> VideoReader:
    """The reader a name in ``READERS`` stands for, or ``reader`` itself if it is callable."""
    if isinstance(reader, str):
        if reader not in READERS:
            raise ValueError(f"reader must be one of {sorted(READERS)} or a callable, got {reader!r}")
        return READERS[reader]
    if not callable(reader):
        raise TypeError(f"reader must be a name in {sorted(READERS)} or a callable path -> Video, got {reader!r}")
    return reader
