"""The background-bias experiment: summaries, table, plot, and a tiny end-to-end run that resumes."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import pytest

from fame_aug.cli import main
from fame_aug.contrib.moco.experiment import (
    SUPERVISED_VARIANTS,
    VARIANTS,
    ExperimentPlan,
    markdown_table,
    plot_probe_vs_bias,
    summarise,
)

ROWS = [
    {"bias": 0.8, "seed": 0, "variant": "baseline", "probe_top1": 0.10, "R@1": 0.2},
    {"bias": 0.8, "seed": 1, "variant": "baseline", "probe_top1": 0.20, "R@1": 0.4},
    {"bias": 0.8, "seed": 0, "variant": "fame-motion", "probe_top1": 0.30, "R@1": 0.5},
    {"bias": 0.5, "seed": 0, "variant": "fame-motion", "probe_top1": 0.40, "R@1": 0.5},
]


def test_summary_is_mean_and_std_over_seeds() -> None:
    summary = {(e["bias"], e["variant"]): e for e in summarise(ROWS)}
    baseline = summary[(0.8, "baseline")]
    assert baseline["seeds"] == 2 and baseline["probe_top1"] == pytest.approx(0.15)
    assert baseline["probe_top1_std"] == pytest.approx(0.0707107, rel=1e-5) and baseline["R@1"] == pytest.approx(0.3)
    assert summary[(0.8, "fame-motion")]["probe_top1_std"] == 0.0


def test_table_and_plot(tmp_path: Path) -> None:
    summary = summarise(ROWS)
    table = markdown_table(summary, 0.8, classes=8)
    assert "chance 12.5%" in table and "| baseline | 2 | 15.0 ± 7.1 | 30.0 ± 14.1 | - |" in table
    path = plot_probe_vs_bias(summary, 8, tmp_path / "plot.png")
    image = cv2.imread(str(path))
    assert image.shape == (420, 870, 3) and (image < 200).any(axis=2).mean() > 0.01  # axes, lines, legend drawn


def test_plan_errors() -> None:
    with pytest.raises(ValueError, match="unknown variants"):
        ExperimentPlan(variants=["fame-stabilized-v9"])
    with pytest.raises(ValueError, match=r"main_bias 0\.7 must be one of biases"):
        ExperimentPlan(main_bias=0.7)


def test_quick_experiment_runs_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["experiment", "background-bias", "--out", str(tmp_path / "exp"), "--quick", "--biases", "0.5", "0.8"]
    args += ["--seeds", "0", "--pretrain-epochs", "1", "--probe-epochs", "1", "--supervised-epochs", "1"]
    assert main(args) == 0
    out = tmp_path / "exp"
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 2 * 8  # two biases x (baseline, three FAME modes, supervised without and with FAME x 3)
    assert {r["variant"] for r in rows} == set(VARIANTS) | set(SUPERVISED_VARIANTS)
    first_table = (out / "table.md").read_text()
    assert "Bias 0.5" in first_table and "Bias 0.8" in first_table and (out / "probe_vs_bias.png").is_file()
    capsys.readouterr()
    assert main(args) == 0  # everything is reused: same results
    assert (out / "table.md").read_text() == first_table
    assert "pretrain 1/1" not in capsys.readouterr().err
    # A finished run is never reused for other settings.
    assert main([*args[:-1], "2"]) != 0
    assert "holds a run with other settings (epochs: 1 -> 2)" in capsys.readouterr().err
