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

Results go to the run folder: ``runs.csv`` (one row per run), ``summary_by_variant.json``, ``table.md``
(mean and standard deviation over seeds), ``probe_vs_bias.png``, ``learning_curves.png`` and
``mask_quality.json``. Finished stages are reused,
so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import multiprocessing
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fame_aug._checks import MASK_MODES
from fame_aug.contrib.moco.config import COMMANDS, PretrainConfig, resolve_config
from fame_aug.contrib.moco.distributed import World
from fame_aug.contrib.moco.engine import log_to_stderr, read_metrics
from fame_aug.contrib.moco.finetune import finetune
from fame_aug.contrib.moco.pretrain import pretrain
from fame_aug.contrib.moco.probe import load_frozen_backbone, probe
from fame_aug.contrib.moco.retrieve import recall_at_k, split_features
from fame_aug.data import MOTIONS, BackgroundBiasConfig, make_background_bias_dataset, to_float_clips
from fame_aug.data.background_bias import render_video
from fame_aug.data.synthetic import BACKGROUND_KINDS
from fame_aug.functional import foreground_mask

__all__ = [
    "QUICK_DATASET",
    "QUICK_OVERRIDES",
    "SUPERVISED_VARIANTS",
    "VARIANTS",
    "ExperimentPlan",
    "run_experiment",
    "summarise",
]

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


# A tiny run that only checks that everything works (``--quick``): its dataset and stage settings.
QUICK_DATASET: dict[str, Any] = {"classes": 3, "train_per_class": 4, "test_per_class": 2, "frames": 16, "size": 32}
QUICK_OVERRIDES: dict[str, Any] = {
    "frame_size": [32, 32],
    "crop_size": 28,
    "batch_size": 8,
    "queue_size": 64,
    "eval_clips": 2,
    "workers": 0,
}


def _preset_mode() -> str:
    return resolve_config("pretrain", "cpu-demo", check_paths=False).fame_mode  # type: ignore[attr-defined]


