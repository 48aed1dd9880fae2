"""``fame-aug demo``: FAME's effect on built-in data, on a CPU, in a few minutes.

It writes the background-bias dataset (training videos mostly on their class's own background,
test videos on any background) and trains four models on it with identical seeds, data order
and budget: a supervised model without and with FAME on its training clips, and MoCo without
FAME (the baseline) and with it, each MoCo backbone tested by a linear probe: one seed of
``fame-aug experiment background-bias`` at bias 0.8, at a smaller budget (``DEMO_EPOCHS``) so that
it ends in under 5 minutes on 2 CPU cores. It prints one table and writes
``summary.json``: ``{"supervised": {"plain": top1, "fame": top1}, "moco": {"baseline": top1,
"fame": top1}, "chance": 12.5, "seconds": s}``, top-1 in percent on the test split.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fame_aug import FAME
from fame_aug.contrib.moco.experiment import QUICK_DATASET, QUICK_OVERRIDES, ExperimentPlan, run_experiment
from fame_aug.contrib.moco.reports import markdown_table, summarise
from fame_aug.data import UCF101, BackgroundBiasConfig, eval_sampler, to_float_clips, to_uint8_clips
from fame_aug.visualize import mask_figure, write_png

__all__ = ["DEMO_EPOCHS", "run_demo"]

# The demo's budget, a third to half of the experiment's (the cpu-demo preset's), so that four
# models train in under 5 minutes on 2 cores.
DEMO_EPOCHS = {"pretrain": 12, "supervised": 25}


def _mask_figure(data_root: Path, out: Path, mode: str) -> Path:
    """FAME masks of four training videos, with each merged onto the next one's background."""
    data = UCF101(data_root / "videos", data_root / "splits", sampler=eval_sampler(8, 2, 1), frame_size=None)
    clips = np.stack([data[i][0][0].numpy() for i in np.linspace(0, len(data) - 1, 4).astype(int)])
    video = to_float_clips(clips)
    fame = FAME(mode=mode, self_pairs=False, generator=torch.Generator().manual_seed(0))
    merged = to_uint8_clips(fame(video))
    return write_png(out, mask_figure(clips, fame._params["mask"].numpy(), merged, num_frames=8, min_side=96))


def run_demo(
    out: Path,
    epochs: int | None = None,
    probe_epochs: int | None = None,
    supervised_epochs: int | None = None,
    quick: bool = False,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run the demo in ``out``, print its table and return ``summary.json``'s contents.

    Args:
        out: run folder.
        epochs: MoCo epochs (default: ``DEMO_EPOCHS``).
        probe_epochs: linear probe epochs (default: the ``cpu-demo`` preset's).
        supervised_epochs: epochs of the supervised models (default: ``DEMO_EPOCHS``).
        quick: a tiny run that only checks that everything works.
        jobs: models trained at the same time (``ExperimentPlan.jobs``; ``fame-aug demo`` uses 2).
    """
    began = time.perf_counter()
    tiny = 1 if quick else None
    plan = ExperimentPlan(  # the experiment's default models: plain and with FAME in the preset's mode
        out=out,
        biases=[0.8],
        control=[],
        seeds=[0],
        pretrain_epochs=epochs or tiny or DEMO_EPOCHS["pretrain"],
        probe_epochs=probe_epochs or tiny,
        supervised_epochs=supervised_epochs or tiny or DEMO_EPOCHS["supervised"],
        dataset=QUICK_DATASET if quick else {},
        overrides=QUICK_OVERRIDES if quick else {},
        jobs=jobs,
    )
    rows = run_experiment(plan)
    top1 = {row["variant"]: round(100 * row["probe_top1"], 1) for row in rows}
    classes = BackgroundBiasConfig(**plan.dataset).classes
    (baseline, moco_fame), (plain, supervised_fame) = plan.variants, plan.supervised
    summary = {
        "supervised": {"plain": top1[plain], "fame": top1[supervised_fame]},
        "moco": {"baseline": top1[baseline], "fame": top1[moco_fame]},
        "chance": round(100 / classes, 1),
        "seconds": round(time.perf_counter() - began, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    mode = moco_fame.removeprefix("fame-")
    figure = _mask_figure(plan.data_root(plan.biases[0]), out / "fame_masks.png", mode)
    print("\n" + markdown_table(summarise(rows), 0.8, classes))
    print("\n'nearest shares': how often a test video's nearest training video has its class, background or shape;")
    print("'color distance': its object's color distance to the query's, relative to an average training video")
    print(f"\nsummary ({out / 'summary.json'}): {json.dumps(summary)}")
    print(f"wrote {figure}; run folders, metrics and checkpoints are in {out}")
    return summary
