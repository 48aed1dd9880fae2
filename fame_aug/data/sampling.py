"""Where clips start: temporal samplers for pretraining, fine-tuning and evaluation.

A sampler turns a video's frame count into the frame indices of its clips, an int array
(num_clips, T). A clip is ``T`` frames at temporal stride ``s``, so it spans
``(T - 1) * s + 1`` frames (31 for the default 16 at stride 2).

Videos shorter than the span are padded: ``pad="loop"`` (default) wraps around to the first
frame, ``pad="repeat"`` repeats the last frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ClipSampler", "eval_sampler", "finetune_sampler", "pretrain_sampler"]

_PADS = ("loop", "repeat")
_MODES = ("random", "uniform", "disjoint")


@dataclass(frozen=True)
class ClipSampler:
    """Frame indices of ``num_clips`` clips of ``num_frames`` frames at ``stride``.

    Attributes:
        num_frames: frames per clip (T).
        stride: step between frames of a clip.
        num_clips: clips per video.
        mode: ``"random"`` draws each start uniformly (distinct starts when the video allows:
            the two pretraining clips come from different positions); ``"disjoint"`` draws them
            so that no two clips share a frame when the video is long enough (``num_clips``
            spans), else as far apart as it allows, in random order; ``"uniform"`` spaces the
            starts evenly from the first to the last possible one (deterministic).
        pad: ``"loop"`` or ``"repeat"``, for videos shorter than a clip.
    """

    num_frames: int = 16
    stride: int = 2
    num_clips: int = 1
    mode: str = "random"
    pad: str = "loop"

    def __post_init__(self) -> None:
        for name in ("num_frames", "stride", "num_clips"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {self.mode!r}")
        if self.pad not in _PADS:
            raise ValueError(f"pad must be one of {_PADS}, got {self.pad!r}")

    @property
    def span(self) -> int:
        """Frames one clip covers, first to last."""
        return (self.num_frames - 1) * self.stride + 1

    def starts(self, video_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """First frame of each clip, (num_clips,) int."""
        if video_frames < 1:
            raise ValueError(f"video_frames must be >= 1, got {video_frames}")
        last_start = max(video_frames - self.span, 0)
        if self.mode == "uniform":
            return np.linspace(0, last_start, self.num_clips).round().astype(np.int64)
        if rng is None:
            raise ValueError(f"mode={self.mode!r} needs an rng (numpy.random.Generator)")
        if self.mode == "disjoint":
            return self._disjoint_starts(last_start, rng)
        positions = last_start + 1
        if positions >= self.num_clips:
            return rng.choice(positions, size=self.num_clips, replace=False).astype(np.int64)
        return rng.integers(0, positions, size=self.num_clips).astype(np.int64)

    def _disjoint_starts(self, last_start: int, rng: np.random.Generator) -> np.ndarray:
        """Starts at least ``gap`` apart, ``gap`` = the span, or the most the video allows.

        Sorted starts ``s_0 <= s_1 <= ...`` with ``s_i - s_{i-1} >= gap`` are ``r_i + i * gap`` for
        sorted draws ``r_i`` in ``[0, last_start - (num_clips - 1) * gap]``; the clips are then
        handed out in random order, so clip 0 is as often the later one as the earlier one.
        """
        count = self.num_clips
        gap = self.span if count == 1 else min(self.span, last_start // (count - 1))
        room = last_start - (count - 1) * gap
        starts = np.sort(rng.integers(0, room + 1, size=count)) + gap * np.arange(count)
        return rng.permutation(starts).astype(np.int64)

    def __call__(self, video_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Frame indices (num_clips, num_frames), each in [0, video_frames)."""
        starts = self.starts(video_frames, rng)
        indices = starts[:, None] + np.arange(self.num_frames) * self.stride
        if self.pad == "loop":
            return indices % video_frames
        return np.minimum(indices, video_frames - 1)


def pretrain_sampler(num_frames: int = 16, stride: int = 2, disjoint: bool = False) -> ClipSampler:
    """Two clips from different random positions of each video (the two MoCo views).

    With ``disjoint=True`` the two clips share no frame when the video holds two spans (else
    they are as far apart as it allows), so that only what persists through the video (the
    moving object, its motion, a still background) can tell that they belong together.
    """
    return ClipSampler(num_frames, stride, num_clips=2, mode="disjoint" if disjoint else "random")


def finetune_sampler(num_frames: int = 16, stride: int = 2) -> ClipSampler:
    """One clip from a random position."""
    return ClipSampler(num_frames, stride, num_clips=1, mode="random")


def eval_sampler(num_frames: int = 16, stride: int = 2, num_clips: int = 10) -> ClipSampler:
    """``num_clips`` evenly spaced clips (the evaluation protocol uses 10)."""
    return ClipSampler(num_frames, stride, num_clips=num_clips, mode="uniform")
