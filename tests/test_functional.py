"""fame_aug.foreground_mask and fame_aug.merge: smoke, cardinality, properties, exceptions, gradients."""

from __future__ import annotations

import pytest
import torch
from conftest import moving_square_clips
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fame_aug import MASK_MODES, foreground_mask, merge, still_background

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def clip_batches(draw: st.DrawFn, min_batch: int = 1) -> tuple[torch.Tensor, float, str]:
    """Random (B, 3, T, H, W) clips, with constant and sparse content as well as noise."""
    batch = draw(st.integers(min_batch, 4))
    frames = draw(st.integers(2, 5))
    height, width = draw(st.integers(3, 24)), draw(st.integers(3, 24))
    beta = draw(st.floats(0.05, 0.95))
    mode = draw(st.sampled_from(MASK_MODES))
    content = draw(st.sampled_from(["noise", "constant", "sparse"]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    video = torch.rand(batch, 3, frames, height, width, generator=gen)
    if content == "constant":
        video = video[:, :, :1, :1, :1].expand_as(video).contiguous()
    elif content == "sparse":
        video = video * (torch.rand(video.shape, generator=gen) < 0.05)
    if int(beta * height * width) < 1:
        beta = 0.95
    return video, beta, mode


class TestForegroundMask:
    def test_smoke(self, device: torch.device) -> None:
        video = moving_square_clips().to(device)
        mask = foreground_mask(video, beta=0.25)
        assert mask.shape == (4, 32, 32) and mask.dtype == torch.bool and mask.device.type == device.type

    @pytest.mark.parametrize("mode", MASK_MODES)
    def test_finds_the_moving_square(self, mode: str) -> None:
        video = moving_square_clips()
        path = torch.zeros(32, 32, dtype=torch.bool)
        path[12:20, :] = True  # the band the square sweeps
        mask = foreground_mask(video, beta=0.25, mode=mode)
        assert mask[:, path].float().mean() > 0.9

    @PROPERTY_SETTINGS
    @given(clip_batches())
    def test_exact_foreground_count(self, case: tuple[torch.Tensor, float, str]) -> None:
        video, beta, mode = case
        mask = foreground_mask(video, beta=beta, mode=mode)
        height, width = video.shape[-2:]
        assert mask.sum(dim=(1, 2)).tolist() == [int(beta * height * width)] * video.shape[0]

    @PROPERTY_SETTINGS
    @given(clip_batches())
    def test_btchw_equals_bcthw(self, case: tuple[torch.Tensor, float, str]) -> None:
        video, beta, mode = case
        expected = foreground_mask(video, beta=beta, mode=mode)
        btchw = video.transpose(1, 2).contiguous()
        assert torch.equal(foreground_mask(btchw, beta=beta, mode=mode, data_format="btchw"), expected)

    def test_motion_mode_takes_any_channel_count(self) -> None:
        video = moving_square_clips()[:, :1].repeat(1, 5, 1, 1, 1)  # 5 channels
        assert foreground_mask(video, beta=0.25, mode="motion").sum() == 4 * 256

    def test_no_autograd(self) -> None:
        video = moving_square_clips().requires_grad_()
        mask = foreground_mask(video)
        assert not mask.requires_grad and video.grad is None

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
    def test_dtypes(self, dtype: torch.dtype) -> None:
        video = moving_square_clips().to(dtype)
        mask = foreground_mask(video, beta=0.25)
        assert mask.sum(dim=(1, 2)).tolist() == [256] * 4
        path = torch.zeros(32, 32, dtype=torch.bool)
        path[12:20, :] = True
        assert mask[:, path].float().mean() > 0.9

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
    def test_non_finite_input_keeps_the_count(self, bad: float) -> None:
        video = moving_square_clips()
        video[0, :, 3, :5, :5] = bad
        video[1] = bad
        for mode in MASK_MODES:
            mask = foreground_mask(video, beta=0.25, mode=mode)
            assert mask.sum(dim=(1, 2)).tolist() == [256] * 4
        # Non-finite values count as no motion: clips 2 and 3 are untouched by them.
        assert torch.equal(mask[2:], foreground_mask(video[2:], beta=0.25, mode="motion"))

    def test_out_of_range_colors_are_clamped_for_the_color_model(self) -> None:
        video = moving_square_clips() * 3 - 1  # values in [-1, 2]
        assert foreground_mask(video, beta=0.25).sum() == 4 * 256


class TestMerge:
    def test_hard_mask_selects_pixels(self, device: torch.device) -> None:
        video = torch.rand(3, 3, 4, 8, 8, device=device)
        mask = torch.rand(3, 8, 8, device=device) > 0.5
        pairs = torch.tensor([2, 0, 1], device=device)
        out = merge(video, mask, pairs)
        expected = torch.where(mask[:, None, None], video, video[pairs])
        assert torch.equal(out, expected)

    def test_soft_mask_blends(self) -> None:
        video, background = torch.rand(2, 3, 4, 8, 8), torch.rand(5, 3, 4, 8, 8)
        weight = torch.rand(2, 8, 8)
        pairs = torch.tensor([4, 1])
        out = merge(video, weight, pairs, background=background)
        w = weight[:, None, None]
        torch.testing.assert_close(out, video * w + background[pairs] * (1 - w))

    def test_self_pair_is_identity(self) -> None:
        video = torch.rand(2, 3, 4, 8, 8)
        video[0, 0, 0, 0, 0] = -0.0
        out = merge(video, torch.rand(2, 8, 8) > 0.5, torch.tensor([0, 1]))
        assert out.view(torch.int32).equal(video.view(torch.int32))  # byte-identical, -0.0 included

    def test_btchw(self) -> None:
        video = torch.rand(3, 4, 3, 8, 8)  # (B, T, C, H, W)
        mask = torch.rand(3, 8, 8) > 0.5
        pairs = torch.tensor([1, 2, 0])
        out = merge(video, mask, pairs, data_format="BTCHW")
        expected = merge(video.transpose(1, 2), mask, pairs).transpose(1, 2)
        assert out.shape == video.shape and torch.equal(out, expected)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
    def test_dtype_kept(self, dtype: torch.dtype) -> None:
        video = torch.rand(2, 3, 4, 8, 8).to(dtype)
        mask = torch.rand(2, 8, 8) > 0.5
        out = merge(video, mask, torch.tensor([1, 0]))
        assert out.dtype == dtype
        assert torch.equal(out, torch.where(mask[:, None, None], video, video.flip(0)))

    def test_non_finite_values(self) -> None:
        video = torch.rand(2, 3, 4, 8, 8)
        video[1, :, :, 0, 0] = float("nan")
        mask = torch.zeros(2, 8, 8, dtype=torch.bool)
        mask[:, 0, 0] = True
        out = merge(video, mask, torch.tensor([1, 0]))
        assert out[1, :, :, 0, 0].isnan().all()  # clip 1 keeps its own NaN pixel
        assert out[0, :, :, 1:, :].isfinite().all()  # finite wherever neither source is NaN

    def test_gradcheck(self) -> None:
        video = torch.rand(3, 2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
        background = torch.rand(2, 2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
        hard = torch.rand(3, 4, 4) > 0.5
        soft = torch.rand(3, 4, 4, dtype=torch.float64, requires_grad=True)
        pairs = torch.tensor([1, 0, 1])
        assert torch.autograd.gradcheck(lambda v, b: merge(v, hard, pairs, background=b), (video, background))
        assert torch.autograd.gradcheck(lambda v, b, m: merge(v, m, pairs, background=b), (video, background, soft))

    def test_gradient_is_the_mask_pattern(self) -> None:
        video = torch.rand(3, 2, 2, 4, 4, requires_grad=True)
        background = torch.rand(2, 2, 2, 4, 4, requires_grad=True)
        mask = torch.rand(3, 4, 4) > 0.5
        pairs = torch.tensor([1, 0, 1])
        merge(video, mask, pairs, background=background).sum().backward()
        m = mask[:, None, None].float().expand_as(video)
        assert torch.equal(video.grad, m)
        expected_bg = torch.zeros_like(background)
        expected_bg.index_add_(0, pairs, 1 - m)
        assert torch.equal(background.grad, expected_bg)


class TestExceptions:
    def test_rank(self) -> None:
        with pytest.raises(ValueError, match="video must have 5 dimensions"):
            foreground_mask(torch.rand(3, 4, 8))
        with pytest.raises(ValueError, match="4 dimensions where clips have 5"):
            foreground_mask(torch.rand(3, 4, 8, 8))

    def test_not_a_tensor(self) -> None:
        with pytest.raises(TypeError, match=r"video must be a torch\.Tensor"):
            foreground_mask([[1.0]])  # type: ignore[arg-type]

    @pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool, torch.float8_e4m3fn])
    def test_unsupported_dtype(self, dtype: torch.dtype) -> None:
        with pytest.raises(TypeError, match=r"must be a uint8 \(0-255\) or float16, bfloat16, float32 or float64"):
            foreground_mask(torch.zeros(2, 3, 4, 8, 8, dtype=dtype))

    def test_uint8_masks_are_those_of_value_over_255(self) -> None:
        video8 = (torch.rand(3, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
        assert torch.equal(foreground_mask(video8), foreground_mask(video8.float() / 255))

    def test_official_needs_rgb(self) -> None:
        with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
            foreground_mask(torch.rand(2, 4, 4, 8, 8))

    def test_one_frame(self) -> None:
        with pytest.raises(ValueError, match="at least 2 frames"):
            foreground_mask(torch.rand(2, 3, 1, 8, 8))

    @pytest.mark.parametrize("fmt", ["NCHW", "bcthw ", 3])
    def test_data_format(self, fmt: object) -> None:
        with pytest.raises(ValueError, match="data_format must be"):
            foreground_mask(torch.rand(2, 3, 4, 8, 8), data_format=fmt)  # type: ignore[arg-type]

    @pytest.mark.parametrize("beta", [0.0, 1.0, -0.2, 1.5, float("nan")])
    def test_beta_range(self, beta: float) -> None:
        with pytest.raises(ValueError, match="beta must lie strictly between 0 and 1"):
            foreground_mask(torch.rand(2, 3, 4, 8, 8), beta=beta)

    def test_beta_type(self) -> None:
        with pytest.raises(TypeError, match="beta must be a real number"):
            foreground_mask(torch.rand(2, 3, 4, 8, 8), beta="0.5")  # type: ignore[arg-type]

    def test_beta_rounds_to_zero(self) -> None:
        with pytest.raises(ValueError, match="keeps int\\(beta\\*H\\*W\\) = 0 pixels"):
            foreground_mask(torch.rand(2, 3, 4, 3, 3), beta=0.1)

    def test_mode(self) -> None:
        with pytest.raises(ValueError, match="mode must be one of"):
            foreground_mask(torch.rand(2, 3, 4, 8, 8), mode="stabilised")

    def test_merge_mask_shape(self) -> None:
        with pytest.raises(ValueError, match="mask must have shape"):
            merge(torch.rand(2, 3, 4, 8, 8), torch.ones(2, 4, 4, dtype=torch.bool), torch.tensor([1, 0]))

    def test_merge_mask_dtype(self) -> None:
        with pytest.raises(TypeError, match="mask must be bool"):
            merge(torch.rand(2, 3, 4, 8, 8), torch.ones(2, 8, 8, dtype=torch.long), torch.tensor([1, 0]))

    def test_merge_pairs_range(self) -> None:
        with pytest.raises(ValueError, match="pairs must index the 2 source clips"):
            merge(torch.rand(2, 3, 4, 8, 8), torch.ones(2, 8, 8, dtype=torch.bool), torch.tensor([2, 0]))

    def test_merge_pairs_dtype(self) -> None:
        with pytest.raises(TypeError, match="pairs must be an int64"):
            merge(torch.rand(2, 3, 4, 8, 8), torch.ones(2, 8, 8, dtype=torch.bool), torch.tensor([1.0, 0.0]))

    @pytest.mark.parametrize("data_format", ["BCTHW", "BTCHW"])
    def test_merge_onto_a_still_background_repeats_it_over_time(self, data_format: str) -> None:
        video = torch.rand(2, 3, 4, 8, 8)
        still = still_background(video)  # (B, C, 1, H, W)
        mask = torch.rand(2, 8, 8) > 0.5
        pairs = torch.tensor([1, 0])
        if data_format == "BTCHW":
            video, still = video.transpose(1, 2), still.transpose(1, 2)
        repeated = still.expand_as(video).contiguous()
        out = merge(video, mask, pairs, background=still, data_format=data_format)
        assert torch.equal(out, merge(video, mask, pairs, background=repeated, data_format=data_format))

    def test_merge_background_shape(self) -> None:
        with pytest.raises(ValueError, match="background must have shape"):
            merge(
                torch.rand(2, 3, 4, 8, 8),
                torch.ones(2, 8, 8, dtype=torch.bool),
                torch.tensor([0, 0]),
                background=torch.rand(1, 3, 5, 8, 8),
            )

    def test_merge_background_dtype(self) -> None:
        with pytest.raises(TypeError, match="background must have the video's dtype"):
            merge(
                torch.rand(2, 3, 4, 8, 8),
                torch.ones(2, 8, 8, dtype=torch.bool),
                torch.tensor([0, 0]),
                background=torch.rand(1, 3, 4, 8, 8, dtype=torch.float64),
            )
