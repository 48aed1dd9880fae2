"""Backbones: torchvision-compatible ResNets, I3D, the common interface."""

from __future__ import annotations

import pytest
import torch

from fame_aug.contrib.moco.models import BACKBONES, create_backbone, r2plus1d_18, r3d_18


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_torchvision() -> None:
    # torchvision's documented sizes for r2plus1d_18 and r3d_18 (400 classes)
    assert count(r2plus1d_18()) == 31_505_325
    assert count(r3d_18()) == 33_371_472


def test_torchvision_parameter_names() -> None:
    names = dict((k, tuple(v.shape)) for k, v in r2plus1d_18().state_dict().items())
    assert names["stem.0.weight"] == (45, 3, 1, 7, 7) and names["stem.3.weight"] == (64, 45, 3, 1, 1)
    assert names["layer2.0.conv1.0.0.weight"] == (230, 64, 1, 3, 3)
    assert names["layer2.0.conv2.0.3.weight"] == (128, 230, 3, 1, 1)
    assert names["layer2.0.downsample.0.weight"] == (128, 64, 1, 1, 1)
    assert names["fc.weight"] == (400, 512)
    r3d = dict((k, tuple(v.shape)) for k, v in r3d_18().state_dict().items())
    assert r3d["stem.0.weight"] == (64, 3, 3, 7, 7) and r3d["layer4.1.conv2.0.weight"] == (512, 512, 3, 3, 3)


@pytest.mark.parametrize("name", ["r2plus1d_18", "r3d_18"])
def test_loads_torchvision_weights_strictly(name: str) -> None:
    video_models = pytest.importorskip("torchvision.models.video", reason="torchvision is not installed here")
    theirs = getattr(video_models, name)().eval()
    ours = create_backbone(name, num_classes=400).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    clip = torch.rand(1, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(clip), theirs(clip), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_interface(name: str) -> None:
    size = 64 if name != "i3d" else 96
    model = create_backbone(name, num_classes=5, **({"width": 8} if name == "r3d_small" else {})).eval()
    clips = torch.rand(2, 3, 8, size, size)
    features = model.forward_features(clips)
    assert features.dim() == 5 and features.shape[:2] == (2, model.num_features)
    assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
    assert model(clips).shape == (2, 5)
    model.reset_classifier(0)
    assert model(clips).shape == (2, model.num_features)


def test_i3d_feature_map() -> None:
    model = create_backbone("i3d").eval()
    assert model.num_features == 1024
    with torch.no_grad():
        assert model.forward_features(torch.rand(1, 3, 16, 224, 224)).shape == (1, 1024, 2, 7, 7)


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="backbone must be one of"):
        create_backbone("resnet50")
