"""Video backbones, built by name: ``create_backbone("r2plus1d_18", num_classes=0)``."""

from __future__ import annotations

from collections.abc import Callable

from fame_aug.contrib.moco.models.base import VideoBackbone
from fame_aug.contrib.moco.models.i3d import I3D
from fame_aug.contrib.moco.models.resnet3d import VideoResNet, r2plus1d_18, r3d_18, r3d_small

__all__ = ["BACKBONES", "I3D", "VideoBackbone", "VideoResNet", "create_backbone", "r2plus1d_18", "r3d_18", "r3d_small"]

BACKBONES: dict[str, Callable[..., VideoBackbone]] = {
    "r2plus1d_18": r2plus1d_18,
    "r3d_18": r3d_18,
    "r3d_small": r3d_small,
    "i3d": I3D,
}


def create_backbone(name: str, num_classes: int = 0, dropout: float = 0.0, **kwargs: object) -> VideoBackbone:
    """Build a backbone by name; ``num_classes=0`` gives a feature extractor.

    Args:
        name: ``"r2plus1d_18"``, ``"r3d_18"``, ``"r3d_small"`` (``width=`` sets its channels) or ``"i3d"``.
        num_classes: classifier outputs (0: none).
        dropout: dropout before the classifier.
        **kwargs: extra arguments of the builder (``width`` for ``r3d_small``).

    Example:
        >>> import torch
        >>> model = create_backbone("r3d_small", width=8)
        >>> model(torch.rand(2, 3, 8, 32, 32)).shape, model.num_features
        (torch.Size([2, 64]), 64)
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {name!r}")
    return BACKBONES[name](num_classes=num_classes, dropout=dropout, **kwargs)
