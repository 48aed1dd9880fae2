"""What the background-bias experiment measures beside accuracy.

- :func:`retrieval_and_neighbours`: for every test video, does its nearest training video share
  its class (motion), its background family, its object's shape, and how close is its object's
  color (relative to the average over all training videos: below 100% means matched)? And a
  readout with nothing to train: the class most of its 20 nearest training videos have (kNN).
- :func:`mask_quality`: how much of the moving object each mask mode keeps (recall) and how much
  of each mask lies on it (precision), on the experiment's own clips.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fame_aug.contrib.moco.builder import load_frozen_backbone
from fame_aug.contrib.moco.config import COMMANDS, PretrainConfig
from fame_aug.contrib.moco.distributed import World
from fame_aug.contrib.moco.resolve import resolve_config
from fame_aug.contrib.moco.retrieve import recall_at_k, split_features
from fame_aug.data import MOTIONS, BackgroundBiasConfig, to_float_clips
from fame_aug.data.background_bias import family_hue, render_video
from fame_aug.data.synthetic import BACKGROUND_KINDS
from fame_aug.functional import foreground_mask

__all__ = ["KNN_NEIGHBOURS", "knn_accuracy", "mask_quality", "retrieval_and_neighbours"]

# Neighbours that vote in the kNN readout, each weighted by exp(similarity / KNN_TEMPERATURE)
# (Wu et al. 2018 weigh 200 neighbours of 1.3M images so; 20 of 768 videos here).
KNN_NEIGHBOURS = 20
KNN_TEMPERATURE = 0.07


def knn_accuracy(
    similarity: torch.Tensor, labels: torch.Tensor, gallery_labels: torch.Tensor, k: int = KNN_NEIGHBOURS
) -> float:
    """Share of queries whose k nearest gallery items, weighted by similarity, vote for their class.

    Args:
        similarity: (Q, G) cosine similarities of queries to gallery items.
        labels: (Q,) the queries' classes.
        gallery_labels: (G,) the gallery's classes.
        k: neighbours that vote (capped at G).
    """
    top = similarity.topk(min(k, similarity.shape[1]), dim=1)
    votes = torch.zeros(similarity.shape[0], int(gallery_labels.max()) + 1, dtype=similarity.dtype)
    votes.scatter_add_(1, gallery_labels[top.indices], (top.values / KNN_TEMPERATURE).exp())
    return (votes.argmax(dim=1) == labels).float().mean().item()


@torch.no_grad()
def retrieval_and_neighbours(
    checkpoint: str, data_root: Path, overrides: dict[str, Any], out: Path
) -> dict[str, float]:
    """Retrieval R@1 and R@5, the kNN readout, and what each test video's nearest training video shares with it.

    Test videos query the training videos with raw features. Besides recall and the kNN readout
    (``knn_top1``: :func:`knn_accuracy`), the nearest training video's class, background family,
    object shape and color are compared with the query's. Results are kept in
    ``out/results.json`` and reused.
    """
    done = out / "results.json"
    if done.is_file():
        return json.loads(done.read_text())
    known = {f.name for f in fields(COMMANDS["retrieve"])}
    values = {k: v for k, v in overrides.items() if k in known}
    config = resolve_config("retrieve", "cpu-demo", overrides={**values, "pretrained": checkpoint, "out": str(out)})
    backbone = load_frozen_backbone(config)
    world = World()
    gallery, queries = (split_features(backbone, config, world, split) for split in ("train", "test"))
    recalls = recall_at_k(queries.features, queries.labels, gallery.features, gallery.labels, [1, 5])
    similarity = F.normalize(queries.features, dim=1) @ F.normalize(gallery.features, dim=1).T
    nearest = similarity.argmax(dim=1).tolist()
    records = {r["path"]: r for r in json.loads((data_root / "metadata.json").read_text())["videos"]}

    def record(path: Path) -> dict[str, Any]:
        return records[f"{path.parent.name}/{path.name}"]

    pairs = [(record(queries.data.videos[q][0]), record(gallery.data.videos[g][0])) for q, g in enumerate(nearest)]
    colors = np.array([[a["color"], b["color"]] for a, b in pairs], dtype=np.float64)
    gallery_colors = np.array([record(path)["color"] for path, _ in gallery.data.videos], dtype=np.float64)
    chance_distance = np.linalg.norm(colors[:, 0, None] - gallery_colors[None], axis=-1).mean()
    results = {
        "R@1": recalls[1],
        "R@5": recalls[5],
        "knn_top1": knn_accuracy(similarity, queries.labels, gallery.labels),
        "nn_same_class": float(np.mean([a["label"] == b["label"] for a, b in pairs])),
        "nn_same_background": float(np.mean([a["background"] == b["background"] for a, b in pairs])),
        "nn_same_shape": float(np.mean([a["shape"] == b["shape"] for a, b in pairs])),
        # object color distance to the nearest video, relative to the mean over all training videos
        "nn_color_distance": float(np.linalg.norm(colors[:, 0] - colors[:, 1], axis=-1).mean() / chance_distance),
    }
    out.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(results, indent=2))
    return results


def mask_quality(
    dataset: dict[str, Any], config: PretrainConfig, modes: Sequence[str], videos: int = 64
) -> dict[str, dict[str, float]]:
    """How well each FAME mask mode finds the moving object on the experiment's dataset.

    Measured on freshly rendered videos of the experiment's dataset settings, where the object is
    known, at the training frame size, over the frames of one training clip: ``recall`` is the
    share of the object's pixels (union over the clip) that the mask keeps, ``precision`` the
    share of the kept pixels that the object covers at some frame (the rest is the clip's own
    background, which FAME carries along). ``config`` gives the clip (frames, stride, frame
    size) and FAME's beta.
    """
    frame_size, data = config.frame_size[0], BackgroundBiasConfig(**dataset)
    span = (config.num_frames - 1) * config.stride + 1
    frames = np.linspace(0, min(span, data.frames) - 1, config.num_frames).round().astype(int)  # one clip
    rng = np.random.default_rng(1234)
    clips, objects = [], []
    for n in range(videos):
        motion, index = MOTIONS[n % data.classes], int(rng.integers(data.classes))
        hue = family_hue(index, data)
        video, masks, _ = render_video(
            motion, BACKGROUND_KINDS[index], data.frames, data.size, rng, object_size=data.object_size, **hue
        )
        clips.append(
            np.stack([cv2.resize(f, (frame_size, frame_size), interpolation=cv2.INTER_AREA) for f in video[frames]])
        )
        objects.append(
            np.stack([cv2.resize(m.astype(np.uint8), (frame_size, frame_size)) for m in masks[frames]]).any(0)
        )
    batch = to_float_clips(np.stack(clips))
    swept = torch.from_numpy(np.stack(objects))
    results: dict[str, dict[str, float]] = {"recall": {}, "precision": {}}
    for mode in modes:
        kept = foreground_mask(batch, beta=config.fame_beta, mode=mode)
        hits = (kept & swept).sum(dim=(1, 2)).float()
        results["recall"][mode] = float((hits / swept.sum(dim=(1, 2))).mean())
        results["precision"][mode] = float((hits / kept.sum(dim=(1, 2))).mean())
    return results
