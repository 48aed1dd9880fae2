"""Video data for FAME: decoding real clips and generating synthetic ones."""

from fame_aug.data.decode import center_square, read_clip, read_frames, to_float_clips
from fame_aug.data.synthetic import moving_object_clips

__all__ = ["center_square", "moving_object_clips", "read_clip", "read_frames", "to_float_clips"]
