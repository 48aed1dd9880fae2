"""Supervised fine-tuning and its test (10 clips per video): the loop of ``fame-aug finetune``."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from fame_aug.contrib.moco.checkpoint import load_backbone_weights
from fame_aug.contrib.moco.config import FinetuneConfig, RunConfig
from fame_aug.contrib.moco.distributed import World, init_world
from fame_aug.contrib.moco.engine import (
    RunFolder,
    build_dataset,
    build_optimizer,
    clip_outputs,
    seed_everything,
    train_classifier,
    wrap_distributed,
)
from fame_aug.contrib.moco.models import VideoBackbone, create_backbone
from fame_aug.data import VideoClipDataset, eval_sampler, finetune_sampler, presets

__all__ = ["accuracy", "finetune", "report_test", "test_classifier"]

logger = logging.getLogger(__name__)


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
    augment = presets.finetune(
        config.crop_size, scale=tuple(config.crop_scale), flip=config.flip, fame=config.build_fame()
    ).to(world.device)
    classifier = build_classifier(config, len(data.classes)).to(world.device)
    model = wrap_distributed(classifier, world)
    optimizer = build_optimizer(model.parameters(), config)
    metrics = train_classifier(model, classifier, optimizer, data, augment, config, world, run, "finetune")
    model.eval()
    tested = test_classifier(model, config, world)
    report_test(run, "finetune", tested)
    results = {**metrics, **tested}
    run.write_json("results.json", results)
    return {"run": str(run.path), "checkpoint": str(run.checkpoint), **results}


def report_test(run: RunFolder, label: str, tested: dict[str, float]) -> None:
    """Log the test results of ``test_classifier`` and write them to TensorBoard (at the last epoch)."""
    if not run.world.is_main:
        return
    logger.info(
        "%s test: top-1 %.1f%%, top-5 %.1f%% over %d videos (%d clips each)",
        label,
        100 * tested["top1"],
        100 * tested["top5"],
        tested["test_videos"],
        run.config.eval_clips,
    )
    run.log_scalars({"test_top1": tested["top1"], "test_top5": tested["top5"]}, run.config.epochs)
