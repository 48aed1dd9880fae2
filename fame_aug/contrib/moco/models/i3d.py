"""I3D: Inception-v1 inflated to 3D (Carreira and Zisserman, CVPR 2017).

The published stage names (``Conv3d_1a_7x7`` ... ``Mixed_5c``) and widths; convolutions are
followed by batch norm (eps 1e-3) and ReLU, and padded to keep sizes ("same" for odd kernels).
A 16x224x224 clip gives a (1024, 2, 7, 7) feature map.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from fame_aug.contrib.moco.models.base import VideoBackbone

__all__ = ["I3D", "InceptionBlock"]

# Mixed blocks: (1x1, 3x3-reduce, 3x3, 3x3-reduce, 3x3, pool-projection) output channels.
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _unit(
    in_channels: int, out_channels: int, kernel: int | tuple[int, int, int] = 1, stride: int = 1
) -> nn.Sequential:
    size = (kernel, kernel, kernel) if isinstance(kernel, int) else kernel
    padding = (size[0] // 2, size[1] // 2, size[2] // 2)
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, size, stride=stride, padding=padding, bias=False),
        nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01),
        nn.ReLU(inplace=True),
    )


class InceptionBlock(nn.Module):
    """Four branches (1x1; 1x1 then 3x3; 1x1 then 3x3; 3x3 max pool then 1x1), concatenated."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.branch0 = _unit(in_channels, widths[0])
        self.branch1 = nn.Sequential(_unit(in_channels, widths[1]), _unit(widths[1], widths[2], 3))
        self.branch2 = nn.Sequential(_unit(in_channels, widths[3]), _unit(widths[3], widths[4], 3))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1), _unit(in_channels, widths[5]))
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) to (B, out_channels, T, H, W): the four branches side by side."""
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


class I3D(VideoBackbone):
    """Inflated Inception-v1; 12.7M parameters with 400 classes, ``num_features`` 1024.

    Args:
        num_classes: outputs of ``fc`` (0: a feature extractor).
        dropout: dropout before ``fc``.
    """

    def __init__(self, num_classes: int = 400, dropout: float = 0.0) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["Conv3d_1a_7x7"] = _unit(3, 64, 7, stride=2)
        layers["MaxPool3d_2a_3x3"] = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        layers["Conv3d_2b_1x1"] = _unit(64, 64)
        layers["Conv3d_2c_3x3"] = _unit(64, 192, 3)
        layers["MaxPool3d_3a_3x3"] = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        channels = 192
        for name, widths in _MIXED.items():
            if name == "Mixed_4b":
                layers["MaxPool3d_4a_3x3"] = nn.MaxPool3d(3, stride=2, padding=1)
            elif name == "Mixed_5b":
                layers["MaxPool3d_5a_2x2"] = nn.MaxPool3d(2, stride=2)
            block = InceptionBlock(channels, widths)
            layers[name] = block
            channels = block.out_channels
        self.features = nn.Sequential(layers)
        self.num_features = channels
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        self._build_head(num_classes, dropout)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) clips to the last feature map (B, 1024, T/8, H/32, W/32)."""
        return self.features(x)
