"""mode="stabilized": camera-motion estimation, alignment, and masks under a moving camera."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import requires_cuda

from fame_aug import FAME, foreground_mask
from fame_aug._stabilize import frame_translations, shift_frames
from fame_aug.data import moving_object_clips, to_float_clips
from fame_aug.data.synthetic import background_texture, draw_object


def panned_clip(steps: list[tuple[int, int]], size: int = 112, seed: int = 0) -> torch.Tensor:
    """(1, 3, T, size, size) views of a textured scene whose top-left corner moves by ``steps``.

    An object crosses the view as well (a fifth of the frame), which the estimate must ignore.
    """
    rng = np.random.default_rng(seed)
    path = np.concatenate([[[0, 0]], np.cumsum(steps, axis=0)])
    path -= path.min(axis=0)
    scene = background_texture("blobs", size + int(path.max()) + 1, rng)
    frames = []
    for t, (top, left) in enumerate(path):
        frame = scene[top : top + size, left : left + size].copy()
        draw_object(frame, "disc", (size * (0.3 + 0.03 * t), size / 2), size * 0.25, np.array([250, 30, 30]))
        frames.append(frame)
    return to_float_clips(np.stack(frames)[None])


class TestFrameTranslations:
    def test_recovers_the_camera_path_despite_the_object(self) -> None:
        steps = [(3, -5), (2, -4), (0, -6), (-3, 2), (1, 7), (0, 0), (-2, -2)]
        video = panned_clip(steps)
        found = frame_translations(video.mean(dim=1))[0]
        # The view moved by +step through the scene, so frame t+1 at x - step shows frame t at x.
        assert torch.allclose(found, -torch.tensor(steps, dtype=found.dtype), atol=0.75), found

    def test_static_camera_gives_zero(self) -> None:
        found = frame_translations(panned_clip([(0, 0)] * 7).mean(dim=1))
        assert found.abs().max() < 0.5, found

    def test_non_square_frames_scale_each_axis(self) -> None:
        video = panned_clip([(4, -6)] * 5, size=96)[..., 16:80, :]  # (64, 96) frames
        found = frame_translations(video.mean(dim=1))[0]
        assert torch.allclose(found, torch.tensor([[-4.0, 6.0]] * 5), atol=0.75), found


class TestShiftFrames:
    def test_samples_at_the_offset_and_marks_the_outside(self) -> None:
        frames = torch.arange(2 * 3 * 16, dtype=torch.float32).view(2, 3, 4, 4)  # (N, C, H, W)
        shifted, valid = shift_frames(frames, torch.tensor([[1, -1], [0, 0]])[:, None])  # shared by channels
        assert shifted.shape == (2, 3, 4, 4) and valid.shape == (2, 1, 4, 4)
        assert torch.equal(shifted[0, :, :3, 1:], frames[0, :, 1:, :3])
        assert torch.equal(shifted[1], frames[1]) and valid[1].all()
        assert valid[0, 0].sum() == 9 and not valid[0, 0, 3].any() and not valid[0, 0, :, 0].any()


class TestStabilizedMask:
    @pytest.mark.parametrize("pan", [3.0, 6.0])
    def test_keeps_the_object_under_a_panning_camera(self, pan: float) -> None:
        clips, objects = moving_object_clips(8, 16, 112, seed=1, pan=pan)
        video, swept = to_float_clips(clips), torch.from_numpy(objects.any(axis=1))

        def kept(mode: str) -> float:
            mask = foreground_mask(video, beta=0.5, mode=mode)
            return float(((mask & swept).sum(dim=(1, 2)) / swept.sum(dim=(1, 2))).mean())

        stabilized, motion = kept("stabilized"), kept("motion")
        assert stabilized > 0.95 and stabilized > motion + 0.05, (stabilized, motion)

    def test_static_camera_is_as_good_as_motion_mode(self) -> None:
        # Plain and periodic backgrounds included: there the object may be all there is to align.
        clips, objects = moving_object_clips(16, 16, 112, seed=3)
        video, swept = to_float_clips(clips), torch.from_numpy(objects.any(axis=1))
        for mode in ("stabilized", "motion"):
            mask = foreground_mask(video, beta=0.5, mode=mode)
            assert ((mask & swept).sum(dim=(1, 2)) / swept.sum(dim=(1, 2))).min() > 0.97, mode

    def test_float64_and_channels_other_than_rgb(self) -> None:
        clips, _ = moving_object_clips(2, 6, 32, seed=4, pan=2.0)
        video = to_float_clips(clips).double()
        assert torch.equal(foreground_mask(video, 0.3, "stabilized"), foreground_mask(video.float(), 0.3, "stabilized"))
        grey = foreground_mask(video[:, :1], beta=0.3, mode="stabilized")  # any channel count, like "motion"
        assert grey.sum(dim=(1, 2)).tolist() == [int(0.3 * 32 * 32)] * 2

    def test_module_uses_the_mode(self) -> None:
        clips, _ = moving_object_clips(4, 8, 48, seed=5, pan=3.0)
        video = to_float_clips(clips)
        fame = FAME(beta=0.4, mode="stabilized", self_pairs=False)
        fame(video)
        assert torch.equal(fame._params["mask"], foreground_mask(video, beta=0.4, mode="stabilized"))
        assert "mode=stabilized" in repr(fame)


@requires_cuda
class TestStabilizedCuda:
    def test_matches_cpu_without_synchronising(self) -> None:
        clips, _ = moving_object_clips(4, 16, 112, seed=6, pan=4.0)
        video = to_float_clips(clips)
        cpu = foreground_mask(video, beta=0.5, mode="stabilized")
        foreground_mask(video.cuda(), beta=0.5, mode="stabilized")  # warm-up
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            gpu = foreground_mask(video.cuda(), beta=0.5, mode="stabilized").cpu()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        assert (gpu & cpu).sum() / (gpu | cpu).sum() > 0.98
