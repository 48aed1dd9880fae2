"""``fame-aug demo``: the whole method on built-in data, on a CPU, in a few minutes.

It writes the background-bias dataset (training videos mostly on their class's own background,
test videos on any background), pretrains the small backbone with MoCo with FAME and without
it (the baseline), trains a linear probe on each and tests it on the test split, runs
retrieval, and prints one table. A representation that follows motion scores well on the test
split; one that follows backgrounds does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fame_aug import FAME
from fame_aug.contrib.moco.config import resolve_config
from fame_aug.contrib.moco.pretrain import pretrain
from fame_aug.contrib.moco.probe import probe
from fame_aug.contrib.moco.retrieve import retrieve
from fame_aug.data import BackgroundBiasConfig, eval_sampler, make_background_bias_dataset, to_float_clips
from fame_aug.data.datasets import UCF101
from fame_aug.visualize import mask_figure, write_png

__all__ = ["run_demo"]

_QUICK = {
    "frame_size": [32, 32],
    "crop_size": 28,
    "batch_size": 8,
    "eval_clips": 2,
    "eval_batch_size": 8,
    "workers": 0,
}


def _stage(command: str, out: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    config = resolve_config(command, "cpu-demo", overrides={"out": str(out), **overrides})
    if command != "retrieve" and (out / "checkpoint.pt").is_file():
        config.resume = True  # a rerun finishes or reuses what an earlier demo trained
    return {"pretrain": pretrain, "probe": probe, "retrieve": retrieve}[command](config)


def _mask_figure(data_root: Path, out: Path, mode: str) -> Path:
    """FAME masks of four training videos, with each merged onto the next one's background."""
    data = UCF101(data_root / "videos", data_root / "splits", sampler=eval_sampler(8, 2, 1), frame_size=None)
    clips = np.stack([data[i][0][0].numpy() for i in np.linspace(0, len(data) - 1, 4).astype(int)])
    video = to_float_clips(clips)
    fame = FAME(mode=mode, self_pairs=False, generator=torch.Generator().manual_seed(0))
    merged = (fame(video).permute(0, 2, 3, 4, 1) * 255).round().to(torch.uint8).numpy()
    return write_png(out, mask_figure(clips, fame._params["mask"].numpy(), merged, num_frames=8))


def run_demo(
    out: Path,
    epochs: int | None = None,
    probe_epochs: int | None = None,
    baseline: bool = True,
    quick: bool = False,
) -> list[dict[str, Any]]:
    """Run the demo in ``out`` and print the results table; returns its rows."""
    data_root = out / "data"
    if not (data_root / "metadata.json").is_file():
        config = (
            BackgroundBiasConfig(classes=3, train_per_class=4, test_per_class=2, frames=16, size=32) if quick else None
        )
        meta = make_background_bias_dataset(data_root, config)
        print(f"made the background-bias dataset in {data_root}: {meta['stats']}")
    shared: dict[str, Any] = {"data_root": str(data_root), **(_QUICK if quick else {})}
    if quick:
        shared["epochs"] = 1
    pretrain_extra: dict[str, Any] = {"queue_size": 64} if quick else {}
    if epochs is not None:
        pretrain_extra["epochs"] = epochs
    probe_extra: dict[str, Any] = {"epochs": probe_epochs} if probe_epochs is not None else {}

    preset = resolve_config("pretrain", "cpu-demo", check_paths=False)
    figure = _mask_figure(data_root, out / "fame_masks.png", preset.fame_mode)  # type: ignore[attr-defined]
    print(f"wrote {figure}")
    rows = []
    for name, fame in [("FAME", True)] + ([("baseline (no FAME)", False)] if baseline else []):
        tag = "fame" if fame else "baseline"
        trained = _stage("pretrain", out / f"pretrain-{tag}", {**shared, **pretrain_extra, "fame": fame})
        checkpoint = {"pretrained": trained["checkpoint"]}
        probed = _stage("probe", out / f"probe-{tag}", {**shared, **probe_extra, **checkpoint})
        found = _stage("retrieve", out / f"retrieve-{tag}", {**shared, **checkpoint})
        rows.append(
            {
                "pretraining": name,
                "probe_top1": probed["top1"],
                "R@1": found["raw"]["R@1"],
                "R@5": found["raw"]["R@5"],
                "pretrain_loss": trained.get("loss", float("nan")),
            }
        )
    classes = len(UCF101(data_root / "videos", data_root / "splits").classes)
    print(f"\nBackground-bias test split ({classes} motion classes, chance {100 / classes:.1f}%):\n")
    print("| pretraining | linear probe top-1 (%) | retrieval R@1 (%) | retrieval R@5 (%) |")
    print("|---|---|---|---|")
    for row in rows:
        cells = (100 * row[key] for key in ("probe_top1", "R@1", "R@5"))
        print(f"| {row['pretraining']} | " + " | ".join(f"{value:.1f}" for value in cells) + " |")
    print(f"\nrun folders, metrics and checkpoints: {out}")
    return rows
