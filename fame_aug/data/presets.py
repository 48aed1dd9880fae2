"""The published augmentation pipelines, as modules that run on the clips' device.

Each preset takes uint8 clips as the datasets hand them out, (B, T, H, W, 3) or
(B, N, T, H, W, 3) for N clips per video, converts them to float (B, C, T, H, W) in [0, 1] on
their device, augments them with one random draw per clip shared by all its frames (Kornia's
``VideoSequential(same_on_frame=True)``), and normalises them with the Kinetics statistics.

- :func:`pretrain`: two views; RandomResizedCrop (area [0.2, 1]) and flip, then FAME on the
  query view only, then grayscale (0.2), color jitter (0.8; 0.4, 0.4, 0.4, 0.1) and Gaussian
  blur (0.5; sigma [0.1, 2.0]).
- :func:`finetune`: the same without FAME, one view.
- :func:`probe`: RandomResizedCrop and flip only.
- :func:`eval`: centre crop.

The modules follow the clips' device on first use (``preset.to(device)`` does it up front), so
that Kornia draws its random parameters where the clips are.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import nn

from fame_aug.data.decode import to_float_clips
from fame_aug.erasing import BackgroundErasing
from fame_aug.fame import FAME
from fame_aug.functional import blur_kernel_size

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "ClipAugmentation",
    "TwoViewAugmentation",
    "eval",
    "finetune",
    "pretrain",
    "probe",
]

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def _check_crop(crop_size: int) -> int:
    if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 8:
        raise ValueError(f"crop_size must be an integer >= 8 (112 or 224 in the paper), got {crop_size!r}")
    return crop_size


class ClipAugmentation(nn.Module):
    """One view: uint8 clips in, normalised float (B, C, T, S, S) out.

    Args:
        geometric: crop (and flip) on (B, C, T, H, W), e.g. a ``VideoSequential``.
        fame: optional FAME, applied after the crop, before the photometric part.
        photometric: optional color augmentations on (B, C, T, S, S).
        mean: per-channel mean for normalisation.
        std: per-channel standard deviation for normalisation.
        erase: optional Background Erasing, applied after FAME, before the photometric part.
    """

    def __init__(
        self,
        geometric: nn.Module,
        fame: FAME | None = None,
        photometric: nn.Module | None = None,
        mean: tuple[float, ...] = KINETICS_MEAN,
        std: tuple[float, ...] = KINETICS_STD,
        erase: BackgroundErasing | None = None,
    ) -> None:
        super().__init__()
        self.geometric = geometric
        self.fame = fame
        self.erase = erase
        self.photometric = photometric
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1, 1), persistent=False)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Augment (B, T, H, W, 3) or (B, N, T, H, W, 3) uint8 clips; returns (B[, N], C, T, S, S)."""
        if clips.dim() == 6:
            batch, per_video = clips.shape[:2]
            out = self.forward(clips.flatten(0, 1))
            return out.view(batch, per_video, *out.shape[1:])
        if self.mean.device != clips.device:
            self.to(clips.device)  # Kornia draws its parameters on the module's device
        video = self.geometric(to_float_clips(clips))
        if self.fame is not None:  # FAME passes a lone clip (a ragged last batch) through unchanged
            video = self.fame(video)
        if self.erase is not None:
            video = self.erase(video)
        if self.photometric is not None:
            video = self.photometric(video)
        return (video - self.mean) / self.std


