"""Background Erasing, motion-guided token masks and pluggable video readers."""

from __future__ import annotations

from pathlib import Path

import kornia.augmentation as K
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import moving_square_clips
from datatrees import counter_frames, frame_numbers, write_video

from fame_aug import BackgroundErasing, background_erasing, motion_token_mask, token_saliency
from fame_aug.data import READERS, UCF101, PyAVVideo, VideoFile, eval_sampler, presets
from fame_aug.functional import _as_bcthw, _foreground_scores

SHARED = Path(__file__).resolve().parents[2] / "shared" / "videos"


# 1. Background Erasing.
class TestBackgroundErasing:
    def test_blends_one_of_the_clips_own_frames_into_every_frame(self) -> None:
        video = torch.rand(3, 3, 6, 8, 8)
        out = background_erasing(video, torch.tensor([0, 2, 5]), torch.tensor([0.0, 0.5, 1.0]))
        assert torch.equal(out[0], video[0])  # weight 0: bit for bit
        torch.testing.assert_close(out[1], 0.5 * video[1] + 0.5 * video[1, :, 2:3])
        assert torch.equal(out[2], video[2, :, 5:6].expand_as(video[2]))
        # The still frame carries no motion: frame differences shrink by (1 - w).
        torch.testing.assert_close(out[1].diff(dim=1), 0.5 * video[1].diff(dim=1))

    def test_layouts_dtypes_and_checks(self) -> None:
        video = torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8)
        frames, weights = torch.tensor([1, 3]), torch.tensor([0.25, 0.0])
        out = background_erasing(video, frames, weights)
        assert out.dtype == torch.uint8 and torch.equal(out[1], video[1])
        expected = (0.75 * video[0].float() + 0.25 * video[0, :, 1:2].float()).round()
        assert (out[0].float() - expected).abs().max() <= 0
        btchw = background_erasing(video.transpose(1, 2), frames, weights, data_format="BTCHW")
        assert torch.equal(btchw.transpose(1, 2), out)
        with pytest.raises(ValueError, match="frames must index the clips' 4 frames"):
            background_erasing(video, torch.tensor([0, 4]), weights)
        with pytest.raises(ValueError, match=r"weights must lie in \[0, 1\]"):
            background_erasing(video, frames, torch.tensor([0.2, 1.5]))
        with pytest.raises(TypeError, match="frames must be a"):
            background_erasing(video, frames.float(), weights)

    def test_module_draws_replays_and_keeps_undrawn_clips(self) -> None:
        generator = torch.Generator().manual_seed(0)
        be = BackgroundErasing(weight=(0.2, 0.4), p=0.5, generator=generator)
        video = torch.rand(64, 3, 4, 8, 8)
        out = be(video)
        params = be._params
        drawn = params["batch_prob"]
        assert 10 < int(drawn.sum()) < 54
        assert torch.equal(out[~drawn], video[~drawn])
        assert ((params["weight"] >= 0.2) & (params["weight"] <= 0.4)).all()
        assert ((params["frame"] >= 0) & (params["frame"] < 4)).all()
        assert torch.equal(be(video, params=params), out)
        with pytest.raises(ValueError, match="params were drawn for a batch of shape"):
            be(video[:8], params=params)
        same = BackgroundErasing(same_on_batch=True)
        same(video)
        assert len(set(same._params["frame"].tolist())) == 1 and len(set(same._params["weight"].tolist())) == 1

    def test_settings_checked_and_a_lone_clip_is_erased(self) -> None:
        with pytest.raises(ValueError, match="low <= high"):
            BackgroundErasing(weight=(0.5, 0.2))
        be = BackgroundErasing(weight=(0.5, 0.5))
        with pytest.raises(ValueError, match="p must"):
            be.p = 2.0
        video = moving_square_clips(1, 4, 16)
        assert not torch.equal(be(video), video)  # no partner needed, unlike FAME

    def test_kornia_container_compile_and_gradient(self) -> None:
        seq = K.AugmentationSequential(
            BackgroundErasing(),
            K.VideoSequential(K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), data_format="BCTHW", same_on_frame=True),
        )
        video = torch.rand(4, 3, 4, 16, 16)
        out = seq(video)
        assert torch.equal(seq(video, params=seq._params), out)
        be = BackgroundErasing(p=0.5)
        compiled = torch.compile(be, fullgraph=True)
        torch.manual_seed(0)
        first = compiled(video)
        torch.testing.assert_close(be(video, params=be._params), first)  # inductor fuses the blend
        clips = video.double().requires_grad_()
        frames, weights = torch.tensor([0, 1, 2, 3]), torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda v: background_erasing(v, frames, weights), (clips[:, :, :, :3, :3],))

    def test_in_the_pretraining_pipeline(self) -> None:
        augment = presets.pretrain(16, fame=False, color=False, erase=BackgroundErasing(weight=(1.0, 1.0)))
        clips = torch.from_numpy(np.stack([np.stack([counter_frames(4, 16, 16)] * 2)] * 2))  # (B, 2, T, H, W, 3)
        query, key = augment(clips)
        assert query[:, :, 0].sub(query[:, :, 1]).abs().max() == 0  # weight 1: every frame is the still one
        assert key[:, :, 0].sub(key[:, :, 1]).abs().max() > 0  # the key view is untouched


