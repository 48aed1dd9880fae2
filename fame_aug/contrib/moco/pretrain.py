"""MoCo pretraining with FAME on the query view: the loop of ``fame-aug pretrain``."""

from __future__ import annotations

import time
from typing import Any

from torch import nn

from fame_aug.contrib.moco.config import PretrainConfig
from fame_aug.contrib.moco.distributed import init_world
from fame_aug.contrib.moco.engine import (
    Progress,
    RunFolder,
    autocast,
    begin_epoch,
    build_dataset,
    build_loader,
    build_optimizer,
    checked_loss,
    report_unreadable,
    resume_into,
    save_if_due,
    seed_everything,
    wrap_distributed,
)
from fame_aug.contrib.moco.moco import MoCo
from fame_aug.contrib.moco.models import create_backbone
from fame_aug.data import presets, pretrain_sampler

__all__ = ["build_moco", "pretrain"]


def build_moco(config: PretrainConfig) -> MoCo:
    """The MoCo model a configuration describes."""
    extra = {"width": config.backbone_width} if config.backbone == "r3d_small" else {}
    backbone = create_backbone(config.backbone, num_classes=0, **extra)
    return MoCo(
        backbone,
        dim=config.moco_dim,
        queue_size=config.queue_size,
        momentum=config.moco_momentum,
        temperature=config.temperature,
        mlp=config.mlp,
        bn_splits=config.bn_splits,
    )


def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Pretrain a backbone with MoCo (and FAME unless ``config.fame`` is False).

    Returns:
        A summary: the run folder, the checkpoint, and the last epoch's metrics.
    """
    world = init_world(config.device)
    seed_everything(config.seed + world.rank, config.deterministic)
    run = RunFolder(config, world)
    data = build_dataset(config, train=True, sampler=pretrain_sampler(config.num_frames, config.stride))
    loader = build_loader(data, config, world, train=True)
    fame = config.build_fame() or False
    augment = presets.pretrain(config.crop_size, fame=fame, scale=tuple(config.crop_scale), flip=config.flip)
    augment = augment.to(world.device)

    moco = build_moco(config).to(world.device)
    if world.distributed and config.bn == "sync":
        moco = nn.SyncBatchNorm.convert_sync_batchnorm(moco)
    model = wrap_distributed(moco, world)
    trainable = [p for p in moco.parameters() if p.requires_grad]
    optimizer = build_optimizer(trainable, config)
    start_epoch, step = resume_into(run, moco, optimizer, data)

    metrics: dict[str, float] = {}
    unreadable = 0
    for epoch in range(start_epoch, config.epochs):
        lr = begin_epoch(optimizer, loader, epoch, config)
        model.train()
        began, total_loss, total_accuracy = time.perf_counter(), 0.0, 0.0
        with Progress(len(loader), f"pretrain {epoch + 1}/{config.epochs}", world) as progress:
            for index, (clips, _, _) in enumerate(loader, 1):
                query, key = augment(clips.to(world.device, non_blocking=True))  # FAME acts on the query view
                with autocast(config, world):
                    out = model(query, key)  # symmetric MoCo loss; both key batches are enqueued
                loss_value = checked_loss(out["loss"], epoch, index, run)
                optimizer.zero_grad(set_to_none=True)
                out["loss"].backward()
                optimizer.step()
                step += 1
                total_loss += loss_value
                total_accuracy += out["accuracy"].item()
                progress.update(index, clips.shape[0] * clips.shape[1], loss=loss_value, lr=lr)
        metrics = {
            "loss": total_loss / len(loader),
            "accuracy": total_accuracy / len(loader),
            "lr": lr,
            "clips_per_s": progress.clips_per_second * world.size,
            "seconds": time.perf_counter() - began,
            "bad_videos": data.num_bad,
        }
        run.log_epoch(epoch, metrics, "pretrain")
        if world.is_main:
            unreadable = report_unreadable(data, f"pretrain {epoch + 1}/{config.epochs}", unreadable)
        save_if_due(run, config, epoch, step, moco, optimizer, data)
    return {"run": str(run.path), "checkpoint": str(run.checkpoint), "epochs": config.epochs, "step": step, **metrics}
