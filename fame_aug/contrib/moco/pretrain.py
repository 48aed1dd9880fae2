"""MoCo pretraining with FAME on the query view: the loop of ``fame-aug pretrain``."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from fame_aug import FAME
from fame_aug.contrib.moco.config import PretrainConfig
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
    fame = FAME(beta=config.fame_beta, mode=config.fame_mode, p=config.fame_p) if config.fame else False
    augment = presets.pretrain(config.crop_size, fame=fame, scale=tuple(config.crop_scale), flip=config.flip).to(
        world.device
    )

    model: nn.Module = build_moco(config).to(world.device)
    if world.distributed:
        if config.bn == "sync":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[world.device] if world.device.type == "cuda" else None
        )
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)

    start_epoch, step = 0, 0
    if (state := run.resume()) is not None:
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step = state["epoch"], state["step"]
        restore_run_state(state, data)

    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, config.epochs):
        lr = lr_at(epoch, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if world.distributed:
            loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        model.train()
        progress = Progress(len(loader), f"pretrain {epoch + 1}/{config.epochs}", world)
        began, total_loss, total_accuracy = time.perf_counter(), 0.0, 0.0
        for index, (clips, _, _) in enumerate(loader, 1):
            query, key = augment(clips.to(world.device, non_blocking=True))
            with torch.autocast(
                world.device.type, dtype=torch.bfloat16, enabled=config.amp and world.device.type == "cuda"
            ):
                out = model(query, key)
            loss = out["loss"]
            loss_value = loss.item()
            if not torch.isfinite(loss).item():
                raise TrainingDiverged(
                    f"the loss became {loss_value} at epoch {epoch + 1}, step {index}; stopped. "
                    f"The last good checkpoint is kept at {run.checkpoint}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
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
        run.log_epoch(epoch, metrics)
        if (epoch + 1) % config.save_every == 0 or epoch + 1 == config.epochs:
            run.save(
                {
                    "model": unwrap(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "epoch": epoch + 1,
                    "step": step,
                    "dataset_rng": data.generator().bit_generator.state if config.workers == 0 else None,
                }
            )
    return {"run": str(run.path), "checkpoint": str(run.checkpoint), "epochs": config.epochs, "step": step, **metrics}
