"""MoCo pretraining with FAME on the query view: the loop of ``fame-aug pretrain``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fame_aug.contrib.moco.builder import build_moco
from fame_aug.contrib.moco.config import PretrainConfig
from fame_aug.contrib.moco.distributed import init_world, wrap_distributed
from fame_aug.contrib.moco.engine import autocast, seed_everything, train
from fame_aug.contrib.moco.loaders import build_dataset, check_test_split
from fame_aug.contrib.moco.run_folder import RunFolder
from fame_aug.contrib.moco.schedule import build_optimizer
from fame_aug.data import presets, pretrain_sampler

__all__ = ["pretrain"]


def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Pretrain a backbone with MoCo (and FAME unless ``config.fame`` is False).

    Returns:
        A summary of the run folder, the checkpoint, and the last epoch's metrics.
    """
    world = init_world(config.device)
    seed_everything(config.seed + world.rank, config.deterministic)
    with RunFolder(config, world) as run:
        sampler = pretrain_sampler(config.num_frames, config.stride, disjoint=config.disjoint_views)
        data = build_dataset(config, train=True, sampler=sampler)
        check_test_split(config)  # a broken test split is found now, not by the evaluation after the run
        fame = config.build_fame() or False
        scale, flip, color = config.crop_range, config.flip, config.color_augment
        erase = config.build_erasing()
        augment = presets.pretrain(config.crop_size, fame=fame, scale=scale, flip=flip, color=color, erase=erase)
        augment = augment.to(world.device)

        moco = build_moco(config).to(world.device)
        if world.distributed and config.bn == "sync":
            moco = nn.SyncBatchNorm.convert_sync_batchnorm(moco)
        model = wrap_distributed(moco, world)
        optimizer = build_optimizer([p for p in moco.parameters() if p.requires_grad], config)

        def step(clips: torch.Tensor, _labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            query, key = augment(clips)  # two clips per video; FAME acts on the query view
            with autocast(config, world):
                out = model(query, key)  # symmetric MoCo loss; both key batches are enqueued
            return out["loss"], {"accuracy": out["accuracy"] * clips.shape[0]}

        metrics = train(step, model, moco, optimizer, data, config, world, run, "pretrain")
        return {"run": str(run.path), "checkpoint": str(run.checkpoint), "epochs": config.epochs, **metrics}