# 2. Motion-guided token masks.
def by_hand_saliency(video: torch.Tensor, tubelet: tuple[int, int, int], mode: str) -> torch.Tensor:
    """Tubelet pooling of FAME's score, chunk by chunk and patch by patch."""
    t, h, w = tubelet
    clips = _as_bcthw(video, "BCTHW")
    rows = []
    for clip in clips:
        tokens = []
        for start in range(0, clip.shape[1], t):
            window = [min(start + i, clip.shape[1] - 1) for i in range(t + 1)]
            score = _foreground_scores(clip[:, window][None], mode)[0]
            for y in range(0, score.shape[0], h):
                for x in range(0, score.shape[1], w):
                    tokens.append(score[y : y + h, x : x + w].mean())
        rows.append(torch.stack(tokens))
    return torch.stack(rows)


@pytest.mark.parametrize("mode", ["motion", "official", "stabilized"])
def test_token_saliency_is_the_tubelet_pooled_score(mode: str) -> None:
    video = moving_square_clips(2, 8, 32, seed=1)
    expected = by_hand_saliency(video, (2, 8, 8), mode)
    torch.testing.assert_close(token_saliency(video, (2, 8, 8), mode), expected.float(), atol=1e-5, rtol=1e-5)


def test_token_order_is_the_patch_embeddings() -> None:
    video = torch.zeros(1, 3, 4, 32, 32)
    video[0, :, 2:4, 16:32, 0:16] = 1.0  # appears in chunk 1, row 1, column 0
    embed = torch.nn.Conv3d(3, 1, kernel_size=(2, 16, 16), stride=(2, 16, 16), bias=False)
    torch.nn.init.constant_(embed.weight, 1.0)
    tokens = embed(video).flatten(2).transpose(1, 2)[0, :, 0]  # (N,) in a ViT's order
    assert tokens.argmax().item() == 1 * 4 + 1 * 2 + 0 == torch.nonzero(tokens).flatten().max().item()


@pytest.mark.parametrize("strategy", ["motion", "keep_motion", "random"])
def test_exact_count_and_strategies(strategy: str) -> None:
    video = moving_square_clips(3, 8, 32, seed=2)
    mask = motion_token_mask(video, (2, 8, 8), mask_ratio=0.75, mode="motion", strategy=strategy)
    assert mask.shape == (3, 64) and mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [48, 48, 48]
    scores = token_saliency(video, (2, 8, 8), "motion")
    top = scores.argsort(dim=1, descending=True)
    if strategy == "motion":  # the 48 most moving tokens are masked
        assert (scores[mask].view(3, -1).min(dim=1).values >= scores[~mask].view(3, -1).max(dim=1).values).all()
    if strategy == "keep_motion":  # half of the 16 visible tokens are the 8 most moving
        assert not mask.gather(1, top[:, :8]).any()
        assert mask.gather(1, top[:, 8:16]).float().mean() > 0.5