class TwoViewAugmentation(nn.Module):
    """Pretraining: (B, 2, T, H, W, 3) uint8 clips to a (query, key) pair of normalised views."""

    def __init__(self, query: ClipAugmentation, key: ClipAugmentation) -> None:
        super().__init__()
        self.query = query
        self.key = key

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment two clips per video independently: clip 0 becomes the query, clip 1 the key."""
        if clips.dim() != 6 or clips.shape[1] != 2:
            raise ValueError(f"clips must be (B, 2, T, H, W, C), two clips per video; got {tuple(clips.shape)}")
        return self.query(clips[:, 0]), self.key(clips[:, 1])


def _crop_flip(crop_size: int, scale: tuple[float, float], flip: bool) -> K.VideoSequential:
    steps: list[nn.Module] = [K.RandomResizedCrop((crop_size, crop_size), scale=scale)]
    if flip:
        steps.append(K.RandomHorizontalFlip(p=0.5))
    return K.VideoSequential(*steps, data_format="BCTHW", same_on_frame=True)


def _check_scale(scale: tuple[float, float]) -> tuple[float, float]:
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must be (min, max) crop areas with 0 < min <= max <= 1, got {scale!r}")
    return (float(scale[0]), float(scale[1]))


def _color(crop_size: int) -> K.VideoSequential:
    kernel = blur_kernel_size(crop_size, crop_size)
    return K.VideoSequential(
        K.RandomGrayscale(p=0.2),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGaussianBlur((kernel, kernel), (0.1, 2.0), p=0.5),
        data_format="BCTHW",
        same_on_frame=True,
    )


def pretrain(
    crop_size: int = 112,
    fame: FAME | bool = True,
    scale: tuple[float, float] = (0.2, 1.0),
    flip: bool = True,
    color: bool = True,
    erase: BackgroundErasing | None = None,
) -> TwoViewAugmentation:
    """The pretraining pipeline: two views, FAME on the query view only.

    Args:
        crop_size: output side (112 for R(2+1)D-18, 224 for I3D).
        fame: ``True`` for ``FAME()`` (published settings), a configured :class:`~fame_aug.FAME`, or
            ``False`` for the baseline without FAME.
        scale: range of the crop's share of the frame area (published: 0.2 to 1).
        flip: random horizontal flips (published: yes). Turn them off when left and right
            matter to the classes, as in the built-in background-bias dataset.
        color: grayscale, color jitter and blur after FAME (published: yes). Off, a view keeps
            its colors, so the moving object looks the same in both views.
        erase: optional :class:`~fame_aug.BackgroundErasing` on the query view, after FAME.
    """
    crop_size, scale = _check_crop(crop_size), _check_scale(scale)
    if not isinstance(fame, bool | FAME):
        raise TypeError(f"fame must be a bool or a FAME module, got {type(fame).__name__}")
    merge = FAME() if fame is True else None if fame is False else fame
    erase = _check_erase(erase)
    query = ClipAugmentation(
        _crop_flip(crop_size, scale, flip), merge, _color(crop_size) if color else None, erase=erase
    )
    key = ClipAugmentation(_crop_flip(crop_size, scale, flip), None, _color(crop_size) if color else None)
    return TwoViewAugmentation(query, key)


def finetune(
    crop_size: int = 112,
    scale: tuple[float, float] = (0.2, 1.0),
    flip: bool = True,
    fame: FAME | None = None,
    color: bool = True,
    erase: BackgroundErasing | None = None,
) -> ClipAugmentation:
    """Supervised fine-tuning: crop, flip, [FAME], grayscale, color jitter, blur.

    Args:
        crop_size: output side.
        scale: range of the crop's share of the frame area (see ``pretrain``).
        flip: random horizontal flips (see ``pretrain``).
        fame: optional configured :class:`~fame_aug.FAME` for the training clips (a debiasing
            augmentation, not in the paper): each clip keeps its foreground and its label, and
            takes another training clip's background.
        color: grayscale, color jitter and blur (published: yes).
        erase: optional :class:`~fame_aug.BackgroundErasing` for the training clips, after FAME.
    """
    crop_size, scale = _check_crop(crop_size), _check_scale(scale)
    if fame is not None and not isinstance(fame, FAME):
        raise TypeError(f"fame must be a FAME module or None, got {type(fame).__name__}")
    photometric = _color(crop_size) if color else None
    return ClipAugmentation(_crop_flip(crop_size, scale, flip), fame, photometric, erase=_check_erase(erase))


def _check_erase(erase: object) -> BackgroundErasing | None:
    if erase is not None and not isinstance(erase, BackgroundErasing):
        raise TypeError(f"erase must be a BackgroundErasing module or None, got {type(erase).__name__}")
    return erase


def probe(crop_size: int = 112, scale: tuple[float, float] = (0.2, 1.0), flip: bool = True) -> ClipAugmentation:
    """Linear probe: crop and flip only (then the same normalisation as evaluation)."""
    return ClipAugmentation(_crop_flip(_check_crop(crop_size), _check_scale(scale), flip))


def eval(crop_size: int = 112) -> ClipAugmentation:
    """Evaluation: centre crop and normalisation."""
    crop_size = _check_crop(crop_size)
    return ClipAugmentation(K.VideoSequential(K.CenterCrop(crop_size), data_format="BCTHW", same_on_frame=True))
