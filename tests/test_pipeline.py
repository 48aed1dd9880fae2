"""FAME in front of Kornia's VideoSequential, on real clips from ../shared/videos."""

from __future__ import annotations

import kornia.augmentation as K
import numpy as np
import pytest
import torch
from conftest import VIDEOS, require
from torch import nn

from fame_aug import FAME, MASK_MODES
from fame_aug.data import read_clip, to_float_clips

CLIPS = ["v_SoccerJuggling_g23_c01.avi", "RATRACE_wave_f_nm_np1_fr_goo_37.avi", "basketball.mp4", "mmaction2_test.mp4"]


@pytest.fixture(scope="module")
def real_clips() -> torch.Tensor:
    require(VIDEOS)
    return to_float_clips(np.stack([read_clip(VIDEOS / name, size=112) for name in CLIPS]))


def color_pipeline() -> K.VideoSequential:
    return K.VideoSequential(
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((11, 11), (0.1, 2.0), p=0.5),
        K.Normalize(mean=torch.tensor([0.43216, 0.394666, 0.37645]), std=torch.tensor([0.22803, 0.22145, 0.216989])),
        data_format="BCTHW",
        same_on_frame=True,
    )


@pytest.mark.parametrize("mode", MASK_MODES)
def test_fame_then_video_sequential(real_clips: torch.Tensor, mode: str) -> None:
    torch.manual_seed(0)
    fame, color = FAME(mode=mode, self_pairs=False), color_pipeline()
    out = nn.Sequential(fame, color)(real_clips)
    assert out.shape == real_clips.shape and out.isfinite().all()

    # The stages compose: replaying each stage's parameters reproduces the pipeline's output.
    merged = fame(real_clips, params=fame._params)
    assert torch.equal(color(merged, params=color._params), out)
    # FAME changed every clip (no self-pairs) and kept half of each frame.
    mask = fame._params["mask"]
    assert mask.sum(dim=(1, 2)).tolist() == [112 * 112 // 2] * 4
    for b in range(4):
        assert torch.equal(merged[b][:, :, mask[b]], real_clips[b][:, :, mask[b]])
        assert not torch.equal(merged[b], real_clips[b])


def test_fame_is_per_clip_not_per_frame(real_clips: torch.Tensor) -> None:
    """Inside VideoSequential a clip becomes T separate images; FAME must see the whole clip."""
    fame = FAME(generator=torch.Generator().manual_seed(0))
    merged = fame(real_clips)
    mask = fame._params["mask"]
    partners = real_clips[fame._params["mix_pairs"]]
    # One mask for all frames: every frame takes background pixels from the same partner.
    for t in range(real_clips.shape[2]):
        assert torch.equal(merged[:, :, t][:, :, ~mask[0]][0], partners[0, :, t][:, ~mask[0]])
