"""Clip samplers: spans, coverage, distinct pretraining positions, evaluation spacing, padding."""

from __future__ import annotations

import numpy as np
import pytest

from fame_aug.data import ClipSampler, eval_sampler, finetune_sampler, pretrain_sampler


def test_default_clip_is_16_frames_at_stride_2() -> None:
    indices = finetune_sampler()(100, np.random.default_rng(0))
    assert indices.shape == (1, 16)
    assert (np.diff(indices[0]) == 2).all()
    assert pretrain_sampler().span == 31


def test_random_starts_cover_every_position() -> None:
    sampler, rng = finetune_sampler(), np.random.default_rng(0)
    starts = {int(sampler(40, rng)[0, 0]) for _ in range(400)}
    assert starts == set(range(40 - 31 + 1))


def test_pretraining_clips_come_from_different_positions() -> None:
    sampler, rng = pretrain_sampler(), np.random.default_rng(1)
    for frames in (33, 40, 300):
        for _ in range(50):
            clips = sampler(frames, rng)
            assert clips.shape == (2, 16) and clips[0, 0] != clips[1, 0]
            assert clips.max() < frames


def test_evaluation_clips_are_evenly_spaced() -> None:
    clips = eval_sampler()(301, None)
    assert clips.shape == (10, 16)
    assert clips[0, 0] == 0 and clips[-1, -1] == 300  # first frame to last frame
    assert np.ptp(np.diff(clips[:, 0])) <= 1
    assert np.array_equal(eval_sampler()(301), clips)  # deterministic


@pytest.mark.parametrize(
    ("pad", "expected"), [("loop", [0, 2, 4, 6, 8, 0, 2, 4]), ("repeat", [0, 2, 4, 6, 8, 9, 9, 9])]
)
def test_short_videos_are_padded(pad: str, expected: list[int]) -> None:
    sampler = ClipSampler(num_frames=8, stride=2, mode="uniform", pad=pad)
    assert sampler(10)[0].tolist() == expected


def test_short_video_pretraining_still_gives_two_clips() -> None:
    clips = pretrain_sampler()(5, np.random.default_rng(0))
    assert clips.shape == (2, 16) and clips.max() < 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_frames": 0}, "num_frames must be an integer >= 1"),
        ({"stride": 1.5}, "stride must be an integer >= 1"),
        ({"mode": "dense"}, "mode must be one of"),
        ({"pad": "zeros"}, "pad must be one of"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClipSampler(**kwargs)


def test_random_mode_needs_an_rng() -> None:
    with pytest.raises(ValueError, match="needs an rng"):
        finetune_sampler()(50)
    with pytest.raises(ValueError, match="video_frames must be >= 1"):
        eval_sampler()(0)


def test_disjoint_views_share_no_frame_when_the_video_allows() -> None:
    rng = np.random.default_rng(0)
    sampler = pretrain_sampler(6, 3, disjoint=True)  # span 16
    firsts = []
    for frames in (32, 40, 57):
        for _ in range(50):
            clips = sampler(frames, rng)
            assert clips.shape == (2, 6) and clips.max() < frames
            assert not set(clips[0]) & set(range(clips[1].min(), clips[1].max() + 1))  # spans apart
            assert abs(int(clips[0, 0]) - int(clips[1, 0])) >= sampler.span
            firsts.append(int(clips[0, 0]) < int(clips[1, 0]))
    assert 0.3 < np.mean(firsts) < 0.7  # the first view is as often the later one
    starts = {tuple(sampler.starts(40, rng)) for _ in range(200)}
    assert len(starts) > 10  # positions vary where there is room
    # Too short for two spans: as far apart as the video allows.
    assert sorted(sampler.starts(20, rng).tolist()) == [0, 4]
    assert pretrain_sampler(6, 3).mode == "random" and ClipSampler(4, 2, 3, "disjoint").starts(8, rng).shape == (3,)
