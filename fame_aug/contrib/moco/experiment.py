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
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
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
from fame_aug.contrib.moco.reports import line_plot, markdown_table, summarise, table_notes
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
    "variant_name",
]


# MoCo pretraining without FAME and with FAME in each mask mode: the folder under each seed,
# and the pretraining keys. ``-published-merge`` keeps the partner whole behind the foreground
# (its own moving object included), where the cpu-demo preset pastes its still background.
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"fame": False},
    **{f"fame-{mode}": {"fame": True, "fame_mode": mode} for mode in MASK_MODES},
    **{
        f"fame-{mode}-published-merge": {"fame": True, "fame_mode": mode, "fame_clean_background": False}
        for mode in MASK_MODES
    },
    # Background Erasing alone, and on top of FAME (cpu-demo's mask mode and merge).
    "be": {"fame": False, "background_erasing": True},
    **{f"be-fame-{mode}": {"fame": True, "fame_mode": mode, "background_erasing": True} for mode in MASK_MODES},
}


# Supervised training from scratch on the training split, plain and with FAME on the training
# clips (each keeping its own label): the folder under each seed, and the fine-tuning keys.
SUPERVISED_VARIANTS: dict[str, dict[str, Any]] = {
    "supervised": {"fame": False},
    **{f"supervised-{name}": keys for name, keys in VARIANTS.items() if name != "baseline"},
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
    return resolve_config("pretrain", "cpu-demo", check_paths=False).fame_mode


def variant_name(variant: str) -> str:
    """How tables and the console name a variant: ``MoCo + FAME``, ``supervised + FAME, published merge``."""
    supervised = variant in SUPERVISED_VARIANTS
    fame = variant.removeprefix("supervised").removeprefix("-")
    if fame in ("", "baseline"):
        return "supervised" if supervised else "MoCo baseline"
    if fame == "be":
        return f"{'supervised' if supervised else 'MoCo'} + BE"
    erased = fame.startswith("be-")
    fame = fame.removeprefix("be-")
    merge = ", published merge" if fame.endswith("-published-merge") else ""
    mode = fame.removeprefix("fame-").removesuffix("-published-merge")
    shown = f"FAME{'' if mode == _preset_mode() else f' ({mode})'}{merge}"
    return f"{'supervised' if supervised else 'MoCo'} + {'BE + ' if erased else ''}{shown}"


@dataclass
class ExperimentPlan:
    """What to run. The defaults are sized for 2 CPU cores (about 20 min).

    Attributes:
        out: run folder.
        biases: bias levels, one dataset each; every seed runs ``variants`` and ``supervised``
            at each.
        control: models also trained on the control dataset, whose backgrounds are independent
            of the class (bias = 1 / classes): how far each gets when backgrounds do not help
            (none: an empty list).
        seeds: training seeds.
        variants: keys of ``VARIANTS`` (default: the baseline, FAME as the ``cpu-demo`` preset
            sets it, and Background Erasing).
        supervised: keys of ``SUPERVISED_VARIANTS``: models trained with labels from scratch,
            plain, with FAME on their training clips (the preset's merge and the published one)
            and with Background Erasing (none: an empty list).
        pretrain_epochs: MoCo epochs (default: the ``cpu-demo`` preset's).
        probe_epochs: linear probe epochs (default: the preset's).
        supervised_epochs: epochs of each supervised model (default: the preset's).
        dataset: options of the generated dataset (``BackgroundBiasConfig`` fields), bias aside.
        overrides: config keys for the stages that have them (on top of the ``cpu-demo`` preset),
            e.g. ``queue_size`` reaches pretraining only.
        jobs: runs trained at the same time, in separate processes (1: one after another in
            this process; the command line's default is 2). The processes are spawned: a
            script that sets ``jobs > 1`` needs the ``if __name__ == "__main__":`` guard.
        threads: CPU threads of each run, whatever ``jobs`` is: the number of threads changes
            the order of floating-point sums, so a fixed count is what makes the results the
            same for any ``jobs``.
    """

    out: Path = Path("runs/experiment-background-bias")
    biases: list[float] = field(default_factory=lambda: [0.8])
    control: list[str] = field(default_factory=lambda: ["supervised"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    variants: list[str] = field(default_factory=lambda: ["baseline", f"fame-{_preset_mode()}", "be"])
    supervised: list[str] = field(
        default_factory=lambda: [
            "supervised",
            f"supervised-fame-{_preset_mode()}",
            f"supervised-fame-{_preset_mode()}-published-merge",
            "supervised-be",
        ]
    )
    pretrain_epochs: int | None = None
    probe_epochs: int | None = None
    supervised_epochs: int | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    jobs: int = 1
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("jobs", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
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

    def stages(self, variant: str) -> list[str]:
        """The stages of one model, in order: ``["supervised"]`` or ``["pretrain", "probe", "retrieve"]``."""
        return ["supervised"] if variant in SUPERVISED_VARIANTS else ["pretrain", "probe", "retrieve"]

    def epochs(self, stage: str) -> int:
        """Epochs of a stage (retrieval: 1, one pass over the videos)."""
        chosen = {"pretrain": self.pretrain_epochs, "probe": self.probe_epochs, "supervised": self.supervised_epochs}
        if stage == "retrieve":
            return 1
        command = "finetune" if stage == "supervised" else stage
        return chosen[stage] or resolve_config(command, "cpu-demo", check_paths=False).epochs


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


# Seconds per epoch of each stage with one thread on this project's 2-core VM, for the cpu-demo
# preset's 768 training videos (measured): what the console's time estimates are made of. They
# scale with the number of training videos, and the estimate follows the speed actually seen.
_SECONDS_PER_EPOCH = {"pretrain": 4.4, "probe": 1.1, "retrieve": 4.0, "supervised": 1.9}
_REFERENCE_VIDEOS = 768


Unit = tuple[float, int, str]  # (bias, seed, variant): one model


class _Console:
    """The experiment's lines on stdout: a start line, one line per finished stage with the time left.

    The time left is the remaining stages' expected seconds (``_SECONDS_PER_EPOCH``), times how
    much longer than expected the finished stages took, shared among the processes.
    """

    def __init__(self, plan: ExperimentPlan, units: Sequence[Unit], label: str) -> None:
        self.plan, self.began = plan, time.perf_counter()
        videos = {bias: _training_videos(plan.data_root(bias)) for bias in {u[0] for u in units}}
        self.work = {
            (unit, stage): _SECONDS_PER_EPOCH[stage] * plan.epochs(stage) * videos[unit[0]] / _REFERENCE_VIDEOS
            for unit in units
            for stage in plan.stages(unit[2])
        }
        self.started: dict[tuple[Unit, str], float] = {}
        self.expected_done = self.taken = 0.0
        self.finished = 0
        first = plan.run_folder(*units[0]) if units else plan.out
        estimate = sum(self.work.values()) / min(plan.jobs, len(units) or 1)
        print(
            f"{label}: {len(units)} models ({len(self.work)} stages) in {plan.out}, {plan.jobs} at a time, "
            f"{plan.threads} thread{'s' if plan.threads > 1 else ''} each; about {_clock(estimate)} on this "
            f"project's 2-core VM. Each model's epochs are logged in its folder, e.g. {first / 'log.txt'}",
            flush=True,
        )

    def stage_started(self, unit: Unit, stage: str) -> None:
        self.started[(unit, stage)] = time.perf_counter()

    def stage_done(self, unit: Unit, stage: str, results: dict[str, Any]) -> None:
        now = time.perf_counter()
        self.finished += 1
        self.expected_done += self.work[(unit, stage)]
        self.taken += now - self.started.pop((unit, stage), now)
        left = sum(self.work.values()) - self.expected_done
        running = min(self.plan.jobs, len(self.work) - self.finished)
        eta = ""
        if running and self.expected_done > 0:
            eta = f", about {_clock(left * self.taken / self.expected_done / running)} left"
        bias, seed, variant = unit
        print(
            f"[{_clock(now - self.began)}] {self.finished}/{len(self.work)} {variant_name(variant)} "
            f"(bias {bias:g}, seed {seed}) {_STAGE_NAMES[stage]}: {_stage_result(stage, results)}{eta}",
            flush=True,
        )


_STAGE_NAMES = {"supervised": "trained", "pretrain": "pretrained", "probe": "probed", "retrieve": "retrieval"}


def _stage_result(stage: str, results: dict[str, Any]) -> str:
    if stage == "supervised":
        return f"test top-1 {100 * results['probe_top1']:.1f}% (training clips {100 * results['train_top1']:.1f}%)"
    if stage == "pretrain":
        return f"loss {results['pretrain_loss']:.2f}"
    if stage == "probe":
        return f"linear probe test top-1 {100 * results['probe_top1']:.1f}%"
    return f"kNN {100 * results['knn_top1']:.1f}%, R@1 {100 * results['R@1']:.1f}%"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _training_videos(data_root: Path) -> int:
    metadata = json.loads((data_root / "metadata.json").read_text())
    return int(metadata["stats"]["train"]["videos"])


def run_experiment(plan: ExperimentPlan, label: str = "fame-aug experiment background-bias") -> list[dict[str, Any]]:
    """Run every (bias, seed, variant) of ``plan`` and write the outputs; returns one row per run.

    Each model's stages (a supervised run; or pretraining, then its probe and retrieval) run in
    order; with ``plan.jobs > 1`` stages of different models run at the same time in that many
    processes. Every run uses ``plan.threads`` threads and is seeded as it would be alone, so the
    results do not depend on ``jobs``. The console gets one line per finished stage; each
    model's own lines go to ``log.txt`` in its folder.
    """
    plan.out.mkdir(parents=True, exist_ok=True)
    (plan.out / "plan.json").write_text(json.dumps(asdict(plan), default=str, indent=2))
    preset = resolve_config("pretrain", "cpu-demo", overrides=plan.overrides, check_paths=False)
    quality = mask_quality(plan.dataset, preset, MASK_MODES)
    (plan.out / "mask_quality.json").write_text(json.dumps({"beta": preset.fame_beta, **quality}, indent=2))
    units: list[Unit] = []
    for bias, variants in plan.levels():
        data_root = plan.data_root(bias)
        if not (data_root / "metadata.json").is_file():
            make_background_bias_dataset(data_root, BackgroundBiasConfig(**{**plan.dataset, "bias": bias}))
        units += [(bias, seed, variant) for seed in plan.seeds for variant in variants]
    units.sort(key=lambda unit: unit[2] in SUPERVISED_VARIANTS)  # the long MoCo runs first
    console = _Console(plan, units, label)
    rows = {unit: {"bias": unit[0], "seed": unit[1], "variant": unit[2]} for unit in units}
    if plan.jobs == 1:
        for unit in units:
            for stage in plan.stages(unit[2]):
                console.stage_started(unit, stage)
                rows[unit].update(_run_stage(plan, *unit, stage))
                console.stage_done(unit, stage, rows[unit])
    else:
        _run_in_processes(plan, units, rows, console)
    ordered = [rows[unit] for unit in units]
    _write(plan, ordered)
    return ordered


def _run_in_processes(
    plan: ExperimentPlan, units: list[Unit], rows: dict[Unit, dict[str, Any]], console: _Console
) -> None:
    """Run the stages of ``units`` in ``plan.jobs`` spawned processes, each model's stages in order."""
    context = multiprocessing.get_context("spawn")  # forking a process that holds OpenMP threads can hang
    with ProcessPoolExecutor(plan.jobs, context) as pool:
        waiting = list(units)  # models whose first stage has not started
        running: dict[Future[dict[str, Any]], tuple[Unit, int]] = {}

        def submit(unit: Unit, index: int) -> None:
            stage = plan.stages(unit[2])[index]
            console.stage_started(unit, stage)
            running[pool.submit(_run_stage, plan, *unit, stage)] = (unit, index)

        while waiting and len(running) < plan.jobs:
            submit(waiting.pop(0), 0)
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                unit, index = running.pop(future)
                try:
                    rows[unit].update(future.result())
                except BaseException as error:
                    pool.shutdown(wait=False, cancel_futures=True)  # stages not started yet never start
                    if isinstance(error, ValueError | TypeError):  # a run's bad input: said as in one process
                        raise type(error)(*error.args) from None
                    raise
                console.stage_done(unit, plan.stages(unit[2])[index], rows[unit])
                if index + 1 < len(plan.stages(unit[2])):
                    submit(unit, index + 1)  # the same model's next stage, first in line
                elif waiting:
                    submit(waiting.pop(0), 0)


def _run_stage(plan: ExperimentPlan, bias: float, seed: int, variant: str, stage: str) -> dict[str, Any]:
    """One stage of one model, with ``plan.threads`` threads and its console lines in the model's ``log.txt``."""
    folder = plan.run_folder(bias, seed, variant)
    folder.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(plan.threads)
    log_to_stderr()  # a spawned process starts without the command line's logging; it writes to sys.stderr
    try:
        with (folder / "log.txt").open("a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            return _stage_of(plan, bias, seed, variant, stage)
    finally:
        torch.set_num_threads(threads)


def _stage_of(plan: ExperimentPlan, bias: float, seed: int, variant: str, stage: str) -> dict[str, Any]:
    """Train or evaluate: a supervised model, or MoCo pretraining, its probe or its retrieval."""
    data_root = plan.data_root(bias)
    settings = {**plan.overrides, "data_root": str(data_root), "seed": seed}
    folder = plan.run_folder(bias, seed, variant)
    if stage == "supervised":
        keys = {**SUPERVISED_VARIANTS[variant], **_epochs(plan.supervised_epochs)}
        result = _stage("finetune", folder, keys, finetune, settings)
        return {"probe_top1": result["top1"], "train_top1": _last_metric(folder / "metrics.csv", "train_top1")}
    checkpoint = str(folder / "pretrain" / "checkpoint.pt")
    if stage == "pretrain":
        pretrain_keys = {**VARIANTS[variant], **_epochs(plan.pretrain_epochs)}
        _stage("pretrain", folder / "pretrain", pretrain_keys, pretrain, settings)
        return {"pretrain_loss": _last_metric(folder / "pretrain" / "metrics.csv", "loss")}
    if stage == "probe":
        probe_keys = {"pretrained": checkpoint, **_epochs(plan.probe_epochs)}
        probed = _stage("probe", folder / "probe", probe_keys, probe, settings)
        return {
            "probe_top1": probed["top1"],
            "train_top1": _last_metric(folder / "probe" / "metrics.csv", "train_top1"),
        }
    return retrieval_and_neighbours(checkpoint, data_root, settings, folder / "retrieve")


def _last_metric(metrics: Path, key: str) -> float:
    """The last epoch's ``key`` in a run's ``metrics.csv`` (also when a finished run is reused)."""
    return float(read_metrics(metrics)[-1][key])


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
    tables = [markdown_table(summary, bias, classes, variant_name) for bias in sorted({r["bias"] for r in rows})]
    quality = json.loads((plan.out / "mask_quality.json").read_text())
    masks = ", ".join(
        f"{mode} {100 * recall:.0f}% / {100 * quality['precision'][mode]:.0f}%"
        for mode, recall in quality["recall"].items()
    )
    note = (
        f"FAME's mask on this dataset (beta {quality['beta']:g}), share of the moving object kept / share of the "
        f"kept pixels that are the object: {masks}."
    )
    (plan.out / "table.md").write_text("\n\n".join(tables) + "\n\n" + table_notes(classes) + "\n\n" + note + "\n")
    top1: dict[str, list[tuple[float, float]]] = {}
    for entry in summary:
        top1.setdefault(variant_name(entry["variant"]), []).append((entry["bias"], entry["probe_top1"]))
    if len({entry["bias"] for entry in summary}) > 1:  # a line needs two bias levels
        title = "test top-1 (linear probe if pretrained) vs training-set bias (grey: chance)"
        line_plot(top1, title, plan.out / "probe_vs_bias.png", reference=1 / classes)
    curves = {}
    for bias, variants in plan.levels():
        control = math.isclose(bias, plan.control_bias)
        for variant, points in learning_curves(plan, bias, variants).items():
            name = variant_name(variant)
            curves[f"{name} (control)" if control else f"{name} (bias {bias:g})"] = points
    if curves:
        title = "training accuracy per epoch (supervised: top-1; MoCo: positive key first)"
        line_plot(curves, title, plan.out / "learning_curves.png")