def test_ties_are_broken_by_the_generator_and_inputs_checked() -> None:
    still = torch.full((2, 3, 4, 16, 16), 0.5)  # no motion: every token ties
    first = motion_token_mask(still, (2, 8, 8), 0.5, "motion", generator=torch.Generator().manual_seed(0))
    again = motion_token_mask(still, (2, 8, 8), 0.5, "motion", generator=torch.Generator().manual_seed(0))
    other = motion_token_mask(still, (2, 8, 8), 0.5, "motion", generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and not torch.equal(first, other) and first.sum().item() == 8
    with pytest.raises(ValueError, match="multiples of the tubelet"):
        motion_token_mask(still, (3, 8, 8))
    with pytest.raises(ValueError, match=r"mask_ratio must be a number in \[0, 1\)"):
        motion_token_mask(still, (2, 8, 8), mask_ratio=1.0)
    with pytest.raises(ValueError, match="strategy must be one of"):
        motion_token_mask(still, (2, 8, 8), strategy="tube")


def test_visible_tokens_feed_an_encoder() -> None:
    video = moving_square_clips(2, 4, 32)
    mask = motion_token_mask(video, (2, 16, 16), mask_ratio=0.5, mode="motion")
    embed = torch.nn.Conv3d(3, 8, kernel_size=(2, 16, 16), stride=(2, 16, 16))
    tokens = embed(video).flatten(2).transpose(1, 2)  # (B, N, D)
    visible = tokens[~mask].view(2, -1, 8)
    assert visible.shape == (2, 4, 8)
    assert F.mse_loss(visible, tokens[~mask].view(2, 4, 8)) == 0


# 3. Pluggable video readers.
def test_a_dataset_takes_a_reader(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_video(tmp_path / "videos" / "Walk" / f"v_Walk_g0{ord(name) - 96}_c01.avi", counter_frames(20, 16, 16))
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 Walk\n")
    (splits / "trainlist01.txt").write_text("Walk/v_Walk_g01_c01.avi 1\n")
    (splits / "testlist01.txt").write_text("Walk/v_Walk_g02_c01.avi\n")
    options = {"sampler": eval_sampler(4, 2, 2), "frame_size": None}
    clips = {name: UCF101(tmp_path / "videos", splits, train=False, reader=name, **options)[0][0] for name in READERS}
    assert torch.equal(clips["opencv"], clips["pyav"])
    numbers = frame_numbers(clips["pyav"].numpy())
    assert numbers.shape == (2, 4) and (np.diff(numbers, axis=1) == 2).all()  # frame i is frame i in both
    calls = []

    def mine(path: Path) -> VideoFile:
        calls.append(path)
        return VideoFile(path)

    UCF101(tmp_path / "videos", splits, train=False, reader=mine, **options)[0]
    assert calls and calls[0].name == "v_Walk_g02_c01.avi"
    with pytest.raises(ValueError, match="reader must be one of"):
        UCF101(tmp_path / "videos", splits, train=False, reader="decord")


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/videos")
def test_pyav_reads_the_frames_opencv_reads_on_the_shared_clips() -> None:
    videos = sorted(p for p in SHARED.iterdir() if p.suffix in (".avi", ".mp4"))
    assert videos
    for path in videos:
        opencv, pyav = VideoFile(path), PyAVVideo(path)
        count = min(opencv.num_frames, pyav.num_frames)
        indices = [0, 1, count // 2, count - 2]
        a, b = opencv.read(indices, (64, 64)), pyav.read(indices, (64, 64))
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0, path.name


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/videos")
def test_pyav_exports_motion_vectors() -> None:
    path = next(p for p in sorted(SHARED.iterdir()) if p.suffix == ".mp4")
    vectors = PyAVVideo(path).motion_vectors([0, 1, 2])
    assert len(vectors) == 3 and len(vectors[0]) == 0  # the first frame is intra-coded
    assert any(len(v) and {"src_x", "dst_x"} <= set(v.dtype.names) for v in vectors[1:])
