"""Supervised fine-tuning and its test (10 clips per video): the loop of ``fame-aug finetune``."""

from __future__ import annotations

import logging
from typing import Any

from fame_aug.contrib.moco.builder import build_classifier
from fame_aug.contrib.moco.config import FinetuneConfig
from fame_aug.contrib.moco.distributed import init_world, wrap_distributed
from fame_aug.contrib.moco.engine import classification_step, seed_everything, train
from fame_aug.contrib.moco.evaluation import build_test_dataset, evaluate_classifier, report_test
from fame_aug.contrib.moco.loaders import build_dataset
from fame_aug.contrib.moco.run_folder import RunFolder
from fame_aug.contrib.moco.schedule import build_optimizer
from fame_aug.data import finetune_sampler, presets

__all__ = ["finetune"]

logger = logging.getLogger(__name__)


def finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune a (pretrained) backbone on the training split, then test it.

    Returns:
        The last epoch's training metrics and the test top-1 and top-5.
    """
    world = init_world(config.device)
    seed_everything(config.seed + world.rank, config.deterministic)
    with RunFolder(config, world) as run:
        data = build_dataset(config, train=True, sampler=finetune_sampler(config.num_frames, config.stride))
        test_data = build_test_dataset(config)  # checked before any write, used after training
        augment = presets.finetune(
            config.crop_size,
            scale=config.crop_range,
            flip=config.flip,
            fame=config.build_fame(),
            color=config.color_augment,
            erase=config.build_erasing(),
        ).to(world.device)
        classifier = build_classifier(config, len(data.classes)).to(world.device)
        model = wrap_distributed(classifier, world)
        optimizer = build_optimizer(model.parameters(), config)
        step = classification_step(model, augment, config, world)
        metrics = train(step, model, classifier, optimizer, data, config, world, run, "finetune", classes=data.classes)
        model.eval()
        tested = evaluate_classifier(model, config, world, test_data)
        report_test(run, "finetune", tested)
        results = {**metrics, **tested}
        run.write_json("results.json", results)
        return {"run": str(run.path), "checkpoint": str(run.checkpoint), **results}
