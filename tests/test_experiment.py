"""The background-bias experiment: summaries, table, plot, and a tiny end-to-end run that resumes."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import pytest

from fame_aug.cli import main
from fame_aug.contrib.moco.experiment import SUPERVISED_VARIANTS, VARIANTS, ExperimentPlan, variant_name
from fame_aug.contrib.moco.reports import line_plot, markdown_table, summarise

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
    table = markdown_table(summary, 0.8, classes=8, name=variant_name)
    assert "chance 12.5%" in table and "mean ± std over seeds" in table
    assert "| MoCo baseline | 2 | 15.0 ± 7.1 |  |  | 30.0 ± 14.1 |" in table
    one_seed = markdown_table(summary, 0.5, classes=8, name=variant_name)  # one seed: values only
    assert "one seed" in one_seed and "| MoCo + FAME | 40.0 |  |  | 50.0 |" in one_seed and "±" not in one_seed
    series = {e["variant"]: [(e["bias"], e["probe_top1"])] for e in summary}
    path = line_plot(series, "top-1 vs bias", tmp_path / "plot.png", reference=0.125)
    image = cv2.imread(str(path))
    assert image.shape == (420, 870, 3) and (image < 200).any(axis=2).mean() > 0.01  # axes, lines, legend drawn
    # the series are drawn in different colors (legend and points), BGR (200, 60, 60) and (40, 120, 220)
    assert (image == (60, 60, 200)).all(axis=2).any() and (image == (220, 120, 40)).all(axis=2).any()


def test_variant_names() -> None:
    assert variant_name("baseline") == "MoCo baseline" and variant_name("fame-motion") == "MoCo + FAME"
    assert variant_name("supervised") == "supervised"
    assert variant_name("supervised-fame-official-published-merge") == "supervised + FAME (official), published merge"
    assert {variant_name(v) for v in VARIANTS} & {variant_name(v) for v in SUPERVISED_VARIANTS} == set()


def test_plan_errors() -> None:
    with pytest.raises(ValueError, match="unknown variants"):
        ExperimentPlan(variants=["fame-stabilized-v9"])
    with pytest.raises(ValueError, match="unknown control"):
        ExperimentPlan(control=["moco"])
    with pytest.raises(ValueError, match=r"biases must lie in \[0, 1\], got 1.5"):
        ExperimentPlan(biases=[0.8, 1.5])
    with pytest.raises(ValueError, match="jobs must be an integer >= 1, got 0"):
        ExperimentPlan(jobs=0)
    with pytest.raises(ValueError, match="threads must be an integer >= 1, got 0"):
        ExperimentPlan(threads=0)


def test_plan_levels() -> None:
    plan = ExperimentPlan()  # the control (backgrounds independent of class), then bias 0.8
    assert plan.levels() == [
        (0.125, ["supervised"]),
        (
            0.8,
            [
                "baseline",
                "fame-motion",
                "be",
                "supervised",
                "supervised-fame-motion",
                "supervised-fame-motion-published-merge",
                "supervised-be",
            ],
        ),
    ]
    assert ExperimentPlan(control=[], biases=[0.5], dataset={"classes": 4}).levels()[0][0] == 0.5
    assert "control: backgrounds independent of the class" in markdown_table([], 0.125, classes=8)


def test_quick_experiment_runs_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["experiment", "background-bias", "--out", str(tmp_path / "exp"), "--quick", "--biases", "0.8"]
    variants = ["baseline", "fame-official", "fame-stabilized-published-merge"]
    supervised = ["supervised", "supervised-fame-motion", "supervised-fame-motion-published-merge"]
    args += ["--variants", *variants, "--supervised", *supervised]
    args += ["--seeds", "0", "--pretrain-epochs", "1", "--probe-epochs", "1", "--supervised-epochs", "1"]
    assert main([*args, "--jobs", "2"]) == 0  # two processes; each run's console output goes to its log.txt
    assert "MoCo baseline (bias 0.8, seed 0) probed: linear probe test top-1" in capsys.readouterr().out
    out = tmp_path / "exp"
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 1 + 6  # the control's supervised model; three MoCo and three supervised models
    assert {r["variant"] for r in rows} == {*variants, *supervised}
    assert sorted(r["bias"] for r in rows) == [str(1 / 3)] + ["0.8"] * 6
    first_table = (out / "table.md").read_text()
    assert "Bias 0.333333 (control" in first_table and "Bias 0.8," in first_table
    assert (out / "probe_vs_bias.png").is_file() and (out / "summary_by_variant.json").is_file()  # two levels
    assert (out / "learning_curves.png").is_file() and "pretrain 1/1" in (
        out / "bias0.8/seed0/baseline/log.txt"
    ).read_text()
    assert main([*args, "--jobs", "1"]) == 0  # everything is reused: same results
    assert (out / "table.md").read_text() == first_table
    assert "pretrain 1/1" not in capsys.readouterr().err
    # A finished run is never reused for other settings.
    for jobs in ("1", "2"):  # in this process, or in a worker process: the same one line, exit 2
        assert main([*args[:-1], "2", "--jobs", jobs]) == 2
        assert "holds a run with other settings (epochs: 1 -> 2)" in capsys.readouterr().err
