"""Video retrieval: test videos query the training videos; the loop of ``fame-aug retrieve``.

Each video is described by its backbone's pooled features averaged over ``eval_clips`` evenly
spaced, centre-cropped clips. Features are used raw and centred (each set minus its own mean),
then L2-normalised; a query scores a hit at k if one of its k nearest training videos (cosine
similarity) shares its class. Every query counts (the published script dropped some).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fame_aug.contrib.moco.config import RetrieveConfig
from fame_aug.contrib.moco.distributed import init_world
from fame_aug.contrib.moco.engine import RunFolder, build_dataset, clip_outputs, seed_everything
from fame_aug.contrib.moco.probe import load_frozen_backbone
from fame_aug.data import eval_sampler, presets

__all__ = ["recall_at_k", "retrieve"]


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


def retrieve(config: RetrieveConfig) -> dict[str, Any]:
    """Recall at each k of ``config.ks``, with raw and with centred features."""
    world = init_world(config.device)
    seed_everything(config.seed, config.deterministic)
    run = RunFolder(config, world, checkpoints=False)
    backbone = load_frozen_backbone(config).to(world.device)
    augment = presets.eval(config.crop_size).to(world.device)
    sampler = eval_sampler(config.num_frames, config.stride, config.eval_clips)
    features = {}
    for split, train in (("gallery", True), ("queries", False)):
        data = build_dataset(config, train=train, sampler=sampler)
        values, labels, valid = clip_outputs(backbone, data, augment, config, world, f"features ({split})")
        features[split] = (values[valid], labels[valid], int((~valid).sum()))
    (queries, query_labels, query_bad), (gallery, gallery_labels, gallery_bad) = (
        features["queries"],
        features["gallery"],
    )
    results: dict[str, Any] = {"queries": len(queries), "gallery": len(gallery)}
    if query_bad or gallery_bad:
        results["unreadable_videos"] = {"queries": query_bad, "gallery": gallery_bad}
    for name, center in (("raw", False), ("centered", True)):
        recalls = recall_at_k(queries, query_labels, gallery, gallery_labels, config.ks, center)
        results[name] = {f"R@{k}": value for k, value in recalls.items()}
    run.write_json("results.json", results)
    if world.is_main:
        print(format_recalls(results))
    return {"run": str(run.path), **results}


def format_recalls(results: dict[str, Any]) -> str:
    """The retrieval results as a small Markdown table."""
    keys = list(results["raw"])
    lines = [f"| features | {' | '.join(keys)} |", "|---|" + "---|" * len(keys)]
    for name in ("raw", "centered"):
        lines.append(f"| {name} | " + " | ".join(f"{100 * results[name][k]:.1f}" for k in keys) + " |")
    return "\n".join(lines)
