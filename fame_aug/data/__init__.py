"""Video data for FAME: decoding, datasets, clip samplers, augmentation presets, generated clips."""

from fame_aug.data import presets
from fame_aug.data.background_bias import MOTIONS, BackgroundBiasConfig, make_background_bias_dataset
from fame_aug.data.datasets import (
    HMDB51,
    UCF101,
    BadVideoWarning,
    DuplicateVideoWarning,
    KineticsFolder,
    VideoClipDataset,
    VideoList,
    collate_clips,
)
from fame_aug.data.decode import (
    FRAME_SUFFIXES,
    VIDEO_SUFFIXES,
    FrameFolder,
    VideoDecodeError,
    VideoFile,
    center_crop,
    center_square,
    open_video,
    read_clip,
    read_frames,
    resize_frame,
    to_float_clips,
    to_uint8_clips,
)
from fame_aug.data.readers import READERS, PyAVVideo, Video, VideoReader
from fame_aug.data.sampling import ClipSampler, eval_sampler, finetune_sampler, pretrain_sampler
from fame_aug.data.synthetic import moving_object_clips

__all__ = [
    "FRAME_SUFFIXES",
    "HMDB51",
    "MOTIONS",
    "READERS",
    "UCF101",
    "VIDEO_SUFFIXES",
    "BackgroundBiasConfig",
    "BadVideoWarning",
    "ClipSampler",
    "DuplicateVideoWarning",
    "FrameFolder",
    "KineticsFolder",
    "PyAVVideo",
    "Video",
    "VideoClipDataset",
    "VideoDecodeError",
    "VideoFile",
    "VideoList",
    "VideoReader",
    "center_crop",
    "center_square",
    "collate_clips",
    "eval_sampler",
    "finetune_sampler",
    "make_background_bias_dataset",
    "moving_object_clips",
    "open_video",
    "presets",
    "pretrain_sampler",
    "read_clip",
    "read_frames",
    "resize_frame",
    "to_float_clips",
    "to_uint8_clips",
]
