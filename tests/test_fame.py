"""fame_aug.FAME: Kornia conventions, probability, pairing, replay, layout, generator, errors, dynamo."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import moving_square_clips, requires_cuda
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import fame_aug
from fame_aug import FAME, MASK_MODES, mixed_cross_entropy, still_background

PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def seeded(seed: int = 0, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@st.composite
def fame_cases(draw: st.DrawFn) -> tuple[torch.Tensor, FAME]:
    batch = draw(st.integers(2, 5))
    frames = draw(st.integers(2, 4))
    height, width = draw(st.integers(4, 20)), draw(st.integers(4, 20))
    seed = draw(st.integers(0, 2**31 - 1))
    video = torch.rand(batch, 3, frames, height, width, generator=seeded(seed))
    fame = FAME(
        beta=draw(st.floats(0.1, 0.9)),
        mode=draw(st.sampled_from(MASK_MODES)),
        p=draw(st.sampled_from([0.0, 0.3, 0.7, 1.0])),
        same_on_batch=draw(st.booleans()),
        self_pairs=draw(st.booleans()),
        generator=seeded(seed + 1),
        clean_background=draw(st.booleans()),
    )
    return video, fame


class TestSmoke:
    def test_version(self) -> None:
        assert isinstance(fame_aug.__version__, str) and fame_aug.__version__.count(".") >= 2

    def test_repr(self) -> None:
        text = repr(FAME(beta=0.3, mode="motion", p=0.5, data_format="btchw"))
        assert text == "FAME(beta=0.3, mode=motion, p=0.5, same_on_batch=False, self_pairs=True, data_format=BTCHW)"

    def test_output(self, device: torch.device) -> None:
        video = moving_square_clips().to(device)
        out = FAME(beta=0.25)(video)
        assert out.shape == video.shape and out.dtype == video.dtype and out.device == video.device

    def test_params_layout(self) -> None:
        fame = FAME(generator=seeded())
        fame(moving_square_clips())
        params = fame._params
        assert params["batch_prob"].dtype == torch.bool and params["batch_prob"].shape == (4,)
        assert params["mix_pairs"].dtype == torch.long and params["mix_pairs"].shape == (4,)
        assert params["mask"].dtype == torch.bool and params["mask"].shape == (4, 32, 32)
        assert sorted(params["mix_pairs"].tolist()) == [0, 1, 2, 3]  # a permutation of the batch

    def test_forward_parameters(self) -> None:
        params = FAME(p=0.5, generator=seeded()).forward_parameters((6, 3, 4, 8, 8))
        assert set(params) == {"batch_prob", "mix_pairs", "forward_input_shape", "source_size"}
        assert params["forward_input_shape"].tolist() == [6, 3, 4, 8, 8]

    def test_inverse_raises(self) -> None:
        with pytest.raises(NotImplementedError, match="FAME is not invertible"):
            FAME().inverse(torch.rand(2, 3, 4, 8, 8))

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
    def test_dtype_kept(self, dtype: torch.dtype, device: torch.device) -> None:
        video = moving_square_clips().to(device=device, dtype=dtype)
        fame = FAME(beta=0.25, generator=seeded(device=device))
        out = fame(video)
        assert out.dtype == dtype and out.device == video.device
        mask = fame._params["mask"][:, None, None]
        partners = video[fame._params["mix_pairs"]]
        assert torch.equal(out, torch.where(mask, video, partners))

    def test_in_sequential(self) -> None:
        pipeline = nn.Sequential(FAME(beta=0.25), nn.Identity())
        assert pipeline(moving_square_clips()).shape == (4, 3, 8, 32, 32)


class TestProperties:
    @PROPERTY_SETTINGS
    @given(fame_cases())
    def test_every_pixel_is_own_or_partner(self, case: tuple[torch.Tensor, FAME]) -> None:
        video, fame = case
        out = fame(video)
        params = fame._params
        gate = params["batch_prob"]
        source = still_background(video) if fame.clean_background else video
        chosen = torch.where(params["mask"][:, None, None], video, source[params["mix_pairs"]])
        expected = torch.where(gate.view(-1, 1, 1, 1, 1), chosen, video)
        assert torch.equal(out, expected)
        count = int(fame.beta * video.shape[-2] * video.shape[-1])
        assert params["mask"].sum(dim=(1, 2)).tolist() == [count] * video.shape[0]

    @PROPERTY_SETTINGS
    @given(fame_cases())
    def test_replay_is_bit_exact(self, case: tuple[torch.Tensor, FAME]) -> None:
        video, fame = case
        out = fame(video)
        params = fame._params
        replayed = fame(video, params=params)
        assert torch.equal(out, replayed)
        assert torch.equal(fame._params["mask"], params["mask"])

    @PROPERTY_SETTINGS
    @given(fame_cases())
    def test_btchw_equals_bcthw(self, case: tuple[torch.Tensor, FAME]) -> None:
        video, fame = case
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        fame.generator = seeded(seed)
        expected = fame(video)
        other = FAME(fame.beta, fame.mode, fame.p, fame.same_on_batch, fame.self_pairs, "BTCHW", seeded(seed))
        other.clean_background = fame.clean_background
        out = other(video.transpose(1, 2).contiguous())
        assert out.shape == (video.shape[0], video.shape[2], 3, *video.shape[3:])
        assert torch.equal(out.transpose(1, 2), expected)

    @PROPERTY_SETTINGS
    @given(fame_cases(), st.integers(0, 1000))
    def test_same_generator_seed_same_output(self, case: tuple[torch.Tensor, FAME], seed: int) -> None:
        video, fame = case
        fame.generator = seeded(seed)
        first = fame(video)
        fame.generator = seeded(seed)
        assert torch.equal(fame(video), first)

    @PROPERTY_SETTINGS
    @given(st.integers(2, 9), st.integers(0, 10_000))
    def test_no_self_pairs(self, batch: int, seed: int) -> None:
        fame = FAME(self_pairs=False, generator=seeded(seed))
        pairs = fame.forward_parameters((batch, 3, 2, 4, 4))["mix_pairs"]
        assert sorted(pairs.tolist()) == list(range(batch))
        assert (pairs != torch.arange(batch)).all()
        with_background = fame.forward_parameters((batch, 3, 2, 4, 4), source_size=batch)["mix_pairs"]
        assert (with_background != torch.arange(batch)).all()

    @PROPERTY_SETTINGS
    @given(fame_cases())
    def test_p_zero_is_identity(self, case: tuple[torch.Tensor, FAME]) -> None:
        video, fame = case
        fame.p = 0.0
        video[0, 0, 0, 0, 0] = -0.0
        out = fame(video)
        assert out.view(torch.int32).equal(video.view(torch.int32))  # byte-identical


class TestProbabilityAndPairing:
    def test_undrawn_clips_are_byte_identical(self) -> None:
        video = torch.rand(16, 3, 4, 8, 8)
        fame = FAME(p=0.5, generator=seeded(1))
        out = fame(video)
        gate = fame._params["batch_prob"]
        assert 0 < gate.sum() < 16
        assert out[~gate].view(torch.int32).equal(video[~gate].view(torch.int32))
        assert not torch.equal(out[gate], video[gate])

    def test_p_is_per_clip_probability(self) -> None:
        fame = FAME(p=0.3, generator=seeded(2))
        drawn = torch.stack([fame.forward_parameters((64, 3, 2, 4, 4))["batch_prob"] for _ in range(50)])
        assert abs(drawn.float().mean().item() - 0.3) < 0.03

    def test_same_on_batch(self) -> None:
        fame = FAME(p=0.5, same_on_batch=True, generator=seeded(3))
        gates = [fame.forward_parameters((8, 3, 2, 4, 4))["batch_prob"] for _ in range(40)]
        assert all(g.all() or not g.any() for g in gates)
        assert any(g.all() for g in gates) and any(not g.any() for g in gates)

    def test_self_pairs_allowed_by_default(self) -> None:
        fame = FAME(generator=seeded(4))
        fixed = sum(
            int((fame.forward_parameters((4, 3, 2, 4, 4))["mix_pairs"] == torch.arange(4)).sum()) for _ in range(400)
        )
        assert 300 < fixed < 500  # a uniform permutation has one fixed point on average

    def test_derangement_partners_are_uniform(self) -> None:
        fame = FAME(self_pairs=False, generator=seeded(5))
        counts = torch.zeros(4, 4)
        for _ in range(1200):
            pairs = fame.forward_parameters((4, 3, 2, 4, 4))["mix_pairs"]
            counts[torch.arange(4), pairs] += 1
        assert counts.diagonal().sum() == 0
        off_diagonal = counts[~torch.eye(4, dtype=torch.bool)]
        assert (off_diagonal - 400).abs().max() < 80

    @pytest.mark.parametrize("sources", [1, 3, 4, 10])
    def test_background_batch(self, sources: int) -> None:
        video, background = torch.rand(4, 3, 4, 8, 8), torch.rand(sources, 3, 4, 8, 8)
        fame = FAME(generator=seeded(6))
        out = fame(video, background=background)
        pairs = fame._params["mix_pairs"]
        assert pairs.min() >= 0 and pairs.max() < sources
        counts = torch.bincount(pairs, minlength=sources)
        assert counts.max() - counts[: min(sources, 4)].min() <= 1  # backgrounds used evenly
        expected = torch.where(fame._params["mask"][:, None, None], video, background[pairs])
        assert torch.equal(out, expected)

    def test_batch_of_one_with_background(self) -> None:
        out = FAME(beta=0.25)(moving_square_clips(batch=1), background=torch.zeros(1, 3, 8, 32, 32))
        assert (out == 0).float().mean() > 0.5


class TestGradients:
    def test_gradcheck(self) -> None:
        video = torch.rand(3, 3, 3, 6, 6, dtype=torch.float64, requires_grad=True)
        background = torch.rand(2, 3, 3, 6, 6, dtype=torch.float64, requires_grad=True)
        fame = FAME(p=0.7, generator=seeded(7))
        fame(video.detach(), background=background.detach())
        params = fame._params
        assert torch.autograd.gradcheck(lambda v, b: fame(v, params=params, background=b), (video, background))
        # Own batch, mask recomputed on every call from the perturbed clips (same seeded draws).
        assert torch.autograd.gradcheck(lambda v: FAME(p=0.7, generator=seeded(7))(v), (video,))
        # Still backgrounds: the gradient reaches the frame whose value each median took.
        clean = FAME(p=0.7, generator=seeded(7), clean_background=True)
        clean(video.detach(), background=background.detach())
        params = clean._params
        assert torch.autograd.gradcheck(lambda v, b: clean(v, params=params, background=b), (video, background))

    def test_gradient_flows_to_both_sources(self) -> None:
        video = torch.rand(4, 3, 4, 8, 8, requires_grad=True)
        fame = FAME(self_pairs=False, generator=seeded(8))
        fame(video).sum().backward()
        mask = fame._params["mask"][:, None, None].float().expand_as(video)
        expected = mask.clone().index_add_(0, fame._params["mix_pairs"], 1 - mask)
        assert torch.equal(video.grad, expected)


class TestCleanBackground:
    """``clean_background=True``: the partner's still background, without the partner's moving object."""

    def test_the_partner_object_is_gone(self) -> None:
        scene = 0.3 * torch.rand(4, 3, 1, 32, 32, generator=seeded(0))  # a still noise background per clip
        video = scene.expand(-1, -1, 8, -1, -1).clone()
        for b in range(4):  # clip b's bright square crosses its own band of rows
            for t in range(8):
                video[b, :, t, 8 * b : 8 * b + 6, 3 * t : 3 * t + 6] = 1.0
        assert torch.equal(still_background(video), scene)  # each pixel is covered in under half of the frames
        fame = FAME(beta=0.25, mode="motion", self_pairs=False, generator=seeded(0), clean_background=True)
        out = fame(video)
        outside = ~fame._params["mask"][:, None, None].expand_as(video)
        partner = scene[fame._params["mix_pairs"]].expand_as(video)
        assert torch.equal(out[outside], partner[outside])  # outside the mask: the partner's still scene
        assert not (out[outside] == 1.0).any()  # no pixel of the partner's square
        published = FAME(beta=0.25, mode="motion", self_pairs=False, generator=seeded(0))(video)
        assert (published[outside] == 1.0).sum() > 100  # the published merge keeps it

    def test_layouts_dtypes_and_replay(self) -> None:
        video = moving_square_clips(batch=3, frames=5, size=16)
        fame = FAME(beta=0.3, mode="motion", generator=seeded(2), clean_background=True)
        out = fame(video)
        assert torch.equal(fame(video, params=fame._params), out)
        other = FAME(beta=0.3, mode="motion", data_format="BTCHW", generator=seeded(2), clean_background=True)
        assert torch.equal(other(video.transpose(1, 2).contiguous()).transpose(1, 2), out)
        assert still_background(video.transpose(1, 2), data_format="BTCHW").shape == (3, 1, 3, 16, 16)
        clips = (video * 255).round().to(torch.uint8)  # uint8: every value one of the partner's own
        fame = FAME(beta=0.3, mode="motion", generator=seeded(2), clean_background=True)
        merged = fame(clips)
        outside = ~fame._params["mask"][:, None, None].expand_as(clips)
        partner = still_background(clips)[fame._params["mix_pairs"]].expand_as(clips)
        assert merged.dtype == torch.uint8 and torch.equal(merged[outside], partner[outside])

    def test_labels_and_setting(self) -> None:
        video = moving_square_clips(batch=4, frames=4, size=16)
        fame = FAME(beta=0.5, mode="motion", generator=seeded(3), clean_background=True, data_keys=["input", "class"])
        _, mixed = fame(video, torch.tensor([0, 1, 2, 3]))
        # every clip takes a still background, its own one included: half of the frame is replaced
        assert torch.equal(mixed[:, 1], fame._params["mix_pairs"].float()) and (mixed[:, 2] == 0.5).all()
        assert "clean_background=True" in repr(fame)
        with pytest.raises(TypeError, match="clean_background must be a bool, got str"):
            fame.clean_background = "yes"


class TestExceptions:
    @pytest.mark.parametrize("p", [-0.1, 1.1])
    def test_p_range(self, p: float) -> None:
        with pytest.raises(ValueError, match="p must lie in \\[0, 1\\]"):
            FAME(p=p)

    def test_bad_constructor_arguments(self) -> None:
        with pytest.raises(ValueError, match="beta must lie strictly between 0 and 1"):
            FAME(beta=1.0)
        with pytest.raises(ValueError, match="mode must be one of"):
            FAME(mode="fast")
        with pytest.raises(ValueError, match="data_format must be"):
            FAME(data_format="BHWCT")
        with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
            FAME(generator=0)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="self_pairs must be a bool"):
            FAME(self_pairs=1)  # type: ignore[arg-type]

    @pytest.mark.parametrize("mode", MASK_MODES)
    def test_uint8_clips_as_torchvision_holds_them(self, mode: str) -> None:
        """uint8 in, uint8 out; the masks are those of the float clips (value / 255)."""
        video8 = (moving_square_clips(batch=4) * 255).round().to(torch.uint8)
        fame = FAME(mode=mode, generator=seeded(6))
        out8 = fame(video8)
        as_float = FAME(mode=mode)
        replay = {k: v for k, v in fame._params.items() if k != "mask"}  # the mask is computed again
        out = as_float(video8.float() / 255, params=replay)
        assert out8.dtype == torch.uint8 and torch.equal(as_float._params["mask"], fame._params["mask"])
        assert torch.equal(out8, (out * 255).round().to(torch.uint8))
        kept = fame._params["mask"][:, None, None].expand_as(video8)
        assert torch.equal(out8[kept], video8[kept])  # pixels not replaced: byte-identical

    def test_floats_in_0_255_warn_once(self) -> None:
        fame, video = FAME(mode="motion"), moving_square_clips(batch=2) * 255
        with pytest.warns(UserWarning, match="values above 1.5"):
            fame(video)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fame(video)  # once per module

    def test_inside_video_sequential_says_where_to_put_it(self) -> None:
        kornia_augmentation = pytest.importorskip("kornia.augmentation")
        inside = kornia_augmentation.VideoSequential(FAME(), data_format="BCTHW")
        with pytest.raises(ValueError, match="put it before VideoSequential, not inside it"):
            inside(torch.rand(2, 3, 4, 8, 8))

    def test_video_errors(self) -> None:
        with pytest.raises(ValueError, match="5 dimensions"):
            FAME()(torch.rand(2, 3, 8))
        with pytest.raises(ValueError, match="FAME got frames, not clips"):
            FAME()(torch.rand(2, 3, 8, 8))
        with pytest.raises(TypeError, match=r"must be a uint8 \(0-255\) or float16"):
            FAME()(torch.zeros(2, 3, 4, 8, 8, dtype=torch.int32))
        with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
            FAME()(torch.rand(2, 1, 4, 8, 8))
        with pytest.raises(ValueError, match="at least 2 frames"):
            FAME()(torch.rand(2, 3, 1, 8, 8))
        with pytest.raises(ValueError, match="at least 2 frames"):  # BCTHW data read as BTCHW: T=3, C=4
            FAME(mode="motion", data_format="BTCHW")(torch.rand(2, 1, 3, 8, 8))
        with pytest.raises(ValueError, match="int\\(beta\\*H\\*W\\) = 0"):
            FAME(beta=0.05)(torch.rand(2, 3, 4, 3, 3))

    def test_background_errors(self) -> None:
        video = torch.rand(2, 3, 4, 8, 8)
        with pytest.raises(ValueError, match="background must have shape"):
            FAME()(video, background=torch.rand(2, 3, 4, 8, 9))
        with pytest.raises(TypeError, match="background must have the video's dtype"):
            FAME()(video, background=video.double())
        with pytest.raises(TypeError, match=r"background must be a torch\.Tensor"):
            FAME()(video, background=video.numpy())  # type: ignore[arg-type]

    def test_params_from_another_batch(self) -> None:
        fame = FAME(generator=seeded(9))
        fame(torch.rand(4, 3, 4, 8, 8))
        params = fame._params
        with pytest.raises(ValueError, match="params were drawn for a batch of shape"):
            fame(torch.rand(3, 3, 4, 8, 8), params=params)
        with pytest.raises(ValueError, match="params were drawn for a batch of shape"):
            fame(torch.rand(4, 3, 6, 8, 8), params=params)
        with pytest.raises(ValueError, match="source clips"):
            fame(torch.rand(4, 3, 4, 8, 8), params=params, background=torch.rand(2, 3, 4, 8, 8))
        stripped = {k: v for k, v in params.items() if k not in ("forward_input_shape", "source_size")}
        with pytest.raises(ValueError, match="mask must have shape"):
            fame(torch.rand(4, 3, 4, 16, 16), params=stripped)
        with pytest.raises(ValueError, match="batch_prob"):
            fame(torch.rand(5, 3, 4, 8, 8), params={**stripped, "mask": torch.ones(5, 8, 8, dtype=torch.bool)})
        with pytest.raises(TypeError, match="params must be a dict"):
            fame(torch.rand(4, 3, 4, 8, 8), params=[1])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="params lacks"):
            fame(torch.rand(4, 3, 4, 8, 8), params={"mask": params["mask"]})

    def test_generator_on_another_device(self) -> None:
        fame = FAME(generator=torch.Generator())
        with pytest.raises(ValueError, match="generator lives on cpu"):
            fame.forward_parameters((2, 3, 4, 8, 8), device="meta")

    def test_self_pairs_false_needs_two_clips(self) -> None:
        with pytest.raises(ValueError, match="self_pairs=False needs at least 2 clips"):
            FAME(self_pairs=False)(torch.rand(1, 3, 4, 8, 8), background=torch.rand(1, 3, 4, 8, 8))


class TestDynamo:
    @pytest.mark.parametrize(
        ("mode", "clean"),
        # stabilized takes about a minute to compile: marked slow (CI runs it with -m "").
        [pytest.param(m, False, marks=[pytest.mark.slow] if m == "stabilized" else []) for m in MASK_MODES]
        + [("motion", True)],
    )
    def test_compile_fullgraph_matches_eager(self, mode: str, clean: bool) -> None:
        import torch._inductor.config as inductor_config

        video = moving_square_clips(batch=4, frames=6, size=24)
        fame = FAME(beta=0.25, mode=mode, self_pairs=False, clean_background=clean)
        compiled = torch.compile(fame, fullgraph=True)
        with inductor_config.patch(fallback_random=True):
            torch.manual_seed(0)
            out = compiled(video)
        compiled_params = fame._params
        torch.manual_seed(0)
        eager = fame(video)
        # The same random draws, the same mask, the same merge.
        assert torch.equal(compiled_params["mix_pairs"], fame._params["mix_pairs"])
        assert torch.equal(compiled_params["mask"], fame._params["mask"])
        assert torch.equal(out, eager)

    @pytest.mark.parametrize("dynamic", [None, True])
    def test_one_compile_serves_every_batch_size(self, dynamic: bool | None) -> None:
        """A training loop meets several batch sizes (the last batch, evaluation): no recompile failure."""
        import torch._inductor.config as inductor_config

        torch._dynamo.reset()
        fame = FAME(beta=0.25, mode="motion", p=0.7)
        compiled = torch.compile(fame, fullgraph=True, dynamic=dynamic)
        for batch in (4, 6, 3):
            video = moving_square_clips(batch=batch, frames=4, size=16)
            with inductor_config.patch(fallback_random=True):
                torch.manual_seed(batch)
                out = compiled(video)
            compiled_params = fame._params
            torch.manual_seed(batch)
            eager = fame(video)
            assert torch.equal(compiled_params["batch_prob"], fame._params["batch_prob"])
            assert torch.equal(compiled_params["mix_pairs"], fame._params["mix_pairs"])
            assert torch.equal(out, eager)


@requires_cuda
class TestCuda:
    def test_no_host_device_synchronisation(self) -> None:
        video = moving_square_clips().cuda()
        background = torch.rand(3, 3, 8, 32, 32, device="cuda")
        fames = (FAME(beta=0.25, p=0.5), FAME(mode="motion", self_pairs=False), FAME(generator=seeded(0, "cuda")))
        for fame in (*fames, FAME(mode="motion", clean_background=True)):
            fame(video)  # warm-up: first calls may initialise CUDA state
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                fame(video)
                fame(video, background=background)
                fame(video, params=fame._params, background=background)
            finally:
                torch.cuda.set_sync_debug_mode("default")

    def test_matches_cpu(self) -> None:
        video = torch.rand(4, 3, 8, 32, 32, generator=seeded(1))
        fame = FAME(beta=0.25, p=0.5, generator=seeded(1))
        cpu_out = fame(video)
        # The same params give the same output on both devices, bit for bit.
        params = {k: (v.cuda() if k in ("batch_prob", "mix_pairs", "mask") else v) for k, v in fame._params.items()}
        gpu_out = FAME(beta=0.25)(video.cuda(), params=params)
        assert torch.equal(gpu_out.cpu(), cpu_out)
        # Continuous motion scores (no plateaus): the same mask up to float rounding of near ties.
        cpu_mask = fame_aug.foreground_mask(video, beta=0.25, mode="motion")
        gpu_mask = fame_aug.foreground_mask(video.cuda(), beta=0.25, mode="motion").cpu()
        assert (gpu_mask & cpu_mask).sum() / (gpu_mask | cpu_mask).sum() > 0.99

    def test_cuda_generator(self) -> None:
        video = moving_square_clips().cuda()
        first = FAME(p=0.5, generator=seeded(3, "cuda"))(video)
        assert torch.equal(FAME(p=0.5, generator=seeded(3, "cuda:0"))(video), first)
        with pytest.raises(ValueError, match="generator lives on cpu"):
            FAME(generator=seeded(3))(video)


class TestLabels:
    """data_keys=["input", "class"]: FAME returns (B, 3) labels beside the clips."""

    @staticmethod
    def mixing(**kwargs: object) -> FAME:
        return FAME(beta=0.25, mode="motion", data_keys=["input", "class"], **kwargs)  # type: ignore[arg-type]

    def test_layout_foreground_background_share(self) -> None:
        video, labels = moving_square_clips(batch=6), torch.tensor([3, 1, 4, 1, 5, 9])
        fame = self.mixing(p=0.5, generator=seeded(2))
        out, mixed = fame(video, labels)
        pairs, merged = fame._params["mix_pairs"], fame._params["batch_prob"]
        merged = merged & (pairs != torch.arange(6))  # a clip paired with itself is unchanged
        assert mixed.shape == (6, 3) and mixed.dtype == torch.float32
        assert torch.equal(mixed[:, 0], labels.float())
        assert torch.equal(mixed[:, 1], torch.where(merged, labels[pairs], labels).float())
        assert torch.equal(mixed[:, 2], torch.where(merged, 1 - 256 / 1024, 0.0))  # taken from the partner
        assert 0 < int(merged.sum()) < 6  # this seed mixes some clips and leaves others
        # The clips are exactly what the module returns without labels, for the same draw.
        assert torch.equal(out, FAME(beta=0.25, mode="motion")(video, params=fame._params))

    def test_p_zero_keeps_clips_and_labels(self) -> None:
        video, labels = moving_square_clips(batch=4), torch.tensor([0, 1, 2, 3])
        out, mixed = self.mixing(p=0.0)(video, labels)
        assert torch.equal(out, video)
        assert torch.equal(mixed, torch.stack([labels.float(), labels.float(), torch.zeros(4)], dim=1))

    def test_explicit_background_batch(self) -> None:
        video, labels = moving_square_clips(batch=4), torch.tensor([0, 1, 2, 3])
        background, background_labels = torch.rand(3, 3, 8, 32, 32), torch.tensor([7, 8, 9])
        fame = self.mixing(generator=seeded(5))
        out, mixed = fame(video, labels, background=background, background_labels=background_labels)
        pairs = fame._params["mix_pairs"]
        assert torch.equal(mixed[:, 1], background_labels[pairs].float())
        assert torch.equal(mixed[:, 2], torch.full((4,), 0.75)) and not torch.equal(out, video)

    def test_replay_gives_the_same_labels(self) -> None:
        video, labels = moving_square_clips(batch=4), torch.tensor([0, 1, 2, 3])
        fame = self.mixing(self_pairs=False)
        out, mixed = fame(video, labels)
        again, mixed_again = fame(video, labels, params=fame._params)
        assert torch.equal(again, out) and torch.equal(mixed_again, mixed)

    def test_soft_mix_and_foreground_losses(self) -> None:
        video, labels = moving_square_clips(batch=4), torch.tensor([0, 1, 2, 3])
        _, mixed = self.mixing(self_pairs=False)(video, labels)
        logits = torch.randn(4, 5)
        hard = nn.functional.cross_entropy(logits, mixed[:, 0].long())
        soft = mixed_cross_entropy(logits, mixed)
        assert torch.isfinite(hard) and torch.isfinite(soft)
        assert not torch.allclose(hard, soft)  # backgrounds come from other classes here

    def test_labels_follow_kornia_mixup(self) -> None:
        """The third column is the partner's share, as in Kornia's RandomMixUpV2, so one loss serves both."""
        kornia_augmentation = pytest.importorskip("kornia.augmentation")
        images, labels = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0])
        torch.manual_seed(3)
        mixup = kornia_augmentation.RandomMixUpV2(p=1.0, data_keys=["input", "class"])
        _, kornia_mixed = mixup(images, labels)
        logits = torch.randn(6, 5)
        lam = kornia_mixed[:, 2]  # Kornia: image = own * (1 - lam) + partner * lam
        by_hand = (1 - lam) * nn.functional.cross_entropy(logits, kornia_mixed[:, 0].long(), reduction="none")
        by_hand = by_hand + lam * nn.functional.cross_entropy(logits, kornia_mixed[:, 1].long(), reduction="none")
        assert torch.allclose(mixed_cross_entropy(logits, kornia_mixed, reduction="none"), by_hand)
        unchanged = kornia_augmentation.RandomMixUpV2(p=0.0, data_keys=["input", "class"])(images, labels)[1]
        _, ours = self.mixing(p=0.0)(moving_square_clips(batch=6), labels)
        assert torch.equal(ours, unchanged)  # a clip left unchanged: (y, y, 0) in both

    def test_a_batch_of_one_passes_through(self) -> None:
        """A ragged last batch of one clip: unchanged, recorded as not merged, nothing drawn."""
        video, generator = moving_square_clips(batch=1), seeded(4)
        before = generator.get_state()
        for fame in (self.mixing(generator=generator), self.mixing(self_pairs=False, generator=generator)):
            out, mixed = fame(video, torch.tensor([2]))
            assert torch.equal(out, video) and torch.equal(mixed, torch.tensor([[2.0, 2.0, 0.0]]))
            assert not fame._params["batch_prob"].any() and fame._params["mix_pairs"].tolist() == [0]
            assert torch.equal(fame(video, torch.tensor([2]), params=fame._params)[0], video)  # replays
        assert torch.equal(generator.get_state(), before)
        assert torch.equal(FAME()(video), video)  # without labels too

    def test_errors_name_the_argument(self) -> None:
        video, labels = moving_square_clips(batch=4), torch.tensor([0, 1, 2, 3])
        with pytest.raises(ValueError, match="data_keys must be"):
            FAME(data_keys=["input", "mask"])
        with pytest.raises(ValueError, match=r'data_keys is \["input"\]'):
            FAME()(video, labels)
        with pytest.raises(ValueError, match="needs labels"):
            self.mixing()(video)
        with pytest.raises(TypeError, match=r"params=\.\.\."):
            FAME()(video, {"batch_prob": torch.ones(4, dtype=torch.bool)})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
            self.mixing()(video, torch.tensor([0, 1]))
        with pytest.raises(TypeError, match="integer class indices"):
            self.mixing()(video, torch.zeros(4))
        with pytest.raises(ValueError, match="background_labels must be given"):
            self.mixing()(video, labels, background=torch.rand(2, 3, 8, 32, 32))
        with pytest.raises(ValueError, match="without background"):
            self.mixing()(video, labels, background_labels=torch.tensor([0, 1]))
        assert "data_keys=['input', 'class']" in repr(self.mixing())
