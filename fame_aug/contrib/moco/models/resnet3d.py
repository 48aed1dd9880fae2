"""3D ResNets: R(2+1)D-18, R3D-18 and a small R3D for CPU runs.

``r2plus1d_18`` and ``r3d_18`` have the layer structure and parameter names of
``torchvision.models.video.r2plus1d_18`` / ``r3d_18``, so their state dicts load here with
``strict=True`` (torchvision is not needed).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fame_aug.contrib.moco.models.base import VideoBackbone

__all__ = ["BasicBlock", "VideoResNet", "r2plus1d_18", "r3d_18", "r3d_small"]


def _conv3x3x3(in_planes: int, out_planes: int, mid_planes: int, stride: int = 1) -> nn.Module:
    """A full 3x3x3 convolution (R3D); ``mid_planes`` is unused."""
    return nn.Conv3d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv2plus1d(in_planes: int, out_planes: int, mid_planes: int, stride: int = 1) -> nn.Module:
    """A (2+1)D convolution: 1x3x3 spatial, BN, ReLU, then 3x1x1 temporal (R(2+1)D)."""
    return nn.Sequential(
        nn.Conv3d(in_planes, mid_planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(mid_planes),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid_planes, out_planes, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
    )


ConvBuilder = Callable[[int, int, int, int], nn.Module]


class BasicBlock(nn.Module):
    """Two convolutions with a residual connection (ResNet-18's block, in 3D)."""

    def __init__(self, in_planes: int, planes: int, conv: ConvBuilder, stride: int = 1) -> None:
        super().__init__()
        # The (2+1)D factorisation keeps about the parameter count of the full 3x3x3 convolution;
        # as in the published model, both convolutions of a block use the first one's width.
        mid_planes = (in_planes * planes * 27) // (in_planes * 9 + 3 * planes)
        self.conv1 = nn.Sequential(
            conv(in_planes, planes, mid_planes, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True)
        )
        self.conv2 = nn.Sequential(conv(planes, planes, mid_planes, 1), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm3d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Two convolutions plus the (downsampled) shortcut, then ReLU."""
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


def _r3d_stem(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(3, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    )


def _r2plus1d_stem(width: int) -> nn.Sequential:
    mid = width * 45 // 64  # 45 channels between the spatial and temporal halves at width 64
    return nn.Sequential(
        nn.Conv3d(3, mid, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, width, (3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    )


class VideoResNet(VideoBackbone):
    """A 3D ResNet: stem, four stages of basic blocks, global average pooling, ``fc``.

    Args:
        conv: ``"3d"`` (R3D) or ``"2plus1d"`` (R(2+1)D).
        layers: blocks per stage.
        width: channels of the stem and the first stage (doubled at each later stage); 64 in the
            published models.
        num_classes: outputs of ``fc``; 0 makes ``fc`` the identity.
        dropout: dropout before ``fc`` (fine-tuning uses 0.5 to 0.7).
        motion_filters: share of the stem's filters that start with zero mean over time: they
            respond to what changes between frames and not at all to what stays, such as a
            still background. A random filter averages over time, so a network initialised
            the usual way first sees textures and colors, which make up most of a frame, and
            finds motion only after a plateau; 0 (the published models) keeps that init.
    """

    def __init__(
        self,
        conv: str = "2plus1d",
        layers: tuple[int, int, int, int] = (2, 2, 2, 2),
        width: int = 64,
        num_classes: int = 400,
        dropout: float = 0.0,
        motion_filters: float = 0.0,
    ) -> None:
        super().__init__()
        if conv not in ("3d", "2plus1d"):
            raise ValueError(f"conv must be '3d' or '2plus1d', got {conv!r}")
        if not 0.0 <= motion_filters <= 1.0:
            raise ValueError(f"motion_filters must lie in [0, 1], got {motion_filters}")
        builder = _conv2plus1d if conv == "2plus1d" else _conv3x3x3
        self.stem = _r2plus1d_stem(width) if conv == "2plus1d" else _r3d_stem(width)
        planes = width
        stages = []
        for index, blocks in enumerate(layers):
            out_planes = width * 2**index
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(planes, out_planes, builder, stride)]
            stage += [BasicBlock(out_planes, out_planes, builder) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            planes = out_planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = planes
        self._init_weights(motion_filters)
        self._build_head(num_classes, dropout)

    def _init_weights(self, motion_filters: float) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        # The stem's (last) convolution across time: its first filters lose their temporal mean.
        temporal = [m for m in self.stem.modules() if isinstance(m, nn.Conv3d) and m.kernel_size[0] > 1][-1]
        count = round(motion_filters * temporal.out_channels)
        with torch.no_grad():
            temporal.weight[:count] -= temporal.weight[:count].mean(dim=2, keepdim=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) clips to the last feature map (B, C, T/8, H/16, W/16)."""
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def r2plus1d_18(num_classes: int = 400, dropout: float = 0.0) -> VideoResNet:
    """R(2+1)D-18 (Tran et al. 2018), torchvision's parameter names; 31.5M parameters with 400 classes."""
    return VideoResNet("2plus1d", (2, 2, 2, 2), 64, num_classes, dropout)


def r3d_18(num_classes: int = 400, dropout: float = 0.0) -> VideoResNet:
    """R3D-18, torchvision's parameter names; 33.4M parameters with 400 classes."""
    return VideoResNet("3d", (2, 2, 2, 2), 64, num_classes, dropout)


def r3d_small(num_classes: int = 400, dropout: float = 0.0, width: int = 16) -> VideoResNet:
    """R3D with one block per stage and ``width`` channels (16: 0.9M parameters), for CPU runs.

    Half of its stem's filters start as temporal derivatives (``motion_filters=0.5``): measured on
    the built-in background-bias data, that takes a supervised model trained on backgrounds that
    say nothing of the class from 77% to 98% test top-1 at 20 epochs, with the other half still
    seeing appearance (README, "How the cpu-demo recipe was chosen").
    """
    return VideoResNet("3d", (1, 1, 1, 1), width, num_classes, dropout, motion_filters=0.5)
