"""Supervised fine-tuning and its test (10 clips per video): the loop of ``fame-aug finetune``."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fame_aug.contrib.moco.checkpoint import load_backbone_weights
from fame_aug.contrib.moco.config import FinetuneConfig, RunConfig
from fame_aug.contrib.moco.distributed import World, init_world
from fame_aug.contrib.moco.engine import (
    Progress,
    RunFolder,
    TrainingDiverged,
    build_dataset,
    build_loader,
    clip_outputs,
    lr_at,
    restore_run_state,
    seed_everything,
    unwrap,
)
from fame_aug.contrib.moco.models import VideoBackbone, create_backbone
from fame_aug.data import VideoClipDataset, eval_sampler, finetune_sampler, presets

__all__ = ["accuracy", "finetune", "test_classifier"]


def accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Share of rows whose label is among the ``k`` highest scores."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return (top == labels[:, None]).any(dim=1).float().mean().item()


def test_classifier(
    forward: Any, config: RunConfig, world: World, test_data: VideoClipDataset | None = None
) -> dict[str, float]:
    """Top-1 and top-5 on the test split, softmax averaged over ``eval_clips`` clips per video."""
    data = test_data or build_dataset(
        config, train=False, sampler=eval_sampler(config.num_frames, config.stride, config.eval_clips)
    )
    augment = presets.eval(config.crop_size).to(world.device)
    probabilities, labels, valid = clip_outputs(
        lambda x: F.softmax(forward(x), dim=1), data, augment, config, world, "test"
    )
    return {
        "top1": accuracy(probabilities[valid], labels[valid], 1),
        "top5": accuracy(probabilities[valid], labels[valid], 5),
        "test_videos": int(valid.sum()),
        "unreadable_test_videos": int((~valid).sum()),
    }


def build_classifier(config: FinetuneConfig, num_classes: int) -> VideoBackbone:
    """The backbone with a classifier, initialised from ``config.pretrained`` if given."""
    extra = {"width": config.backbone_width} if config.backbone == "r3d_small" else {}
    model = create_backbone(config.backbone, num_classes=num_classes, dropout=config.dropout, **extra)
    if config.pretrained:
        load_backbone_weights(model, config.pretrained)
    return model


def finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune a (pretrained) backbone on the training split, then test it.

    Returns:
        The last epoch's training metrics and the test top-1 and top-5.
    """
    world = init_world(config.device)
    seed_everything(config.seed + world.rank, config.deterministic)
    run = RunFolder(config, world)
    data = build_dataset(config, train=True, sampler=finetune_sampler(config.num_frames, config.stride))
    loader = build_loader(data, config, world, train=True)
    augment = presets.finetune(config.crop_size, scale=tuple(config.crop_scale), flip=config.flip).to(world.device)

    model: nn.Module = build_classifier(config, len(data.classes)).to(world.device)
    if world.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[world.device] if world.device.type == "cuda" else None
        )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    start_epoch = 0
    if (state := run.resume()) is not None:
        unwrap(model).load_state_dict(state["model"])
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
        progress = Progress(len(loader), f"finetune {epoch + 1}/{config.epochs}", world)
        began, total_loss, correct, seen = time.perf_counter(), 0.0, 0.0, 0
        for index, (clips, labels, _) in enumerate(loader, 1):
            video = augment(clips[:, 0].to(world.device, non_blocking=True))
            labels = labels.to(world.device, non_blocking=True)
            with torch.autocast(
                world.device.type, dtype=torch.bfloat16, enabled=config.amp and world.device.type == "cuda"
            ):
                logits = model(video)
            loss = F.cross_entropy(logits.float(), labels)
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
                    "model": unwrap(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1,
                    "step": 0,
                    "dataset_rng": data.generator().bit_generator.state if config.workers == 0 else None,
                    "classes": data.classes,
                }
            )
    model.eval()
    results = {**metrics, **test_classifier(model, config, world)}
    run.write_json("results.json", results)
    return {"run": str(run.path), "checkpoint": str(run.checkpoint), **results}
