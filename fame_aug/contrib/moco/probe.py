"""Linear probe: a classifier on frozen, L2-normalised features; the loop of ``fame-aug probe``.

The backbone is frozen completely: its weights take no gradient and its batch-norm statistics
stay as pretrained (it runs in eval mode throughout), unlike the published script, which left
one backbone training. Training and test clips are normalised alike (the probe and eval presets
share the normalisation).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fame_aug.contrib.moco.builder import load_frozen_backbone
from fame_aug.contrib.moco.config import ProbeConfig
from fame_aug.contrib.moco.distributed import init_world, wrap_distributed
from fame_aug.contrib.moco.engine import classification_step, seed_everything, train
from fame_aug.contrib.moco.evaluation import build_test_dataset, evaluate_classifier, report_test
from fame_aug.contrib.moco.loaders import build_dataset
from fame_aug.contrib.moco.models import VideoBackbone
from fame_aug.contrib.moco.run_folder import RunFolder
from fame_aug.contrib.moco.schedule import build_optimizer
from fame_aug.data import finetune_sampler, presets

__all__ = ["LinearProbe", "probe"]


class LinearProbe(nn.Module):
    """A linear classifier on a frozen backbone's L2-normalised pooled features.

    Args:
        backbone: the frozen backbone.
        num_classes: outputs.
        standardize: put a batch norm without affine parameters between the features and the
            classifier (as MAE's linear probe does), so that every feature direction has unit
            variance: plain gradient descent is slow along the low-variance directions, and a
            small backbone's motion features are such directions beside its background ones.
            Still a linear classifier of the features (the norm's statistics are fixed after
            training).
    """

    def __init__(self, backbone: VideoBackbone, num_classes: int, standardize: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        linear = nn.Linear(backbone.num_features, num_classes)
        if standardize:
            self.classifier: nn.Module = nn.Sequential(nn.BatchNorm1d(backbone.num_features, affine=False), linear)
        else:
            self.classifier = linear

    def train(self, mode: bool = True) -> LinearProbe:
        """Only the classifier trains; the backbone stays in eval mode (frozen BN statistics)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) clips to (B, num_classes) logits."""
        with torch.no_grad():
            features = F.normalize(self.backbone(clips), dim=1)
        return self.classifier(features)


def probe(config: ProbeConfig) -> dict[str, Any]:
    """Train a linear classifier on frozen features, then test it with ``eval_clips`` clips per video."""
    world = init_world(config.device)
    seed_everything(config.seed + world.rank, config.deterministic)
    with RunFolder(config, world) as run:
        data = build_dataset(config, train=True, sampler=finetune_sampler(config.num_frames, config.stride))
        test_data = build_test_dataset(config)  # checked before any write, used after training
        augment = presets.probe(config.crop_size, scale=config.crop_range, flip=config.flip).to(world.device)
        linear = LinearProbe(load_frozen_backbone(config), len(data.classes), config.standardize).to(world.device)
        model = wrap_distributed(linear, world)
        optimizer = build_optimizer(linear.classifier.parameters(), config)
        step = classification_step(model, augment, config, world)
        metrics = train(
            step, model, linear.classifier, optimizer, data, config, world, run, "probe", classes=data.classes
        )
        model.eval()
        tested = evaluate_classifier(model, config, world, test_data)
        report_test(run, "probe", tested)
        results = {**metrics, **tested}
        run.write_json("results.json", results)
        return {"run": str(run.path), **results}
