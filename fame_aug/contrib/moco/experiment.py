"""``fame-aug experiment background-bias``: does FAME make MoCo follow motion rather than background?

For each bias level, the background-bias dataset is generated (training videos on their class's
own background with probability ``bias``; test videos on independent backgrounds). The small
backbone is pretrained with MoCo several times with identical seeds, data order and budget:
without FAME (the baseline) and with FAME in each mask mode. Each is evaluated by a linear probe
trained on the training split and tested on the test split, and by retrieval (test videos query
training videos). Supervised models trained from scratch, without and with FAME on their
training clips (each keeping its own label), show what labels achieve. A diagnostic asks what
each representation matches on: for every test video, does its nearest training video share
its class (motion), its background family, its object's shape, and how close is its object's
colour (distance relative to the average over all training videos: below 100% means matched)?

Results go to the run folder: ``runs.csv`` (one row per run), ``summary.json``, ``table.md``
(mean and standard deviation over seeds) and ``probe_vs_bias.png``. Finished stages are reused,
so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import csv
import itertools
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fame_aug._checks import MASK_MODES
from fame_aug.contrib.moco.config import COMMANDS, resolve_config
from fame_aug.contrib.moco.distributed import World
from fame_aug.contrib.moco.finetune import finetune
from fame_aug.contrib.moco.pretrain import pretrain
from fame_aug.contrib.moco.probe import load_frozen_backbone, probe
from fame_aug.contrib.moco.retrieve import recall_at_k, split_features
from fame_aug.data import MOTIONS, BackgroundBiasConfig, make_background_bias_dataset, to_float_clips
from fame_aug.data.background_bias import render_video
from fame_aug.data.synthetic import BACKGROUND_KINDS
from fame_aug.functional import foreground_mask

__all__ = ["SUPERVISED_VARIANTS", "VARIANTS", "ExperimentPlan", "run_experiment", "summarise"]

# MoCo pretraining without FAME and with FAME in each mask mode: the folder under each seed,
# and the pretraining keys.
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"fame": False},
    **{f"fame-{mode}": {"fame": True, "fame_mode": mode} for mode in MASK_MODES},
}
# Supervised training from scratch on the training split, plain and with FAME on the training
# clips (each keeping its own label): the folder under each seed, and the fine-tuning keys.
SUPERVISED_VARIANTS: dict[str, dict[str, Any]] = {
    "supervised": {"fame": False},
    **{f"supervised-fame-{mode}": {"fame": True, "fame_mode": mode} for mode in MASK_MODES},
}


@dataclass
class ExperimentPlan:
    """What to run. The defaults are sized for 2 CPU cores (about 80 min).

    Attributes:
        out: run folder.
        biases: bias levels, one dataset each.
        main_bias: the level every seed runs at; the others run with ``other_seeds``.
        seeds: training seeds at ``main_bias``.
        other_seeds: training seeds at the other levels.
        variants: keys of ``VARIANTS``.
        supervised: keys of ``SUPERVISED_VARIANTS``: models trained with labels from scratch,
            without and with FAME on their training clips (none: an empty list).
        pretrain_epochs: MoCo epochs.
        probe_epochs: linear probe epochs.
        supervised_epochs: epochs of each supervised model (cheaper per epoch than pretraining:
            one view, no key encoder; at 20 epochs every supervised model was at chance).
        dataset: options of the generated dataset (``BackgroundBiasConfig`` fields), bias aside.
        overrides: config keys for the stages that have them (on top of the ``cpu-demo`` preset),
            e.g. ``queue_size`` reaches pretraining only.
    """

    out: Path = Path("runs/experiment-background-bias")
    biases: list[float] = field(default_factory=lambda: [0.5, 0.8, 0.95])
    main_bias: float = 0.8
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    other_seeds: list[int] = field(default_factory=lambda: [0])
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    supervised: list[str] = field(default_factory=lambda: list(SUPERVISED_VARIANTS))
    pretrain_epochs: int = 20
    probe_epochs: int = 10
    supervised_epochs: int = 60
    dataset: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
        unknown = [v for v in self.supervised if v not in SUPERVISED_VARIANTS]
        if unknown:
            raise ValueError(f"unknown supervised variants {unknown}; choose from {sorted(SUPERVISED_VARIANTS)}")
        if self.main_bias not in self.biases:
            raise ValueError(f"main_bias {self.main_bias} must be one of biases {self.biases}")


def _stage(
    command: str, out: Path, overrides: dict[str, Any], run: Callable[[Any], dict[str, Any]], shared: dict[str, Any]
) -> dict[str, Any]:
    """Run one stage, or reuse its results if an earlier experiment finished it.

    ``shared`` keys apply where the command has them; ``overrides`` must all be the command's. A
    folder that an earlier run filled with other settings (more epochs, another mode) is an error,
    not a silent reuse: its results would not be this plan's.
    """
    known = {f.name for f in fields(COMMANDS[command])}
    overrides = {**{k: v for k, v in shared.items() if k in known}, **overrides}
    config = resolve_config(command, "cpu-demo", overrides={"out": str(out), **overrides})
    _check_same_settings(config, out)
    done = out / "results.json"
    if done.is_file() and command != "pretrain":
        return json.loads(done.read_text())
    if command != "retrieve" and (out / "checkpoint.pt").is_file():
        config.resume = True  # finishes an interrupted stage, or returns at once if it is done
    return run(config)


def _check_same_settings(config: Any, out: Path) -> None:
    """Raise ``ValueError`` if ``out`` holds a run made with settings other than ``config``'s."""
    saved = out / "config.json"
    if not saved.is_file():
        return
    before = json.loads(saved.read_text())
    now = json.loads(json.dumps(asdict(config)))  # lists and numbers as the file stores them
    changed = sorted(k for k in now if k in before and k != "resume" and before[k] != now[k])
    if changed:
        details = ", ".join(f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in changed)
        raise ValueError(
            f"{out} holds a run with other settings ({details}); use another --out, or delete that folder "
            f"to run it again"
        )


