"""The interface every backbone follows (timm's): features, head, classifier reset."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["VideoBackbone"]


class VideoBackbone(nn.Module):
    """Base of the video backbones.

    Subclasses build their layers, set ``num_features`` (the pooled feature size) and implement
    :meth:`forward_features`; then call ``_build_head``.

    - ``forward_features(x)``: (B, 3, T, H, W) clips to the last convolutional feature map
      (B, C, T', H', W'), e.g. for class activation maps;
    - ``forward_head(features, pre_logits=False)``: global average pooling to (B, C), then
      dropout and the classifier ``fc`` unless ``pre_logits``;
    - ``forward(x)``: both. With ``num_classes=0``, ``fc`` is the identity and ``forward``
      returns pooled features.
    """

    num_features: int

    def _build_head(self, num_classes: int, dropout: float) -> None:
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.reset_classifier(num_classes, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) clips to the last convolutional feature map; subclasses implement it."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool a feature map to (B, C); then apply dropout and ``fc`` unless ``pre_logits``."""
        pooled = self.avgpool(features).flatten(1)
        return pooled if pre_logits else self.fc(self.dropout(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes), or pooled features (B, C) when there is no classifier."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int, dropout: float | None = None) -> None:
        """Replace ``fc`` (and, if given, the dropout before it), e.g. for fine-tuning."""
        if dropout is not None:
            self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc: nn.Module = nn.Identity()
        if num_classes > 0:
            parameter = next(self.parameters(), None)
            self.fc = nn.Linear(self.num_features, num_classes)
            nn.init.normal_(self.fc.weight, 0, 0.01)
            nn.init.zeros_(self.fc.bias)
            if parameter is not None:
                self.fc.to(parameter.device)
        self.num_classes = num_classes
