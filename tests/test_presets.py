"""Augmentation presets: shapes, dtypes, devices, one draw per clip shared by its frames, FAME placement."""

from __future__ import annotations

import pytest
import torch

from fame_aug import FAME
from fame_aug.data import presets
from fame_aug.data.presets import KINETICS_MEAN, KINETICS_STD


def static_clips(
    batch: int, clips: int | None = None, frames: int = 4, size: tuple[int, int] = (40, 48)
) -> torch.Tensor:
    """uint8 clips whose frames are all identical (random per clip)."""
    shape = (batch,) if clips is None else (batch, clips)
    one_frame = torch.randint(0, 256, (*shape, 1, *size, 3), dtype=torch.uint8)
    return one_frame.expand(*shape, frames, *size, 3).contiguous()


def frames_identical(video: torch.Tensor) -> bool:
    """(..., C, T, H, W): every frame of every clip equals the clip's first frame."""
    return bool(torch.allclose(video, video[..., :1, :, :].expand_as(video), atol=1e-5))


@pytest.mark.parametrize("name", ["finetune", "probe", "eval"])
def test_single_view_presets(name: str, device: torch.device) -> None:
    torch.manual_seed(0)
    augment = getattr(presets, name)(32)
    clips = static_clips(6).to(device)
    out = augment(clips)
    assert out.shape == (6, 3, 4, 32, 32) and out.dtype == torch.float32 and out.device == clips.device
    assert frames_identical(out)  # one draw per clip, shared by its frames


def test_pretrain_two_views_fame_on_query_only(device: torch.device) -> None:
    torch.manual_seed(0)
    augment = presets.pretrain(32)
    clips = static_clips(4, clips=2).to(device)
    query, key = augment(clips)
    assert query.shape == key.shape == (4, 3, 4, 32, 32) and query.device == clips.device
    assert frames_identical(query) and frames_identical(key)
    assert isinstance(augment.query.fame, FAME) and augment.key.fame is None
    assert augment.query.fame._params["mask"].shape == (4, 32, 32)  # FAME ran after the crop
    assert presets.pretrain(32, fame=False).query.fame is None
    custom = FAME(mode="motion", beta=0.3)
    assert presets.pretrain(32, fame=custom).query.fame is custom


def test_eval_is_deterministic_and_normalised() -> None:
    grey = torch.full((2, 3, 4, 40, 40, 3), 128, dtype=torch.uint8)
    out = presets.eval(32)(grey)
    assert out.shape == (2, 3, 3, 4, 32, 32)  # clips per video kept
    expected = (128 / 255 - torch.tensor(KINETICS_MEAN)) / torch.tensor(KINETICS_STD)
    torch.testing.assert_close(out[0, 0, :, 0, 0, 0], expected)
    clips = static_clips(2)
    assert torch.equal(presets.eval(32)(clips), presets.eval(32)(clips))


def test_probe_and_eval_normalise_alike() -> None:
    """The published linear probe normalised training and test clips differently; here they match."""
    grey = torch.full((2, 4, 32, 32, 3), 100, dtype=torch.uint8)
    torch.testing.assert_close(presets.probe(32)(grey), presets.eval(32)(grey))


def test_random_draws_differ_between_clips() -> None:
    torch.manual_seed(1)
    clips = static_clips(1).expand(8, -1, -1, -1, -1).contiguous()  # 8 copies of one clip
    out = presets.finetune(32)(clips)
    assert len({tuple(o.flatten()[:50].tolist()) for o in out}) > 4


def test_errors() -> None:
    with pytest.raises(ValueError, match="crop_size must be an integer >= 8"):
        presets.finetune(4)
    with pytest.raises(TypeError, match="fame must be a bool or a FAME module"):
        presets.pretrain(112, fame="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="clips must be uint8"):
        presets.eval(32)(torch.rand(2, 4, 40, 40, 3))
    with pytest.raises(ValueError, match="two clips per video"):
        presets.pretrain(32)(static_clips(2, clips=3))


def test_color_augment_off_keeps_the_colors() -> None:
    """color=False: crop (and flip) and normalisation only; the published pipelines keep their color part."""
    clips = torch.randint(0, 256, (4, 2, 4, 16, 16, 3), dtype=torch.uint8)
    plain = presets.pretrain(16, fame=False, scale=(1.0, 1.0), flip=False, color=False)
    assert plain.query.photometric is None and plain.key.photometric is None
    query, _ = plain(clips)
    expected = presets.eval(16)(clips[:, 0])  # a full-frame crop of a 16-pixel clip is the clip itself
    assert torch.allclose(query, expected, atol=1e-5)
    assert presets.finetune(16, color=False).photometric is None
    assert presets.pretrain(16).query.photometric is not None and presets.finetune(16).photometric is not None