@torch.no_grad()
def retrieval_and_neighbours(
    checkpoint: str, data_root: Path, overrides: dict[str, Any], out: Path
) -> dict[str, float]:
    """Retrieval R@1 and R@5, and what each test video's nearest training video shares with it.

    Test videos query the training videos with raw features. Besides recall, the nearest training
    video's class, background family, object shape and colour are compared with the query's.
    Results are kept in ``out/results.json`` and reused.
    """
    done = out / "results.json"
    if done.is_file():
        return json.loads(done.read_text())
    known = {f.name for f in fields(COMMANDS["retrieve"])}
    values = {k: v for k, v in overrides.items() if k in known}
    config = resolve_config("retrieve", "cpu-demo", overrides={**values, "pretrained": checkpoint, "out": str(out)})
    backbone = load_frozen_backbone(config)  # type: ignore[arg-type]
    world = World()
    gallery, queries = (split_features(backbone, config, world, split) for split in ("train", "test"))
    recalls = recall_at_k(queries.features, queries.labels, gallery.features, gallery.labels, [1, 5])
    similarity = F.normalize(queries.features, dim=1) @ F.normalize(gallery.features, dim=1).T
    nearest = similarity.argmax(dim=1).tolist()
    records = {r["path"]: r for r in json.loads((data_root / "metadata.json").read_text())["videos"]}

    def record(path: Path) -> dict[str, Any]:
        return records[f"{path.parent.name}/{path.name}"]

    pairs = [(record(queries.data.videos[q][0]), record(gallery.data.videos[g][0])) for q, g in enumerate(nearest)]
    colours = np.array([[a["colour"], b["colour"]] for a, b in pairs], dtype=np.float64)
    gallery_colours = np.array([record(path)["colour"] for path, _ in gallery.data.videos], dtype=np.float64)
    chance_distance = np.linalg.norm(colours[:, 0, None] - gallery_colours[None], axis=-1).mean()
    results = {
        "R@1": recalls[1],
        "R@5": recalls[5],
        "nn_same_class": float(np.mean([a["label"] == b["label"] for a, b in pairs])),
        "nn_same_background": float(np.mean([a["background"] == b["background"] for a, b in pairs])),
        "nn_same_shape": float(np.mean([a["shape"] == b["shape"] for a, b in pairs])),
        # object colour distance to the nearest video, relative to the mean over all training videos
        "nn_colour_distance": float(np.linalg.norm(colours[:, 0] - colours[:, 1], axis=-1).mean() / chance_distance),
    }
    out.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(results, indent=2))
    return results


