"""``fame-aug demo``: FAME's effect on built-in data, on a CPU, in a few minutes.

One seed of ``fame-aug experiment background-bias`` at bias 0.8, at the experiment's budget: it
writes the background-bias dataset (training videos mostly on their class's own background,
test videos on any background) and trains four models with identical seeds, data order and
budget: a supervised model without and with FAME on its training clips, and MoCo without FAME
(the baseline) and with it, each MoCo backbone read out by a linear probe and by its nearest
training videos. It prints one table, says what it shows, draws FAME's masks and the supervised
models' class activation maps, and writes ``summary.json``::

    {"supervised": {"plain": top1, "fame": top1}, "moco": {"baseline": top1, "fame": top1},
     "moco_knn": {"baseline": knn, "fame": knn}, "chance": 12.5}

top-1 and kNN in percent on the test split. The same seed gives the same file, with any ``jobs``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fame_aug.contrib.moco.cam import class_activation_maps, load_classifier, moving_pixels, read_centre_clip, share_on
from fame_aug.contrib.moco.experiment import (
    QUICK_DATASET,
    QUICK_OVERRIDES,
    ExperimentPlan,
    run_experiment,
    variant_name,
)
from fame_aug.contrib.moco.reports import markdown_table, summarise, table_notes
from fame_aug.contrib.moco.resolve import resolve_config
from fame_aug.data import UCF101, BackgroundBiasConfig, eval_sampler, to_float_clips, to_uint8_clips
from fame_aug.visualize import mask_figure, write_png
from fame_aug.visualize.figures import clip_rows_figure, heatmap_overlay

__all__ = ["CAM_LAYER", "run_demo"]

# The stage whose map the class activation figure shows: the cpu-demo model's last map is 2 x 2
# cells at 28 pixels, its second stage's 7 x 7 (cells of 4 pixels), so the object's region is
# widened by half a cell when the maps' share on it is measured.
CAM_LAYER = "layer2"
_CELL_HALF = 2


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
        epochs: MoCo epochs (default: the ``cpu-demo`` preset's).
        probe_epochs: linear probe epochs (default: the preset's).
        supervised_epochs: epochs of the supervised models (default: the preset's).
        quick: a tiny run that only checks that everything works.
        jobs: models trained at the same time (``ExperimentPlan.jobs``; ``fame-aug demo`` uses 2).
    """
    began = time.perf_counter()
    tiny = 1 if quick else None
    mode = resolve_config("pretrain", "cpu-demo", check_paths=False).fame_mode
    plan = ExperimentPlan(
        out=out,
        biases=[0.8],
        control=[],
        seeds=[0],
        variants=["baseline", f"fame-{mode}"],
        supervised=["supervised", f"supervised-fame-{mode}"],
        pretrain_epochs=epochs or tiny,
        probe_epochs=probe_epochs or tiny,
        supervised_epochs=supervised_epochs or tiny,
        dataset=QUICK_DATASET if quick else {},
        overrides=QUICK_OVERRIDES if quick else {},
        jobs=jobs,
    )
    rows = run_experiment(plan, label="fame-aug demo")
    by_variant = {row["variant"]: row for row in rows}
    (baseline, moco_fame), (plain, supervised_fame) = plan.variants, plan.supervised
    classes = BackgroundBiasConfig(**plan.dataset).classes

    def percent(variant: str, key: str = "probe_top1") -> float:
        return round(100 * by_variant[variant][key], 1)

    summary = {
        "supervised": {"plain": percent(plain), "fame": percent(supervised_fame)},
        "moco": {"baseline": percent(baseline), "fame": percent(moco_fame)},
        "moco_knn": {"baseline": percent(baseline, "knn_top1"), "fame": percent(moco_fame, "knn_top1")},
        "chance": round(100 / classes, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    data_root = plan.data_root(plan.biases[0])
    masks = _mask_figure(data_root, out / "fame_masks.png", plan.overrides)
    cams, shares = _cam_figure(plan, data_root, out / "fame_cams.png")
    print("\n" + markdown_table(summarise(rows), plan.biases[0], classes, variant_name))
    print("\n" + table_notes(classes))
    print(
        f"\nGrad-CAM ({CAM_LAYER}) on the test videos: {variant_name(plain)} puts {shares['plain']:.0%} of its map "
        f"on the moving object (within {_CELL_HALF} pixels of it), {variant_name(supervised_fame)} "
        f"{shares['fame']:.0%}; that region covers {shares['object']:.0%} of the frames."
    )
    print("\n" + _verdict(summary, by_variant, plain, supervised_fame))
    print(f"\nwrote {out / 'summary.json'}, {masks}, {cams}, {out / 'table.md'}; each model's folder holds its log.txt")
    print(f"took {time.perf_counter() - began:.0f} s")
    return summary


def _verdict(summary: dict[str, Any], rows: dict[str, dict[str, Any]], plain: str, fame: str) -> str:
    """One sentence: what the demo measured, against chance."""
    supervised, moco, knn, chance = summary["supervised"], summary["moco"], summary["moco_knn"], summary["chance"]
    return (
        f"On test videos whose backgrounds say nothing of their class (chance {chance:g}%), the supervised model "
        f"that fits {100 * rows[plain]['train_top1']:.0f}% of its training clips classifies {supervised['plain']:g}% "
        f"right and its twin trained with FAME {supervised['fame']:g}% "
        f"({supervised['fame'] - supervised['plain']:+.1f} points), and MoCo's linear probe reaches "
        f"{moco['baseline']:g}% without FAME and {moco['fame']:g}% with it ({moco['fame'] - moco['baseline']:+.1f}; "
        f"kNN {knn['baseline']:g}% and {knn['fame']:g}%)."
    )


def _mask_figure(data_root: Path, out: Path, overrides: dict[str, Any]) -> Path:
    """FAME masks of four training videos, as the models were trained: the preset's mode, beta and merge."""
    config = resolve_config("pretrain", "cpu-demo", overrides=overrides, check_paths=False)
    fame = config.build_fame()
    assert fame is not None
    fame.self_pairs, fame.generator = False, torch.Generator().manual_seed(0)
    span = 8  # frames shown: every other frame of the first 16
    data = UCF101(data_root / "videos", data_root / "splits", sampler=eval_sampler(span, 2, 1), frame_size=None)
    clips = np.stack([data[i][0][0].numpy() for i in np.linspace(0, len(data) - 1, 4).astype(int)])
    merged = to_uint8_clips(fame(to_float_clips(clips)))
    return write_png(out, mask_figure(clips, fame._params["mask"].numpy(), merged, num_frames=span, min_side=96))


def _cam_figure(plan: ExperimentPlan, data_root: Path, out: Path) -> tuple[Path, dict[str, float]]:
    """Grad-CAMs of the plain and the FAME supervised models; the share of each map on the moving object.

    The figure shows three test videos whose background belongs to another class; the shares
    are means over every test video.
    """
    plain, fame = (plan.run_folder(plan.biases[0], plan.seeds[0], v) / "checkpoint.pt" for v in plan.supervised)
    models = [load_classifier(path) for path in (plain, fame)]
    metadata = json.loads((data_root / "metadata.json").read_text())
    families, records = metadata["backgrounds"], [r for r in metadata["videos"] if r["split"] == "test"]
    clips = np.stack([read_centre_clip(data_root / "videos" / r["path"], models[0][2]) for r in records])
    outputs = [class_activation_maps(model, clips, CAM_LAYER) for model, _, _ in models]
    moving = moving_pixels(clips, grow=_CELL_HALF)
    shares = {
        "plain": float(share_on(outputs[0][0], moving).mean()),
        "fame": float(share_on(outputs[1][0], moving).mean()),
        "object": float(moving.mean()),
    }
    foreign: list[int] = []  # a test video of each of three classes, on another class's background
    seen: set[int] = set()
    for n, record in enumerate(records):
        if record["background"] != families[record["label"]] and record["label"] not in seen and len(foreign) < 3:
            foreign.append(n)
            seen.add(record["label"])
    rows: list[tuple[str, np.ndarray]] = []
    for n in foreign or [0]:
        record = records[n]
        rows.append((f"{Path(record['path']).stem}: {record['background']} background", clips[n]))
        for variant, (_, classes, _), (maps, predicted, confidence) in zip(
            plan.supervised, models, outputs, strict=True
        ):
            text = f"{variant_name(variant)}: '{classes[predicted[n]]}' ({confidence[n]:.0%})"
            rows.append((text, heatmap_overlay(clips[n], maps[n])))
    return write_png(out, clip_rows_figure(rows, clips.shape[1], min_side=96)), shares
