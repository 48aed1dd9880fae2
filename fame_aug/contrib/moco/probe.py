"""Linear probe: a classifier on frozen, L2-normalised features; the loop of ``fame-aug probe``.

The backbone is frozen completely: its weights take no gradient and its batch-norm statistics
stay as pretrained (it runs in eval mode throughout), unlike the published script, which left
one backbone training. Training and test clips are normalised alike (the probe and eval presets
share the normalisation).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fame_aug.contrib.moco.checkpoint import load_backbone_weights
from fame_aug.contrib.moco.config import ProbeConfig
from fame_aug.contrib.moco.distributed import init_world
from fame_aug.contrib.moco.engine import (
    Progress,
    RunFolder,
    TrainingDiverged,
    build_dataset,
    build_loader,
    lr_at,
    restore_run_state,
    seed_everything,
    unwrap,
)
from fame_aug.contrib.moco.finetune import test_classifier
from fame_aug.contrib.moco.models import VideoBackbone, create_backbone
from fame_aug.data import finetune_sampler, presets

__all__ = ["LinearProbe", "load_frozen_backbone", "probe"]


def load_frozen_backbone(config: ProbeConfig) -> VideoBackbone:
    """The pretrained backbone of ``config.pretrained``, without classifier, frozen, in eval mode."""
    extra = {"width": config.backbone_width} if config.backbone == "r3d_small" else {}
    backbone = create_backbone(config.backbone, num_classes=0, **extra)
    load_backbone_weights(backbone, config.pretrained)
    backbone.requires_grad_(False)
    return backbone.eval()


class LinearProbe(nn.Module):
    """A linear classifier on a frozen backbone's L2-normalised pooled features."""

    def __init__(self, backbone: VideoBackbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.num_features, num_classes)

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
    run = RunFolder(config, world)
    data = build_dataset(config, train=True, sampler=finetune_sampler(config.num_frames, config.stride))
    loader = build_loader(data, config, world, train=True)
    augment = presets.probe(config.crop_size, scale=tuple(config.crop_scale), flip=config.flip).to(world.device)

    model: nn.Module = LinearProbe(load_frozen_backbone(config), len(data.classes)).to(world.device)
    if world.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[world.device] if world.device.type == "cuda" else None
        )
    classifier = unwrap(model).classifier
    optimizer = torch.optim.SGD(
        classifier.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    start_epoch = 0
    if (state := run.resume()) is not None:
        classifier.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = state["epoch"]
        restore_run_state(state, data)

    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, config.epochs):
        lr = lr_at(epoch, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if world.distributed:
            loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        model.train()
        progress = Progress(len(loader), f"probe {epoch + 1}/{config.epochs}", world)
        began, total_loss, correct, seen = time.perf_counter(), 0.0, 0.0, 0
        for index, (clips, labels, _) in enumerate(loader, 1):
            video = augment(clips[:, 0].to(world.device, non_blocking=True))
            labels = labels.to(world.device, non_blocking=True)
            logits = model(video)
            loss = F.cross_entropy(logits, labels)
            loss_value = loss.item()
            if not torch.isfinite(loss).item():
                raise TrainingDiverged(f"the loss became {loss_value} at epoch {epoch + 1}; stopped (checkpoint kept)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss_value
            correct += (logits.argmax(dim=1) == labels).sum().item()
            seen += labels.shape[0]
            progress.update(index, clips.shape[0], loss=loss_value, lr=lr)
        metrics = {
            "loss": total_loss / len(loader),
            "train_top1": correct / max(seen, 1),
            "lr": lr,
            "clips_per_s": progress.clips_per_second * world.size,
            "seconds": time.perf_counter() - began,
        }
        run.log_epoch(epoch, metrics)
        if (epoch + 1) % config.save_every == 0 or epoch + 1 == config.epochs:
            run.save(
                {
                    "model": classifier.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1,
                    "step": 0,
                    "dataset_rng": data.generator().bit_generator.state if config.workers == 0 else None,
                }
            )
    model.eval()
    results = {**metrics, **test_classifier(model, config, world)}
    run.write_json("results.json", results)
    return {"run": str(run.path), **results}