@dataclass
class ExperimentPlan:
    """What to run. The defaults are sized for 2 CPU cores (about 30 min).

    Attributes:
        out: run folder.
        biases: bias levels, one dataset each; every seed runs ``variants`` and ``supervised``
            at each.
        control: models also trained on the control dataset, whose backgrounds are independent
            of the class (bias = 1 / classes): how far each gets when backgrounds do not help
            (none: an empty list).
        seeds: training seeds.
        variants: keys of ``VARIANTS`` (default: the baseline and FAME in the ``cpu-demo``
            preset's mask mode).
        supervised: keys of ``SUPERVISED_VARIANTS``: models trained with labels from scratch,
            without and with FAME on their training clips (none: an empty list).
        pretrain_epochs: MoCo epochs (default: the ``cpu-demo`` preset's).
        probe_epochs: linear probe epochs (default: the preset's).
        supervised_epochs: epochs of each supervised model (default: the preset's).
        dataset: options of the generated dataset (``BackgroundBiasConfig`` fields), bias aside.
        overrides: config keys for the stages that have them (on top of the ``cpu-demo`` preset),
            e.g. ``queue_size`` reaches pretraining only.
        jobs: runs trained at the same time, in separate processes sharing the CPU threads
            (1: one after another in this process; the command line's default is 2). The
            processes are spawned: a script that sets ``jobs > 1`` needs the
            ``if __name__ == "__main__":`` guard.
    """

    out: Path = Path("runs/experiment-background-bias")
    biases: list[float] = field(default_factory=lambda: [0.8])
    control: list[str] = field(default_factory=lambda: ["supervised"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    variants: list[str] = field(default_factory=lambda: ["baseline", f"fame-{_preset_mode()}"])
    supervised: list[str] = field(default_factory=lambda: ["supervised", f"supervised-fame-{_preset_mode()}"])
    pretrain_epochs: int | None = None
    probe_epochs: int | None = None
    supervised_epochs: int | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    jobs: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise ValueError(f"jobs must be an integer >= 1, got {self.jobs!r}")
        for name, known in (
            ("variants", VARIANTS),
            ("supervised", SUPERVISED_VARIANTS),
            ("control", {**VARIANTS, **SUPERVISED_VARIANTS}),
        ):
            unknown = [v for v in getattr(self, name) if v not in known]
            if unknown:
                raise ValueError(f"unknown {name} {unknown}; choose from {sorted(known)}")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        for bias in self.biases:
            if not 0.0 <= bias <= 1.0:
                raise ValueError(f"biases must lie in [0, 1], got {bias}")

    @property
    def control_bias(self) -> float:
        """The control level: each training video's background family drawn uniformly."""
        return 1.0 / BackgroundBiasConfig(**self.dataset).classes

    def data_root(self, bias: float) -> Path:
        """The generated dataset of a bias level."""
        return self.out / f"data-bias{bias:g}"

    def run_folder(self, bias: float, seed: int, variant: str) -> Path:
        """The folder of one model's runs (a supervised run, or pretrain/probe/retrieve)."""
        return self.out / f"bias{bias:g}" / f"seed{seed}" / variant

    def levels(self) -> list[tuple[float, list[str]]]:
        """``(bias, variants)`` of every dataset to train on, the control first."""
        levels = [(self.control_bias, list(self.control))] if self.control else []
        return levels + [(bias, [*self.variants, *self.supervised]) for bias in self.biases]


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
    colors = np.array([[a["color"], b["color"]] for a, b in pairs], dtype=np.float64)
    gallery_colors = np.array([record(path)["color"] for path, _ in gallery.data.videos], dtype=np.float64)
    chance_distance = np.linalg.norm(colors[:, 0, None] - gallery_colors[None], axis=-1).mean()
    results = {
        "R@1": recalls[1],
        "R@5": recalls[5],
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
        motion, family = MOTIONS[n % data.classes], BACKGROUND_KINDS[int(rng.integers(data.classes))]
        video, masks, _ = render_video(motion, family, data.frames, data.size, rng, object_size=data.object_size)
        clips.append(
            np.stack([cv2.resize(f, (frame_size, frame_size), interpolation=cv2.INTER_AREA) for f in video[frames]])
        )
        objects.append(
            np.stack([cv2.resize(m.astype(np.uint8), (frame_size, frame_size)) for m in masks[frames]]).any(0)
        )
    video = to_float_clips(np.stack(clips))
    swept = torch.from_numpy(np.stack(objects))
    results: dict[str, dict[str, float]] = {"recall": {}, "precision": {}}
    for mode in modes:
        kept = foreground_mask(video, beta=config.fame_beta, mode=mode)
        hits = (kept & swept).sum(dim=(1, 2)).float()
        results["recall"][mode] = float((hits / swept.sum(dim=(1, 2))).mean())
        results["precision"][mode] = float((hits / kept.sum(dim=(1, 2))).mean())
    return results


def run_experiment(plan: ExperimentPlan) -> list[dict[str, Any]]:
    """Run every (bias, seed, variant) of ``plan`` and write the outputs; returns one row per run.

    With ``plan.jobs > 1`` the runs are shared among that many processes, each with an equal
    share of the CPU threads (two single-threaded runs do about 1.35x the work of one run on two
    threads on a 2-core machine); each run is seeded as it would be alone, so the results do not
    depend on ``jobs``.
    """
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "plan.json").write_text(json.dumps(asdict(plan), default=str, indent=2))
    preset = resolve_config("pretrain", "cpu-demo", overrides=plan.overrides, check_paths=False)
    quality = mask_quality(plan.dataset, preset, MASK_MODES)  # type: ignore[arg-type]
    (plan.out / "mask_quality.json").write_text(json.dumps({"beta": preset.fame_beta, **quality}, indent=2))  # type: ignore[attr-defined]
    units = []
    for bias, variants in plan.levels():
        data_root = plan.data_root(bias)
        if not (data_root / "metadata.json").is_file():
            make_background_bias_dataset(data_root, BackgroundBiasConfig(**{**plan.dataset, "bias": bias}))
        units += [(plan, bias, seed, variant) for seed in plan.seeds for variant in variants]
    if plan.jobs == 1:
        rows = [_run_unit(*unit) for unit in units]
    else:
        threads = max(1, torch.get_num_threads() // plan.jobs)
        context = multiprocessing.get_context("spawn")  # forking a process that holds OpenMP threads can hang
        with ProcessPoolExecutor(plan.jobs, context, initializer=torch.set_num_threads, initargs=(threads,)) as pool:
            # the long MoCo runs first, so that the short supervised ones fill in at the end
            order = sorted(range(len(units)), key=lambda n: units[n][3] in SUPERVISED_VARIANTS)
            futures = {pool.submit(_run_unit_logged, *units[n]): n for n in order}
            rows = [{} for _ in units]
            for future in as_completed(futures):
                try:
                    row = rows[futures[future]] = future.result()
                except BaseException as error:
                    pool.shutdown(wait=False, cancel_futures=True)  # runs not started yet never start
                    if isinstance(error, ValueError | TypeError):  # a run's bad input: said as in one process
                        raise type(error)(*error.args) from None
                    raise
                name = f"bias {row['bias']:g} seed {row['seed']} {row['variant']}"
                print(f"finished {name}: top-1 {100 * row['probe_top1']:.1f}%", flush=True)
    _write(plan, rows)
    return rows


def _run_unit_logged(plan: ExperimentPlan, bias: float, seed: int, variant: str) -> dict[str, Any]:
    """``_run_unit`` with its console output in ``log.txt`` of its folder (runs share the console)."""
    folder = plan.run_folder(bias, seed, variant)
    folder.mkdir(parents=True, exist_ok=True)
    log_to_stderr()  # a spawned process starts without the command line's logging: the loops' lines go to log.txt
    with (folder / "log.txt").open("a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        return _run_unit(plan, bias, seed, variant)


def _run_unit(plan: ExperimentPlan, bias: float, seed: int, variant: str) -> dict[str, Any]:
    """Train and evaluate one model: a supervised one, or MoCo pretraining, its probe and retrieval."""
    data_root = plan.data_root(bias)
    settings = {**plan.overrides, "data_root": str(data_root), "seed": seed}
    folder = plan.run_folder(bias, seed, variant)
    row = {"bias": bias, "seed": seed, "variant": variant}
    if variant in SUPERVISED_VARIANTS:
        keys = {**SUPERVISED_VARIANTS[variant], **_epochs(plan.supervised_epochs)}
        result = _stage("finetune", folder, keys, finetune, settings)
        return {**row, "probe_top1": result["top1"]}
    pretrain_keys = {**VARIANTS[variant], **_epochs(plan.pretrain_epochs)}
    trained = _stage("pretrain", folder / "pretrain", pretrain_keys, pretrain, settings)
    probe_keys = {"pretrained": trained["checkpoint"], **_epochs(plan.probe_epochs)}
    probed = _stage("probe", folder / "probe", probe_keys, probe, settings)
    found = retrieval_and_neighbours(trained["checkpoint"], data_root, settings, folder / "retrieve")
    return {**row, "probe_top1": probed["top1"], **found, "pretrain_loss": trained.get("loss")}


def _epochs(epochs: int | None) -> dict[str, int]:
    """The ``epochs`` key when the plan sets it (the preset's otherwise)."""
    return {} if epochs is None else {"epochs": epochs}


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


_CONTROL_NOTE = " (control: backgrounds independent of the class)"


def _cell(entry: dict[str, Any], key: str) -> str:
    if key not in entry:
        return "-"
    return f"{100 * entry[key]:.1f} ± {100 * entry[f'{key}_std']:.1f}"


def markdown_table(summary: Sequence[dict[str, Any]], bias: float, classes: int) -> str:
    """The table of one bias level: probe and retrieval (mean ± std over seeds, %) and the diagnostic."""
    lines = [
        f"Bias {bias:g}{_CONTROL_NOTE if math.isclose(bias, 1 / classes) else ''}, {classes} classes "
        f"(chance {100 / classes:.1f}%); mean ± std over seeds, in %.",
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
            "nn_color_distance",
        )
        lines.append(f"| {entry['variant']} | {entry['seeds']} | " + " | ".join(_cell(entry, k) for k in keys) + " |")
    return "\n".join(lines)


def line_plot(
    series: dict[str, list[tuple[float, float]]], title: str, path: Path, reference: float | None = None
) -> Path:
    """Lines of ``(x, y)`` points, y a fraction drawn in %, one colour per series, with OpenCV.

    ``reference`` draws a grey horizontal line (chance). Series named ``supervised*`` are thin.
    """
    plot_width, height, margin, legend_width = 640, 420, 60, 230
    image = np.full((height, plot_width + legend_width, 3), 255, np.uint8)
    xs = [x for points in series.values() for x, _ in points]
    top = max([y for points in series.values() for _, y in points] + [reference or 0.0]) * 1.15 or 1.0
    low, high = min(xs), max(xs)

    def point(x: float, y: float) -> tuple[int, int]:
        across = margin + (x - low) / max(high - low, 1e-9) * (plot_width - 2 * margin)
        return int(across), int(height - margin - y / top * (height - 2 * margin))

    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    cv2.rectangle(image, (margin, margin), (plot_width - margin, height - margin), black, 1)
    for tick in np.linspace(0, top, 5):
        cv2.putText(image, f"{100 * tick:.0f}%", (5, point(low, tick)[1] + 4), font, 0.4, black, 1, cv2.LINE_AA)
    for tick in sorted(set(xs)) if len(set(xs)) <= 6 else np.linspace(low, high, 6):
        at = (point(tick, 0)[0] - 12, height - margin + 18)
        cv2.putText(image, f"{tick:g}", at, font, 0.45, black, 1, cv2.LINE_AA)
    if reference is not None:
        cv2.line(image, point(low, reference), point(high, reference), (150, 150, 150), 1, cv2.LINE_AA)
    palette = [(200, 60, 60), (40, 120, 220), (40, 160, 60), (160, 90, 200), (230, 140, 30), (20, 170, 170)]
    for n, (name, points) in enumerate(series.items()):
        colour, thickness = palette[n % len(palette)], 1 if name.startswith("supervised") else 2
        drawn = [point(x, y) for x, y in sorted(points)]
        for a, b in itertools.pairwise(drawn):
            cv2.line(image, a, b, colour, thickness, cv2.LINE_AA)
        if len(drawn) < 12:
            for p in drawn:
                cv2.circle(image, p, 4, colour, -1, cv2.LINE_AA)
        cv2.putText(image, name, (plot_width - margin + 15, margin + 12 + 20 * n), font, 0.45, colour, 1, cv2.LINE_AA)
    cv2.putText(image, title, (margin, 30), font, 0.5, black, 1, cv2.LINE_AA)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def learning_curves(plan: ExperimentPlan, bias: float, variants: Sequence[str]) -> dict[str, list[tuple[float, float]]]:
    """Per variant trained at ``bias``, the mean over seeds of each epoch's training accuracy.

    Supervised models: top-1 on their (augmented) training clips; MoCo: how often the positive
    key ranks first among the queue's negatives. Read from each run's ``metrics.csv``.
    """
    curves: dict[str, list[tuple[float, float]]] = {}
    for variant in variants:
        stage = "" if variant in SUPERVISED_VARIANTS else "pretrain"
        key = "train_top1" if variant in SUPERVISED_VARIANTS else "accuracy"
        per_epoch: dict[int, list[float]] = {}
        for seed in plan.seeds:
            metrics = plan.run_folder(bias, seed, variant) / stage / "metrics.csv"
            if metrics.is_file():
                for row in read_metrics(metrics):
                    per_epoch.setdefault(int(row["epoch"]), []).append(float(row[key]))
        if per_epoch:
            curves[variant] = [(epoch, statistics.mean(values)) for epoch, values in sorted(per_epoch.items())]
    return curves


def _write(plan: ExperimentPlan, rows: Sequence[dict[str, Any]]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with (plan.out / "runs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows)
    (plan.out / "summary_by_variant.json").write_text(json.dumps(summary, indent=2))
    classes = BackgroundBiasConfig(**plan.dataset).classes
    tables = [markdown_table(summary, bias, classes) for bias in sorted({r["bias"] for r in rows})]
    quality = json.loads((plan.out / "mask_quality.json").read_text())
    masks = ", ".join(
        f"{mode} {100 * recall:.0f}% / {100 * quality['precision'][mode]:.0f}%"
        for mode, recall in quality["recall"].items()
    )
    note = (
        f"FAME's mask on this dataset (beta {quality['beta']:g}), share of the moving object kept / share of the "
        f"kept pixels that are the object: {masks}."
    )
    (plan.out / "table.md").write_text("\n\n".join(tables) + "\n\n" + note + "\n")
    top1 = {e["variant"]: [] for e in summary}
    for entry in summary:
        top1[entry["variant"]].append((entry["bias"], entry["probe_top1"]))
    title = "test top-1 (linear probe if pretrained) vs training-set bias (grey: chance)"
    line_plot(top1, title, plan.out / "probe_vs_bias.png", reference=1 / classes)
    curves = {}
    for bias, variants in plan.levels():
        control = math.isclose(bias, plan.control_bias)
        for variant, points in learning_curves(plan, bias, variants).items():
            curves[f"{variant} (control)" if control else f"{variant} (bias {bias:g})"] = points
    if curves:
        title = "training accuracy per epoch (supervised: top-1; MoCo: positive key first)"
        line_plot(curves, title, plan.out / "learning_curves.png")