def mask_recall(dataset: dict[str, Any], frame_size: int, modes: Sequence[str], videos: int = 64) -> dict[str, float]:
    """Share of the moving object's pixels (union over the clip) that each FAME mask mode keeps.

    Measured on freshly rendered videos of the experiment's dataset settings, where the object is
    known, at the training frame size: is the foreground that FAME keeps the object?
    """
    config = BackgroundBiasConfig(**dataset)
    rng = np.random.default_rng(1234)
    clips, objects = [], []
    for n in range(videos):
        motion, family = MOTIONS[n % config.classes], BACKGROUND_KINDS[int(rng.integers(config.classes))]
        video, masks, _ = render_video(motion, family, config.frames, config.size, rng)
        clips.append(np.stack([cv2.resize(f, (frame_size, frame_size), interpolation=cv2.INTER_AREA) for f in video]))
        objects.append(np.stack([cv2.resize(m.astype(np.uint8), (frame_size, frame_size)) for m in masks]).any(axis=0))
    video = to_float_clips(np.stack(clips))
    swept = torch.from_numpy(np.stack(objects))
    results = {}
    for mode in modes:
        kept = foreground_mask(video, beta=0.5, mode=mode)
        results[mode] = float(((kept & swept).sum(dim=(1, 2)) / swept.sum(dim=(1, 2))).mean())
    return results


def run_experiment(plan: ExperimentPlan) -> list[dict[str, Any]]:
    """Run every (bias, seed, variant) of ``plan`` and write the outputs; returns one row per run."""
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "plan.json").write_text(json.dumps(asdict(plan), default=str, indent=2))
    frame_size = resolve_config("pretrain", "cpu-demo", overrides=plan.overrides, check_paths=False).frame_size[0]
    recall = mask_recall(plan.dataset, frame_size, MASK_MODES)
    (plan.out / "mask_recall.json").write_text(json.dumps(recall, indent=2))
    rows: list[dict[str, Any]] = []
    for bias in plan.biases:
        data_root = plan.out / f"data-bias{bias}"
        if not (data_root / "metadata.json").is_file():
            make_background_bias_dataset(data_root, BackgroundBiasConfig(**{**plan.dataset, "bias": bias}))
        shared = {**plan.overrides, "data_root": str(data_root)}
        for seed in plan.seeds if bias == plan.main_bias else plan.other_seeds:
            base = plan.out / f"bias{bias}" / f"seed{seed}"
            settings = {**shared, "seed": seed}
            for variant in plan.variants:
                folder = base / variant
                pretrain_keys = {**VARIANTS[variant], "epochs": plan.pretrain_epochs}
                trained = _stage("pretrain", folder / "pretrain", pretrain_keys, pretrain, settings)
                checkpoint = {"pretrained": trained["checkpoint"]}
                probed = _stage("probe", folder / "probe", {**checkpoint, "epochs": plan.probe_epochs}, probe, settings)
                found = retrieval_and_neighbours(trained["checkpoint"], data_root, settings, folder / "retrieve")
                row = {"bias": bias, "seed": seed, "variant": variant, "probe_top1": probed["top1"]}
                rows.append({**row, **found, "pretrain_loss": trained.get("loss")})
            for variant in plan.supervised:
                keys = {**SUPERVISED_VARIANTS[variant], "epochs": plan.supervised_epochs}
                result = _stage("finetune", base / variant, keys, finetune, settings)
                rows.append({"bias": bias, "seed": seed, "variant": variant, "probe_top1": result["top1"]})
        _write(plan, rows)
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of every metric, per (bias, variant)."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["bias"], row["variant"]), []).append(row)
    summary = []
    for (bias, variant), members in groups.items():
        entry: dict[str, Any] = {"bias": bias, "variant": variant, "seeds": len(members)}
        for key in members[0]:
            values = [m[key] for m in members if isinstance(m.get(key), int | float) and key not in ("bias", "seed")]
            if values and len(values) == len(members):
                entry[key] = statistics.mean(values)
                entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


def _cell(entry: dict[str, Any], key: str) -> str:
    if key not in entry:
        return "-"
    return f"{100 * entry[key]:.1f} ± {100 * entry[f'{key}_std']:.1f}"


