"""``fame-aug demo``: the whole method on built-in data, on a CPU, in a few minutes.

It writes the background-bias dataset (training videos mostly on their class's own background,
test videos on any background), pretrains the small backbone with MoCo with FAME and without it
(the baseline), trains a linear probe on each and tests it on the test split, runs retrieval,
and prints one table: one seed and one bias level of ``fame-aug experiment background-bias``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from fame_aug import FAME
from fame_aug.contrib.moco.config import resolve_config
from fame_aug.contrib.moco.experiment import ExperimentPlan, markdown_table, run_experiment, summarise
from fame_aug.data import BackgroundBiasConfig, eval_sampler, to_float_clips
from fame_aug.data.datasets import UCF101
from fame_aug.visualize import mask_figure, write_png

__all__ = ["run_demo"]

_QUICK = {"frame_size": [32, 32], "crop_size": 28, "batch_size": 8, "queue_size": 64, "eval_clips": 2, "workers": 0}


def _mask_figure(data_root: Path, out: Path, mode: str) -> Path:
    """FAME masks of four training videos, with each merged onto the next one's background."""
    data = UCF101(data_root / "videos", data_root / "splits", sampler=eval_sampler(8, 2, 1), frame_size=None)
    clips = np.stack([data[i][0][0].numpy() for i in np.linspace(0, len(data) - 1, 4).astype(int)])
    video = to_float_clips(clips)
    fame = FAME(mode=mode, self_pairs=False, generator=torch.Generator().manual_seed(0))
    merged = (fame(video).permute(0, 2, 3, 4, 1) * 255).round().to(torch.uint8).numpy()
    return write_png(out, mask_figure(clips, fame._params["mask"].numpy(), merged, num_frames=8, min_side=96))


def run_demo(
    out: Path, epochs: int | None = None, probe_epochs: int | None = None, baseline: bool = True, quick: bool = False
) -> list[dict[str, Any]]:
    """Run the demo in ``out`` and print the results table; returns the experiment's rows."""
    preset = resolve_config("pretrain", "cpu-demo", check_paths=False)
    mode = preset.fame_mode  # type: ignore[attr-defined]
    tiny = {"classes": 3, "train_per_class": 4, "test_per_class": 2, "frames": 16, "size": 32}
    plan = ExperimentPlan(
        out=out,
        biases=[0.8],
        main_bias=0.8,
        seeds=[0],
        variants=[f"fame-{mode}"] + (["baseline"] if baseline else []),
        supervised=[],
        pretrain_epochs=epochs or (1 if quick else preset.epochs),
        probe_epochs=probe_epochs or (1 if quick else resolve_config("probe", "cpu-demo", check_paths=False).epochs),
        dataset=tiny if quick else {},
        overrides=_QUICK if quick else {},
    )
    rows = run_experiment(plan)
    figure = _mask_figure(out / "data-bias0.8", out / "fame_masks.png", mode)
    classes = BackgroundBiasConfig(**plan.dataset).classes
    print("\n" + markdown_table(summarise(rows), 0.8, classes))
    print("\n'nearest shares': how often a test video's nearest training video has its class, background or shape;")
    print("'colour distance': its object's colour distance to the query's, relative to an average training video")
    print(f"wrote {figure}; run folders, metrics and checkpoints are in {out}")
    return rows
