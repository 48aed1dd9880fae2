"""The evaluation protocol: outputs per video, averaged over its clips, gathered from every process.

Also the classifiers' test: top-1 and top-5 over ``eval_clips`` clips per video.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from fame_aug.contrib.moco.config import RunConfig
from fame_aug.contrib.moco.console import Progress
from fame_aug.contrib.moco.distributed import World, all_gather_padded
from fame_aug.contrib.moco.engine import autocast
from fame_aug.contrib.moco.loaders import build_dataset, build_loader, report_unreadable
from fame_aug.contrib.moco.run_folder import RunFolder
from fame_aug.data import VideoClipDataset, eval_sampler, presets
from fame_aug.data.presets import ClipAugmentation

__all__ = ["accuracy", "build_test_dataset", "clip_outputs", "evaluate_classifier", "report_test"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def clip_outputs(
    forward: Callable[[torch.Tensor], torch.Tensor],
    dataset: VideoClipDataset,
    augment: ClipAugmentation,
    config: RunConfig,
    world: World,
    label: str = "evaluate",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-video outputs averaged over the video's clips (the evaluation protocol).

    ``forward`` maps (N, 3, T, H, W) clips to (N, D) outputs. Every process evaluates its share
    and the results are gathered.

    Returns:
        ``(outputs (V, D), labels (V,), valid (V,) bool)`` for the V videos of ``dataset``;
        ``valid`` is False for videos skipped as unreadable.
    """
    loader = build_loader(dataset, config, world, train=False, batch_size=config.eval_batch_size * world.size)
    results: torch.Tensor | None = None
    seen = torch.zeros(len(dataset), dtype=torch.bool, device=world.device)
    with Progress(len(loader), label, world) as progress:
        for index, (clips, _, videos) in enumerate(loader, 1):
            clips = clips.to(world.device, non_blocking=True)
            with autocast(config, world):
                out = forward(augment(clips).flatten(0, 1)).float()
            per_video = out.view(clips.shape[0], clips.shape[1], -1).mean(dim=1)
            videos = videos.to(world.device)
            per_video, videos = all_gather_padded(per_video, videos)
            if results is None:
                results = torch.zeros(len(dataset), per_video.shape[1], device=world.device)
            results[videos] = per_video
            seen[videos] = True
            progress.update(index, clips.shape[0] * clips.shape[1])
    assert results is not None
    if world.is_main:
        logger.info(
            "%s: %d videos in %.1f s (%.1f clips/s)", label, len(dataset), progress.seconds, progress.clips_per_second
        )
        report_unreadable(dataset, label)
    broken = int((~torch.isfinite(results[seen])).any(dim=1).sum())  # once per evaluation, not per step
    if broken:
        source = getattr(config, "pretrained", "") or config.out
        raise ValueError(
            f"{label}: the model's outputs are NaN or infinite for {broken} of {int(seen.sum())} videos; "
            f"the weights ({source}) are not usable (a diverged or damaged checkpoint?)"
        )
    labels = torch.tensor(dataset.labels, device=world.device)
    return results, labels, seen


def accuracy(scores: torch.Tensor, labels: torch.Tensor, k: int = 1) -> float:
    """Share of rows whose label is among the ``k`` highest scores."""
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices
    return (top == labels[:, None]).any(dim=1).float().mean().item()


def build_test_dataset(config: RunConfig) -> VideoClipDataset:
    """The test split, cut into ``eval_clips`` clips per video (the evaluation protocol)."""
    return build_dataset(config, train=False, sampler=eval_sampler(config.num_frames, config.stride, config.eval_clips))


def evaluate_classifier(
    forward: Any, config: RunConfig, world: World, test_data: VideoClipDataset | None = None
) -> dict[str, float]:
    """Top-1 and top-5 on the test split, softmax averaged over ``eval_clips`` clips per video."""
    data = test_data if test_data is not None else build_test_dataset(config)
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


def report_test(run: RunFolder, label: str, tested: dict[str, float]) -> None:
    """Log the test results of ``evaluate_classifier`` and write them to TensorBoard (at the last epoch)."""
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