def markdown_table(summary: Sequence[dict[str, Any]], bias: float, classes: int) -> str:
    """The table of one bias level: probe and retrieval (mean ± std over seeds, %) and the diagnostic."""
    lines = [
        f"Bias {bias}, {classes} classes (chance {100 / classes:.1f}%); mean ± std over seeds, in %.",
        "",
        "| model | seeds | top-1 (test; linear probe if pretrained) | R@1 | R@5 | nearest shares class "
        "| background | shape | colour distance |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in (e for e in summary if e["bias"] == bias):
        keys = (
            "probe_top1",
            "R@1",
            "R@5",
            "nn_same_class",
            "nn_same_background",
            "nn_same_shape",
            "nn_colour_distance",
        )
        lines.append(f"| {entry['variant']} | {entry['seeds']} | " + " | ".join(_cell(entry, k) for k in keys) + " |")
    return "\n".join(lines)


def plot_probe_vs_bias(summary: Sequence[dict[str, Any]], classes: int, path: Path) -> Path:
    """Test top-1 (linear probe if pretrained) against bias, one line per model, drawn with OpenCV."""
    plot_width, height, margin, legend_width = 640, 420, 60, 230
    width = plot_width + legend_width
    image = np.full((height, width, 3), 255, np.uint8)
    biases = sorted({e["bias"] for e in summary})
    top = max([e["probe_top1"] for e in summary] + [1 / classes]) * 1.15
    low_bias, high_bias = min(biases), max(biases)

    def point(bias: float, value: float) -> tuple[int, int]:
        x = margin + (bias - low_bias) / max(high_bias - low_bias, 1e-9) * (plot_width - 2 * margin)
        return int(x), int(height - margin - value / top * (height - 2 * margin))

    cv2.rectangle(image, (margin, margin), (plot_width - margin, height - margin), (0, 0, 0), 1)
    for tick in np.linspace(0, top, 5):
        y = point(low_bias, tick)[1]
        cv2.putText(image, f"{100 * tick:.0f}%", (5, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for bias in biases:
        x = point(bias, 0)[0]
        cv2.putText(
            image, f"{bias}", (x - 12, height - margin + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
        )
    cv2.line(image, point(low_bias, 1 / classes), point(high_bias, 1 / classes), (150, 150, 150), 1, cv2.LINE_AA)
    # RGB; supervised models (no linear probe) are drawn with thin lines.
    palette = [
        (200, 60, 60),
        (40, 120, 220),
        (40, 160, 60),
        (160, 90, 200),
        (230, 140, 30),
        (20, 170, 170),
        (120, 80, 40),
        (220, 80, 160),
    ]
    variants = list(dict.fromkeys(e["variant"] for e in summary))
    for n, variant in enumerate(variants):
        colour = palette[n % len(palette)]
        thickness = 1 if variant.startswith("supervised") else 2
        points = [
            point(e["bias"], e["probe_top1"])
            for e in sorted(summary, key=lambda e: e["bias"])
            if e["variant"] == variant
        ]
        for a, b in itertools.pairwise(points):
            cv2.line(image, a, b, colour, thickness, cv2.LINE_AA)
        for p in points:
            cv2.circle(image, p, 4, colour, -1, cv2.LINE_AA)
    for n, variant in enumerate(variants):  # the legend, right of the plot
        position = (plot_width - margin + 15, margin + 12 + 20 * n)
        colour = palette[n % len(palette)]
        cv2.putText(image, variant, position, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    cv2.putText(
        image,
        "test top-1 (linear probe if pretrained) vs training-set bias (grey: chance)",
        (margin, 30),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def _write(plan: ExperimentPlan, rows: Sequence[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with (plan.out / "runs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows)
    (plan.out / "summary.json").write_text(json.dumps(summary, indent=2))
    classes = BackgroundBiasConfig(**plan.dataset).classes
    tables = [markdown_table(summary, bias, classes) for bias in sorted({r["bias"] for r in rows})]
    recall = json.loads((plan.out / "mask_recall.json").read_text())
    masks = ", ".join(f"{mode} {100 * value:.0f}%" for mode, value in recall.items())
    note = f"Share of the moving object that FAME's mask keeps on this dataset (beta 0.5): {masks}."
    (plan.out / "table.md").write_text("\n\n".join(tables) + "\n\n" + note + "\n")
    plot_probe_vs_bias(summary, classes, plan.out / "probe_vs_bias.png")
