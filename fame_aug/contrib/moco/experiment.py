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
color (distance relative to the average over all training videos: below 100% means matched)?

Results go to the run folder: ``runs.csv`` (one row per run), ``summary_by_variant.json``, ``table.md``
(mean and standard deviation over seeds), ``probe_vs_bias.png``, ``learning_curves.png`` and
``mask_quality.json``. Finished stages are reused,
so an interrupted experiment continues where it stopped.

The diagnostics are in :mod:`~fame_aug.contrib.moco.diagnostics`, the tables and plots in
:mod:`~fame_aug.contrib.moco.reports`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import multiprocessing
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from fame_aug import MASK_MODES
from fame_aug.contrib.moco.config import COMMANDS
from fame_aug.contrib.moco.console import log_to_stderr
from fame_aug.contrib.moco.diagnostics import mask_quality, retrieval_and_neighbours
from fame_aug.contrib.moco.finetune import finetune
from fame_aug.contrib.moco.pretrain import pretrain
from fame_aug.contrib.moco.probe import probe
from fame_aug.contrib.moco.reports import line_plot, markdown_table, summarise
from fame_aug.contrib.moco.resolve import resolve_config
from fame_aug.contrib.moco.run_folder import read_metrics
from fame_aug.data import BackgroundBiasConfig, make_background_bias_dataset

__all__ = [
    "QUICK_DATASET",
    "QUICK_OVERRIDES",
    "SUPERVISED_VARIANTS",
    "VARIANTS",
    "ExperimentPlan",
    "learning_curves",
    "run_experiment",
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
