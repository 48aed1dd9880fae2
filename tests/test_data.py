"""fame_aug.data: decoding real clips, synthetic moving objects; fame_aug.visualize figures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import VIDEOS, require

from fame_aug import foreground_mask
from fame_aug.data import center_square, moving_object_clips, read_clip, read_frames, to_float_clips
from fame_aug.data.synthetic import _pan_travel
from fame_aug.visualize import mask_figure, write_png


def write_video(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """Write RGB uint8 (T, H, W, 3) frames as a lossless-enough MJPG AVI."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, frames.shape[2:0:-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def counter_video(tmp_path: Path) -> Path:
    """20 frames whose brightness encodes the frame index (index * 12)."""
    frames = np.stack([np.full((48, 64, 3), 12 * i, np.uint8) for i in range(20)])
    return write_video(tmp_path / "counter.avi", frames)


def frame_indices(frames: np.ndarray) -> list[int]:
    return [round(float(f.mean()) / 12) for f in frames]


class TestReadFrames:
    def test_start_and_stride(self, counter_video: Path) -> None:
        frames = read_frames(counter_video, start=3, num_frames=5, stride=3)
        assert frames.shape == (5, 48, 64, 3) and frames.dtype == np.uint8
        assert frame_indices(frames) == [3, 6, 9, 12, 15]

    def test_short_video_repeats_its_last_frame(self, counter_video: Path) -> None:
        assert frame_indices(read_frames(counter_video, start=14, num_frames=6, stride=2)) == [14, 16, 18, 18, 18, 18]

    def test_hmdb_files_that_overstate_their_frame_count(self) -> None:
        path = require(VIDEOS / "RATRACE_wave_f_nm_np1_fr_goo_37.avi")
        reported = int(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT))
        frames = read_frames(path, start=reported - 4, num_frames=4, stride=1)
        assert frames.shape[0] == 4
        assert np.array_equal(frames[-1], frames[-2])  # the last reported frame does not exist

    def test_errors(self, counter_video: Path, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            read_frames(tmp_path / "missing.avi")
        with pytest.raises(ValueError, match="stride must be an integer >= 1"):
            read_frames(counter_video, stride=0)
        with pytest.raises(ValueError, match=r"no frame of .* could be decoded"):
            read_frames(counter_video, start=500)
        (tmp_path / "junk.avi").write_bytes(b"not a video")
        with pytest.raises(ValueError):
            read_frames(tmp_path / "junk.avi")


def test_center_square_and_to_float() -> None:
    frames = np.zeros((2, 40, 60, 3), np.uint8)
    frames[:, :, 10:50] = 255  # the centre 40x40 square is white
    square = center_square(frames, 20)
    assert square.shape == (2, 20, 20, 3) and square.min() == 255
    video = to_float_clips(square[None])
    assert video.shape == (1, 3, 2, 20, 20) and video.dtype == torch.float32 and video.max() == 1.0
    with pytest.raises(ValueError, match="uint8"):
        to_float_clips(np.zeros((1, 2, 4, 4, 3), np.float32))


def test_read_clip_shapes() -> None:
    path = require(VIDEOS / "mmaction2_test.mp4")
    clip = read_clip(path, start=10, num_frames=8, stride=4, size=64)
    assert clip.shape == (8, 64, 64, 3) and clip.dtype == np.uint8


class TestSynthetic:
    def test_deterministic(self) -> None:
        a, ma = moving_object_clips(3, 8, 48, seed=5)
        b, mb = moving_object_clips(3, 8, 48, seed=5)
        c, _ = moving_object_clips(3, 8, 48, seed=6)
        assert np.array_equal(a, b) and np.array_equal(ma, mb) and not np.array_equal(a, c)

    def test_object_moves_and_fame_finds_it(self) -> None:
        clips, masks = moving_object_clips(4, 16, 64, seed=0)
        assert clips.shape == (4, 16, 64, 64, 3) and masks.shape == (4, 16, 64, 64)
        assert all(not np.array_equal(m[0], m[-1]) for m in masks)  # it moves
        keep = foreground_mask(to_float_clips(clips), beta=0.5, mode="motion").numpy()
        swept = masks.any(axis=1)
        recall = (keep & swept).sum(axis=(1, 2)) / swept.sum(axis=(1, 2))
        assert recall.mean() > 0.9

    @pytest.mark.parametrize("ramp", ["up", "down"])
    def test_a_ramping_pan_speeds_up_or_slows_down(self, ramp: str) -> None:
        steps = np.diff(_pan_travel(9, 8.0, ramp))  # the camera's speed between frames
        expected = np.arange(1, 9.0)  # up to (or down from) 8 px per frame, evenly
        assert np.allclose(steps, expected if ramp == "up" else expected[::-1]), steps
        ramped, _ = moving_object_clips(2, 9, 48, seed=0, pan=8.0, ramp=ramp)
        steady, _ = moving_object_clips(2, 9, 48, seed=0, pan=8.0)
        assert not np.array_equal(ramped, steady)

    def test_an_unknown_ramp_is_refused(self) -> None:
        with pytest.raises(ValueError, match="ramp must be one of"):
            moving_object_clips(1, 4, 32, pan=2.0, ramp="sideways")


def test_mask_figure(tmp_path: Path) -> None:
    clips, masks = moving_object_clips(2, 8, 32, seed=1)
    mask = masks.any(axis=1)
    image = mask_figure(clips, mask, merged=clips[::-1], num_frames=4)
    assert image.shape[1] == 4 * 32 + 3 * 2 and image.shape[0] == 6 * (32 + 14)
    path = write_png(tmp_path / "fig" / "masks.png", image)
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), image)
    # The mask row keeps the foreground's colors (inside its outline) and darkens the background.
    overlay_row = image[46 + 14 : 46 + 14 + 32, :32].astype(int)
    frame = clips[0, 0].astype(int)
    interior = cv2.erode(mask[0].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert (np.abs(overlay_row - frame).sum(-1)[interior] < 3).all()
    assert overlay_row[~mask[0]].mean() < 0.5 * frame[~mask[0]].mean() + 1
