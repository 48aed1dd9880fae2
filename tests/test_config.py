"""Configurations: defaults are the recipe, presets, YAML/JSON files, flags, clear errors."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import pytest
import torch

from fame_aug.contrib.moco.arguments import add_config_arguments, config_from_args
from fame_aug.contrib.moco.config import FinetuneConfig, PretrainConfig, ProbeConfig
from fame_aug.contrib.moco.recipes import PRESETS
from fame_aug.contrib.moco.resolve import resolve_config
from fame_aug.contrib.moco.schedule import build_optimizer, lr_at


def test_defaults_are_the_published_recipe() -> None:
    pre, fine, probe = PretrainConfig(), FinetuneConfig(), ProbeConfig()
    assert (pre.lr, pre.epochs, pre.milestones, pre.weight_decay, pre.momentum) == (0.01, 200, [120, 180], 1e-4, 0.9)
    assert (pre.moco_momentum, pre.temperature, pre.moco_dim, pre.queue_size, pre.mlp) == (0.999, 0.1, 128, 2048, True)
    assert (pre.num_frames, pre.stride, pre.batch_size, pre.fame, pre.fame_beta) == (16, 2, 64, True, 0.5)
    assert (fine.lr, fine.epochs, fine.batch_size, fine.milestones, fine.dropout) == (0.025, 150, 128, [60, 120], 0.7)
    assert (probe.lr, probe.weight_decay, probe.epochs, probe.milestones) == (5.0, 0.0, 100, [60, 80])


def test_presets() -> None:
    k400 = resolve_config("pretrain", "k400", check_paths=False)
    assert (k400.queue_size, k400.backbone, k400.crop_size, k400.dataset) == (65536, "i3d", 224, "kinetics")
    hmdb = resolve_config("finetune", "hmdb51", check_paths=False)
    assert hmdb.dropout == 0.5 and hmdb.dataset == "hmdb51"
    assert set(PRESETS) >= {"ucf101", "hmdb51", "k400", "cpu-demo"}


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_file_then_flags(tmp_path: Path, suffix: str) -> None:
    values = {"preset": "cpu-demo", "epochs": 7, "milestones": [3, 5], "fame": False}
    path = tmp_path / f"run{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(values))
    else:
        path.write_text("preset: cpu-demo\nepochs: 7\nmilestones: [3, 5]\nfame: false\n")
    config = resolve_config("pretrain", config_file=path, overrides={"epochs": 9}, check_paths=False)
    assert (config.epochs, config.milestones, config.fame, config.backbone) == (9, [3, 5], False, "r3d_small")


def test_command_line_flags(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, "pretrain")
    args = parser.parse_args(
        ["--preset", "cpu-demo", "--lr", "0.2", "--milestones", "4", "8", "--no-fame", "--out", str(tmp_path)]
    )
    config = config_from_args("pretrain", args)
    assert (config.lr, config.milestones, config.fame, config.out) == (0.2, [4, 8], False, str(tmp_path))


def test_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"learning_rate": 0.1}))
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['learning_rate'\]; valid keys"):
        resolve_config("pretrain", config_file=bad, check_paths=False)
    with pytest.raises(ValueError, match="unknown preset 'ucf102'"):
        resolve_config("pretrain", "ucf102")
    with pytest.raises(ValueError, match="data_root 'data/UCF-101' does not exist"):
        resolve_config("pretrain", "ucf101")
    with pytest.raises(ValueError, match="epochs must be int, got 'ten'"):
        resolve_config("pretrain", overrides={"epochs": "ten"}, check_paths=False)
    with pytest.raises(ValueError, match=r"queue_size .* must be at least twice batch_size"):
        resolve_config("pretrain", overrides={"queue_size": 100, "batch_size": 64}, check_paths=False)
    with pytest.raises(ValueError, match="pretrained must name an existing checkpoint"):
        resolve_config("probe", "cpu-demo")
    with pytest.raises(ValueError, match=r"cache must be one of \('auto', 'memory', 'off'\), got 'disk'"):
        resolve_config("pretrain", overrides={"cache": "disk"}, check_paths=False)
    with pytest.raises(ValueError, match=r"optimizer must be one of \('sgd', 'adamw'\), got 'adam'"):
        resolve_config("finetune", overrides={"optimizer": "adam"}, check_paths=False)
    with pytest.raises(ValueError, match="warmup_epochs must be >= 0, got -1"):
        resolve_config("pretrain", overrides={"warmup_epochs": -1}, check_paths=False)
    with pytest.raises(ValueError, match=r"config file .* does not exist"):
        resolve_config("pretrain", config_file=tmp_path / "missing.yaml")


def test_learning_rate_schedule_and_optimizer() -> None:
    """Linear warm-up to lr, then the schedule over the remaining epochs; a short run ends in the warm-up."""
    config = resolve_config(
        "pretrain", overrides={"lr": 1.0, "epochs": 10, "warmup_epochs": 4, "schedule": "cosine"}, check_paths=False
    )
    rates = [lr_at(epoch, config) for epoch in range(10)]
    assert rates[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # the cosine starts at its top after warm-up
    assert all(a > b for a, b in itertools.pairwise(rates[4:])) and rates[-1] > 0
    short = resolve_config("pretrain", overrides={"lr": 1.0, "epochs": 2, "warmup_epochs": 4}, check_paths=False)
    assert [lr_at(epoch, short) for epoch in range(2)] == pytest.approx([0.2, 0.4])  # as the first 2 of 10
    step = resolve_config("pretrain", overrides={"lr": 1.0, "milestones": [3], "gamma": 0.1}, check_paths=False)
    assert [lr_at(epoch, step) for epoch in (2, 3)] == pytest.approx([1.0, 0.1])  # no warm-up by default
    weights = [torch.nn.Parameter(torch.zeros(2))]
    adamw = build_optimizer(weights, resolve_config("finetune", "cpu-demo", check_paths=False))
    sgd = build_optimizer(weights, resolve_config("finetune", check_paths=False))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 0.05
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9


def test_help_describes_each_option_and_lists_choices(capsys: pytest.CaptureFixture[str]) -> None:
    from fame_aug.cli import main

    with pytest.raises(SystemExit):
        main(["pretrain", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--fame-mode {official,motion,stabilized}" in shown and "--optimizer {sgd,adamw}" in shown
    assert "--lr LR learning rate at batch_size. (default 0.01; a --preset may set another)" in shown
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out  # no reStructuredText marks in a terminal


def shown_help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The ``--help`` text of a ``fame-aug`` command line, on one line."""
    from fame_aug.cli import main

    with pytest.raises(SystemExit) as exit_status:
        main([*argv, "--help"])
    assert exit_status.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_shows_the_defaults_the_preset_resolves(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shown = shown_help(capsys, "pretrain", "--preset", "cpu-demo")
    for text in (
        "--lr LR learning rate at batch_size. (default 0.003, from --preset cpu-demo)",
        "(default 'motion', from --preset cpu-demo)",
        "or cosine. (default 'cosine', from --preset cpu-demo)",
        "or adamw. (default 'adamw', from --preset cpu-demo)",
        "--epochs EPOCHS training epochs. (default 30, from --preset cpu-demo)",
        "--momentum MOMENTUM SGD momentum. (default 0.9)",  # the preset keeps it
    ):
        assert text in shown, text
    assert "(default 'official'" not in shown and "a --preset may set another" not in shown
    assert ":class:" not in shown and "``" not in shown
    finetune = shown_help(capsys, "finetune", "--preset", "cpu-demo")
    assert "learning rate at batch_size. (default 0.001, from --preset cpu-demo)" in finetune
    # A config file (naming its own preset) and the flags after it: the file's values, labelled.
    path = tmp_path / "run.yaml"
    path.write_text("preset: cpu-demo\nlr: 0.05\n")
    from_file = shown_help(capsys, "pretrain", "--config", str(path), "--epochs", "3")
    assert f"learning rate at batch_size. (default 0.05, from --config {path})" in from_file
    assert f"(default 'cosine', from --config {path})" in from_file
    # Without a preset, the built-in defaults; an unknown preset leaves them for the run to refuse.
    for argv in (["pretrain"], ["pretrain", "--preset", "nope"]):
        plain = shown_help(capsys, *argv)
        assert "--lr LR learning rate at batch_size. (default 0.01; a --preset may set another)" in plain


def test_commands_take_only_the_keys_they_read(capsys: pytest.CaptureFixture[str]) -> None:
    from fame_aug.cli import main

    retrieve = shown_help(capsys, "retrieve")
    for flag in ("--lr", "--epochs", "--optimizer", "--batch-size", "--schedule", "--milestones", "--resume", "--flip"):
        assert f"{flag} " not in retrieve, flag
    for flag in ("--pretrained", "--ks", "--eval-clips", "--eval-batch-size", "--workers", "--data-root"):
        assert f"{flag} " in retrieve, flag
    probe = shown_help(capsys, "probe")  # it trains a classifier: the training keys are its own
    assert "--lr LR" in probe and "--eval-clips" in probe and "--fame" not in probe and "--queue-size" not in probe
    pretrain = shown_help(capsys, "pretrain")  # it evaluates nothing
    assert "--eval-clips" not in pretrain and "--queue-size" in pretrain
    for argv in (["retrieve", "--lr", "0.1"], ["pretrain", "--eval-clips", "4"]):
        with pytest.raises(SystemExit) as exit_status:
            main(argv)
        assert exit_status.value.code == 2
        assert f"unrecognized arguments: {' '.join(argv[1:])}" in capsys.readouterr().err
    # A file or preset may still set them (one file may serve several commands): they are ignored.
    assert resolve_config("retrieve", "cpu-demo", overrides={"lr": 0.5}, check_paths=False).lr == 0.5
