"""One constructor per model a configuration describes: backbone, MoCo, classifier, frozen backbone.

Each reads the model's settings (``backbone``, ``backbone_width``, the MoCo keys) from the
configuration, so that the commands, the figures and the tests build the same model the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fame_aug.contrib.moco.checkpoint import load_backbone_weights
from fame_aug.contrib.moco.config import FinetuneConfig, PretrainConfig, RunConfig
from fame_aug.contrib.moco.moco import MoCo
from fame_aug.contrib.moco.models import VideoBackbone, create_backbone

__all__ = ["build_backbone", "build_classifier", "build_moco", "load_frozen_backbone"]


def build_backbone(
    settings: RunConfig | Mapping[str, Any], num_classes: int = 0, dropout: float = 0.0
) -> VideoBackbone:
    """The backbone of a configuration, or of a checkpoint's stored config (a mapping).

    Args:
        settings: anything with ``backbone`` and ``backbone_width`` (the width of ``r3d_small``
            only), as attributes or keys.
        num_classes: size of the classifier; 0 for pooled features only.
        dropout: dropout before the classifier.
    """
    read = settings.get if isinstance(settings, Mapping) else lambda key, default=None: getattr(settings, key, default)
    name = str(read("backbone"))
    extra = {"width": read("backbone_width", 16)} if name == "r3d_small" else {}
    return create_backbone(name, num_classes=num_classes, dropout=dropout, **extra)


def build_moco(config: PretrainConfig) -> MoCo:
    """The MoCo model of a pretraining configuration (its backbone without classifier)."""
    return MoCo(
        build_backbone(config),
        dim=config.moco_dim,
        queue_size=config.queue_size,
        momentum=config.moco_momentum,
        temperature=config.temperature,
        mlp=config.mlp,
        bn_splits=config.bn_splits,
    )


def build_classifier(config: FinetuneConfig, num_classes: int) -> VideoBackbone:
    """The backbone with a classifier, initialised from ``config.pretrained`` if given."""
    model = build_backbone(config, num_classes=num_classes, dropout=config.dropout)
    if config.pretrained:
        load_backbone_weights(model, config.pretrained)
    return model


def load_frozen_backbone(config: RunConfig) -> VideoBackbone:
    """The pretrained backbone of ``config.pretrained``, without classifier, frozen, in eval mode."""
    backbone = build_backbone(config)
    load_backbone_weights(backbone, getattr(config, "pretrained", ""))
    backbone.requires_grad_(False)
    return backbone.eval()
