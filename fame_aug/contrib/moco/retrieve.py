"""Video retrieval: test videos query the training videos; the loop of ``fame-aug retrieve``.

Each video is described by its backbone's pooled features averaged over ``eval_clips`` evenly
spaced, centre-cropped clips. Features are used raw and centred (each set minus its own mean),
then L2-normalised; a query scores a hit at k if one of its k nearest training videos (cosine
similarity) shares its class. Every query counts (the published script dropped some).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fame_aug.contrib.moco.builder import load_frozen_backbone
from fame_aug.contrib.moco.config import RetrieveConfig, RunConfig
from fame_aug.contrib.moco.distributed import World, init_world
from fame_aug.contrib.moco.engine import seed_everything
from fame_aug.contrib.moco.evaluation import clip_outputs
from fame_aug.contrib.moco.loaders import build_dataset
from fame_aug.contrib.moco.run_folder import RunFolder
from fame_aug.data import VideoClipDataset, VideoList, eval_sampler, presets

__all__ = ["SplitFeatures", "format_recalls", "recall_at_k", "retrieve", "split_dataset", "split_features"]

logger = logging.getLogger(__name__)


def recall_at_k(
    queries: torch.Tensor,
    query_labels: torch.Tensor,
    gallery: torch.Tensor,
    gallery_labels: torch.Tensor,
    ks: list[int],
    center: bool = False,
) -> dict[int, float]:
    """Share of queries with a same-class video among their k nearest gallery videos.

    Args:
        queries: (Q, D) features.
        query_labels: (Q,) classes.
        gallery: (G, D) features.
        gallery_labels: (G,) classes.
        ks: recall levels (capped at G).
        center: subtract each set's own mean before normalising.
    """
    if center:
        queries, gallery = queries - queries.mean(dim=0), gallery - gallery.mean(dim=0)
    similarity = F.normalize(queries, dim=1) @ F.normalize(gallery, dim=1).T
    nearest = similarity.topk(min(max(ks), gallery.shape[0]), dim=1).indices
    hits = gallery_labels[nearest] == query_labels[:, None]
    return {k: hits[:, : min(k, gallery.shape[0])].any(dim=1).float().mean().item() for k in ks}


@dataclass
class SplitFeatures:
    """Per-video features of one split: the dataset, (V, D) features, (V,) labels, (V,) readable."""

    data: VideoClipDataset
    features: torch.Tensor
    labels: torch.Tensor
    valid: torch.Tensor


def split_dataset(config: RunConfig, split: str) -> VideoClipDataset:
    """``"train"`` or ``"test"`` of the configured dataset, or a list file, cut into ``eval_clips`` clips."""
    sampler = eval_sampler(config.num_frames, config.stride, config.eval_clips)
    if split in ("train", "test"):
        return build_dataset(config, train=split == "train", sampler=sampler)
    if not Path(split).is_file():
        raise ValueError(f"a split is 'train', 'test' or a list file of 'path label' lines; got {split!r}")
    return VideoList(split, sampler=sampler, frame_size=tuple(config.frame_size))


def split_features(
    backbone: nn.Module, config: RunConfig, world: World, split: str, data: VideoClipDataset | None = None
) -> SplitFeatures:
    """Pooled backbone features of every video of a split, averaged over its ``eval_clips`` clips.

    ``data``: the split's dataset when it is already built (:func:`split_dataset`).
    """
    data = data if data is not None else split_dataset(config, split)
    augment = presets.eval(config.crop_size).to(world.device)
    features, labels, valid = clip_outputs(backbone, data, augment, config, world, f"features ({split})")
    return SplitFeatures(data, features, labels, valid)


def retrieve(config: RetrieveConfig) -> dict[str, Any]:
    """Recall at each k of ``config.ks``, with raw and with centred features."""
    world = init_world(config.device)
    seed_everything(config.seed, config.deterministic)
    with RunFolder(config, world, checkpoints=False) as run:
        backbone = load_frozen_backbone(config).to(world.device)
        splits = {split: split_dataset(config, split) for split in ("train", "test")}
        run.open()  # everything is validated: now the folder is created and held
        gallery, queries = (split_features(backbone, config, world, split, data) for split, data in splits.items())
        results: dict[str, Any] = {"queries": int(queries.valid.sum()), "gallery": int(gallery.valid.sum())}
        if not (queries.valid.all() and gallery.valid.all()):
            results["unreadable_videos"] = {
                "queries": int((~queries.valid).sum()),
                "gallery": int((~gallery.valid).sum()),
            }
        for name, center in (("raw", False), ("centered", True)):
            recalls = recall_at_k(
                queries.features[queries.valid],
                queries.labels[queries.valid],
                gallery.features[gallery.valid],
                gallery.labels[gallery.valid],
                config.ks,
                center,
            )
            results[name] = {f"R@{k}": value for k, value in recalls.items()}
        run.write_json("results.json", results)
        if world.is_main:
            logger.info(
                "retrieval, %d test queries against %d training videos:\n%s",
                results["queries"],
                results["gallery"],
                format_recalls(results),
            )
        run.log_scalars(
            {f"retrieve/{name}/{k}": results[name][k] for name in ("raw", "centered") for k in results[name]}, 0
        )
        return {"run": str(run.path), **results}


def format_recalls(results: dict[str, Any]) -> str:
    """The retrieval results as a small Markdown table."""
    keys = list(results["raw"])
    lines = [f"| features | {' | '.join(keys)} |", "|---|" + "---|" * len(keys)]
    for name in ("raw", "centered"):
        lines.append(f"| {name} | " + " | ".join(f"{100 * results[name][k]:.1f}" for k in keys) + " |")
    return "\n".join(lines)
