"""Video retrieval results: each query's middle frame and its nearest training videos' (Figure 3)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fame_aug.contrib.moco.builder import load_frozen_backbone
from fame_aug.contrib.moco.checkpoint import load_checkpoint
from fame_aug.contrib.moco.config import RetrieveConfig
from fame_aug.contrib.moco.distributed import World
from fame_aug.contrib.moco.resolve import resolve_config
from fame_aug.contrib.moco.retrieve import split_features
from fame_aug.data import center_crop, open_video
from fame_aug.visualize.figures import stack_images, tile_row, upscale

__all__ = ["retrieval_config", "retrieval_figure"]

_HIT, _MISS = (40, 170, 40), (220, 40, 40)


def _middle_frame(path: Path, config: RetrieveConfig, min_side: int) -> np.ndarray:
    video = open_video(path)
    frame = video.read([video.num_frames // 2], tuple(config.frame_size))[0]
    return upscale(center_crop(frame[None], config.crop_size)[0], min_side)


def retrieval_config(checkpoint: str | Path, **overrides: Any) -> RetrieveConfig:
    """The retrieval configuration of a pretraining checkpoint (its data and model), with overrides."""
    saved = load_checkpoint(checkpoint).get("config") or {}
    known = {f.name for f in fields(RetrieveConfig)} - {"out", "resume", "pretrained"}
    values = {k: v for k, v in saved.items() if k in known}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["pretrained"] = str(checkpoint)
    config = resolve_config("retrieve", overrides=values, check_paths=False)
    config.check_paths(out=False)  # the figure writes no run folder
    return config


@torch.no_grad()
def retrieval_figure(
    config: RetrieveConfig,
    gallery: str = "train",
    queries: str = "test",
    k: int = 3,
    num_queries: int = 6,
    min_side: int = 96,
) -> tuple[np.ndarray, float]:
    """One row per query: its middle frame, then its ``k`` nearest gallery videos, hits framed green.

    Queries are spread evenly over the query split, so the figure is the same on every run;
    frames smaller than ``min_side`` are drawn enlarged.

    Returns:
        ``(image, recall@k over the shown queries)``.
    """
    if k < 1 or num_queries < 1:
        raise ValueError(f"k and num_queries must be >= 1, got {k} and {num_queries}")
    world = World(device=torch.device("cpu") if config.device in ("auto", "cpu") else torch.device(config.device))
    backbone = load_frozen_backbone(config).to(world.device)
    found = {
        role: split_features(backbone, config, world, split)
        for role, split in (("gallery", gallery), ("queries", queries))
    }
    gallery_set, query_set = found["gallery"], found["queries"]
    gallery_data, gallery_labels, gallery_valid = gallery_set.data, gallery_set.labels, gallery_set.valid
    query_data, query_labels, query_valid = query_set.data, query_set.labels, query_set.valid
    query_features, gallery_features = F.normalize(query_set.features, dim=1), F.normalize(gallery_set.features, dim=1)
    similarity = query_features @ gallery_features[gallery_valid].T
    gallery_index = torch.nonzero(gallery_valid).flatten()
    usable = torch.nonzero(query_valid).flatten()
    chosen = usable[np.linspace(0, len(usable) - 1, min(num_queries, len(usable))).round().astype(int)]
    rows, hits = [], 0
    for query in chosen.tolist():
        nearest = gallery_index[similarity[query].topk(min(k, len(gallery_index))).indices].tolist()
        tiles: list[tuple[str, np.ndarray, tuple[int, int, int] | None]] = [
            (
                f"query: {query_data.classes[int(query_labels[query])]}",
                _middle_frame(query_data.videos[query][0], config, min_side),
                None,
            )
        ]
        for rank, index in enumerate(nearest, 1):
            hit = int(gallery_labels[index]) == int(query_labels[query])
            name = gallery_data.classes[int(gallery_labels[index])]
            tiles.append(
                (
                    f"{rank}. {name} ({'hit' if hit else 'miss'})",
                    _middle_frame(gallery_data.videos[index][0], config, min_side),
                    _HIT if hit else _MISS,
                )
            )
        hits += any(int(gallery_labels[i]) == int(query_labels[query]) for i in nearest)
        rows.append(tile_row(tiles))
    title = f"{len(chosen)} queries and their {k} nearest training videos (green: same class)"
    return stack_images(rows, title=title), hits / max(len(chosen), 1)
