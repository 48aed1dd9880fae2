"""FAME inside Kornia's containers: what is supported, and what is refused with a reason.

Supported: ``K.AugmentationSequential(FAME(...), K.VideoSequential(...))`` (FAME is a Kornia mix
augmentation, so the container draws, records and replays its parameters) and a plain
``nn.Sequential``. Refused: FAME inside ``VideoSequential`` (it would get frames), ``inverse()``.
Kornia's own rules, asserted here because the README states them: a container without a
``VideoSequential`` treats its input as images, and a mix augmentation in a container takes no
class labels.
"""

from __future__ import annotations

import kornia.augmentation as K
import pytest
import torch
from conftest import moving_square_clips
from torch import nn

from fame_aug import FAME


def clips(batch: int = 4, layout: str = "BCTHW") -> torch.Tensor:
    video = moving_square_clips(batch=batch, frames=6, size=32, seed=3)
    return video if layout == "BCTHW" else video.transpose(1, 2).contiguous()


def pipeline(layout: str = "BCTHW", **fame_options: object) -> K.AugmentationSequential:
    return K.AugmentationSequential(
        FAME(beta=0.5, mode="motion", data_format=layout, **fame_options),
        K.VideoSequential(
            K.ColorJitter(0.2, 0.2, 0.2, 0.05, p=1.0),
            K.RandomHorizontalFlip(p=0.5),
            data_format=layout,
            same_on_frame=True,
        ),
    )


def test_fame_is_a_kornia_mix_augmentation() -> None:
    assert isinstance(FAME(), K.MixAugmentationBaseV2)


@pytest.mark.parametrize("layout", ["BCTHW", "BTCHW"])
def test_container_records_and_replays_fame(layout: str) -> None:
    torch.manual_seed(0)
    seq, video = pipeline(layout), clips(layout=layout)
    out = seq(video)
    assert out.shape == video.shape
    recorded = seq._params[0]
    assert recorded.name == "FAME_0"
    assert set(recorded.data) >= {"batch_prob", "mix_pairs"}
    assert torch.equal(recorded.data["mix_pairs"], seq[0]._params["mix_pairs"])
    record = seq._params
    seq(video)  # a fresh draw
    assert torch.equal(seq(video, params=record), out)  # the replay: bit for bit, FAME and jitter alike


def test_container_draws_follow_fames_generator() -> None:
    video = clips(batch=6)
    first = pipeline(generator=torch.Generator().manual_seed(5))
    second = pipeline(generator=torch.Generator().manual_seed(5))
    first(video), second(video)
    assert torch.equal(first._params[0].data["mix_pairs"], second._params[0].data["mix_pairs"])


def test_container_passes_a_lone_clip_through_fame() -> None:
    seq = K.AugmentationSequential(FAME(mode="motion"), K.VideoSequential(K.RandomGrayscale(p=0.0)))
    video = clips(batch=1)
    assert torch.equal(seq(video), video)
    assert not bool(seq._params[0].data["batch_prob"].any())


def test_container_inverse_refuses_with_the_reason() -> None:
    seq = pipeline()
    seq(clips())
    with pytest.raises(NotImplementedError, match="not invertible: the background it replaces is discarded"):
        seq.inverse(seq(clips()))


def test_fame_inside_video_sequential_says_where_it_belongs() -> None:
    with pytest.raises(ValueError, match=r"FAME got frames, not clips.*put it before VideoSequential"):
        K.VideoSequential(FAME(mode="motion"))(clips())


def test_per_frame_augmentations_go_inside_video_sequential() -> None:
    # Kornia's rule, stated in the README: a container holding no VideoSequential reads 5-D input
    # as a batch of images and refuses it before any child runs. Wrapped, the same jitter works.
    bare = K.AugmentationSequential(FAME(mode="motion"), K.ColorJitter(0.2, p=1.0))
    with pytest.raises(RuntimeError, match="input shape expected"):
        bare(clips())
    wrapped = K.AugmentationSequential(FAME(mode="motion"), K.VideoSequential(K.ColorJitter(0.2, p=1.0)))
    assert wrapped(clips()).shape == clips().shape


def test_class_labels_in_a_container() -> None:
    # Kornia's containers take no class labels for any mix augmentation (RandomMixUpV2 alike);
    # the README's recipe: FAME with data_keys first, then the container on the clips.
    seq = K.AugmentationSequential(
        FAME(mode="motion"), K.VideoSequential(K.RandomGrayscale(p=0.0)), data_keys=["input", "class"]
    )
    labels = torch.arange(4)
    with pytest.raises(NotImplementedError, match="class labels for mix augmentations"):
        seq(clips(), labels)
    fame = FAME(mode="motion", data_keys=["input", "class"])
    video, mixed = fame(clips(), labels)
    out = K.AugmentationSequential(K.VideoSequential(K.RandomGrayscale(p=1.0)))(video)
    assert out.shape == video.shape and torch.equal(mixed[:, 0], labels.float())


def test_kornia_data_key_spellings() -> None:
    from kornia.constants import DataKey

    fame = FAME(mode="motion", data_keys=[DataKey.INPUT, DataKey.CLASS])
    assert fame.data_keys == ("input", "class")
    assert FAME(data_keys=["image", "label"]).data_keys == ("input", "class")
    video = clips()
    assert isinstance(fame(video, data_keys=[DataKey.INPUT]), torch.Tensor)  # how a container calls it


def test_params_drawn_on_another_device_are_moved() -> None:
    fame = FAME(mode="motion")
    video = clips()
    params = fame.forward_parameters(video.shape)
    if torch.cuda.is_available():
        out = fame(video.cuda(), params=params)
        assert out.device.type == "cuda" and torch.equal(fame._params["mix_pairs"].cpu(), params["mix_pairs"])
    else:
        assert fame(video, params=params).device == video.device


def test_plain_sequential() -> None:
    seq = nn.Sequential(FAME(mode="motion"), K.VideoSequential(K.ColorJitter(0.2, p=1.0)))
    assert seq(clips()).shape == clips().shape
