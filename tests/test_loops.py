"""The reference loops end to end on a tiny built-in dataset: pretrain, resume, NaN, probe, finetune,
retrieve, HMDB51, two processes, the command line and the demo."""

from __future__ import annotations

import csv
import importlib
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from tiny_runs import TINY, flags, make_tiny_dataset, tiny_config, tiny_values

from fame_aug.cli import main
from fame_aug.contrib.moco import finetune, pretrain, probe, retrieve
from fame_aug.contrib.moco.checkpoint import load_checkpoint
from fame_aug.contrib.moco.console import Progress
from fame_aug.contrib.moco.distributed import World
from fame_aug.contrib.moco.moco import MoCo
from fame_aug.contrib.moco.retrieve import recall_at_k
from fame_aug.contrib.moco.run_folder import read_metrics

probe_module = importlib.import_module("fame_aug.contrib.moco.probe")  # the module, not the function


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("loops") / "data")


config = tiny_config


@pytest.fixture(scope="module")
def pretrained(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pretrained")
    pretrain(config("pretrain", data_root, out))
    return out / "checkpoint.pt"


def model_state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class TestPretrain:
    def test_run_folder(self, pretrained: Path) -> None:
        folder = pretrained.parent
        state = load_checkpoint(pretrained)  # weights_only=True
        assert state["epoch"] == 2 and state["step"] == 2 * 3  # 18 videos, batch 8: 3 steps, the last ragged
        assert {"model", "optimizer", "rng", "config", "dataset_rng"} <= set(state)
        lines = (folder / "metrics.csv").read_text().splitlines()
        assert lines[0].startswith("epoch,loss,accuracy,lr,clips_per_s") and len(lines) == 3
        assert (folder / "config.json").is_file()

    @pytest.mark.parametrize("workers", [0, 2])
    def test_resume_is_exact(self, data_root: Path, tmp_path: Path, workers: int) -> None:
        whole = tmp_path / "whole"
        pretrain(config("pretrain", data_root, whole, epochs=3, workers=workers))
        parts = tmp_path / "parts"
        pretrain(config("pretrain", data_root, parts, epochs=1, workers=workers))
        pretrain(config("pretrain", data_root, parts, epochs=3, workers=workers, resume=True))
        assert_same_state(model_state(whole / "checkpoint.pt"), model_state(parts / "checkpoint.pt"))
        assert len((parts / "metrics.csv").read_text().splitlines()) == 4

    def test_interrupted_mid_epoch_loses_at_most_that_epoch(
        self, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        whole = tmp_path / "whole"
        pretrain(config("pretrain", data_root, whole))
        calls = {"n": 0}
        original = MoCo.forward

        def crash_in_epoch_two(self: MoCo, *args: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 5:  # epoch 2, step 2
                raise KeyboardInterrupt
            return original(self, *args)

        monkeypatch.setattr(MoCo, "forward", crash_in_epoch_two)
        with pytest.raises(KeyboardInterrupt):
            pretrain(config("pretrain", data_root, tmp_path / "cut"))
        assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["epoch"] == 1
        monkeypatch.setattr(MoCo, "forward", original)
        pretrain(config("pretrain", data_root, tmp_path / "cut", resume=True))
        assert_same_state(model_state(whole / "checkpoint.pt"), model_state(tmp_path / "cut" / "checkpoint.pt"))

    def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
        self, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        calls = {"n": 0}
        original = MoCo.forward

        def nan_in_epoch_two(self: MoCo, *args: Any) -> dict[str, torch.Tensor]:
            out = original(self, *args)
            calls["n"] += 1
            if calls["n"] >= 4:
                out["loss"] = out["loss"] * float("nan")
            return out

        monkeypatch.setattr(MoCo, "forward", nan_in_epoch_two)
        out = tmp_path / "nan"
        args = ["pretrain", "--preset", "cpu-demo", *flags(tiny_values("pretrain", data_root, out, queue_size=64))]
        assert main(args) == 3
        assert "the loss became nan at epoch 2" in capsys.readouterr().err
        assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1

    def test_refuses_to_overwrite_a_run(self, data_root: Path, pretrained: Path) -> None:
        with pytest.raises(ValueError, match="exists: pass --resume"):
            pretrain(config("pretrain", data_root, pretrained.parent))


class TestEvaluation:
    def test_probe_freezes_the_backbone(
        self, data_root: Path, pretrained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        loaded: list[torch.nn.Module] = []
        original = probe_module.load_frozen_backbone

        def keep(config: Any) -> torch.nn.Module:
            loaded.append(original(config))
            return loaded[-1]

        monkeypatch.setattr(probe_module, "load_frozen_backbone", keep)
        result = probe(config("probe", data_root, tmp_path / "probe", pretrained=str(pretrained), epochs=2))
        fresh = original(config("probe", data_root, tmp_path / "unused", pretrained=str(pretrained)))
        after = loaded[0].state_dict()
        for key, value in fresh.state_dict().items():  # weights and batch-norm statistics alike
            assert torch.equal(after[key], value), key
        assert 0.0 <= result["top1"] <= 1.0 and result["test_videos"] == 9

    def test_finetune(self, data_root: Path, pretrained: Path, tmp_path: Path) -> None:
        result = finetune(config("finetune", data_root, tmp_path / "ft", pretrained=str(pretrained), epochs=1))
        assert result["test_videos"] == 9 and 0 <= result["top1"] <= result["top5"] <= 1
        assert (tmp_path / "ft" / "results.json").is_file()

    def test_finetune_on_hmdb51(self, data_root: Path, tmp_path: Path) -> None:
        root = tmp_path / "hmdb"
        for video in (data_root / "videos").rglob("*.avi"):
            target = root / video.parent.name / video.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(video, target)
        for folder in root.iterdir():
            names = sorted(p.name for p in folder.iterdir())
            lines = [f"{name} {1 if i % 3 else 2}" for i, name in enumerate(names)]
            (root / f"{folder.name}_test_split1.txt").write_text("\n".join(lines) + "\n")
        result = finetune(config("finetune", root, tmp_path / "ft", dataset="hmdb51", epochs=1))
        assert result["test_videos"] == 9

    def test_recall_at_k(self) -> None:
        gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
        labels = torch.tensor([0, 1, 2])
        queries = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.0, -1.0]])
        recalls = recall_at_k(queries, torch.tensor([0, 2, 1]), gallery, labels, [1, 2, 5])
        assert recalls == pytest.approx({1: 1 / 3, 2: 2 / 3, 5: 1.0})

    def test_retrieve_counts_every_query(self, data_root: Path, pretrained: Path, tmp_path: Path) -> None:
        result = retrieve(config("retrieve", data_root, tmp_path / "rt", pretrained=str(pretrained)))
        assert result["queries"] == 9 and result["gallery"] == 18
        assert set(result["raw"]) == {"R@1", "R@5", "R@10", "R@20", "R@50"} and result["raw"]["R@50"] == 1.0


def test_two_process_gloo_pretraining(data_root: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    command += ["-m", "fame_aug.cli", "pretrain", "--preset", "cpu-demo"]
    command += flags(tiny_values("pretrain", data_root, out, epochs=1, queue_size=64))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 1 and state["step"] == 3  # 18 videos, 9 per process in batches of 4, 4, 1
    assert int(state["model"]["queue_ptr"]) == 2 * (8 + 8 + 2)  # both views of every step's global batch


def test_command_line_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["pretrain", "--preset", "nope"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert main(["pretrain", "--preset", "ucf101", "--data-root", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_demo_quick_is_deterministic_and_talks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same summary and weights in one process and in two; a start line, one line per stage, the table."""
    assert main(["demo", "--out", str(tmp_path / "one"), "--quick", "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert main(["demo", "--out", str(tmp_path / "two"), "--quick", "--jobs", "2"]) == 0
    assert capsys.readouterr().out.count("] 8/8 ") == 1
    first, second = (json.loads((tmp_path / run / "summary.json").read_text()) for run in ("one", "two"))
    assert first == second
    for model in ("baseline/pretrain", "fame-motion/pretrain", "supervised", "supervised-fame-motion"):
        weights = [
            torch.load(tmp_path / run / "bias0.8/seed0" / model / "checkpoint.pt")["model"] for run in ("one", "two")
        ]
        assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0]), model
    assert set(first) == {"supervised", "moco", "moco_knn", "chance"} and first["chance"] == 33.3
    assert printed.startswith("fame-aug demo: 4 models (8 stages) in ") and "log.txt" in printed.splitlines()[0]
    assert "] 1/8 " in printed and "] 8/8 supervised" in printed and "left" in printed
    for model in ("MoCo baseline", "MoCo + FAME", "supervised", "supervised + FAME"):
        assert f"| {model} | " in printed
    assert "± 0.0" not in printed and "R@k:" in printed and "On test videos whose backgrounds" in printed
    for name in ("fame_masks.png", "fame_cams.png", "table.md"):
        assert (tmp_path / "one" / name).is_file()
    assert not (tmp_path / "one" / "probe_vs_bias.png").exists()  # one bias level: no line to draw
    table = (tmp_path / "one" / "table.md").read_text()  # the summary's numbers are the table's
    assert f"| supervised | {first['supervised']['plain']:.1f} |" in table
    assert f"| MoCo + FAME | {first['moco']['fame']:.1f} |" in table
    assert "pretrain 1/1" in (tmp_path / "one" / "bias0.8/seed0/baseline/log.txt").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pretrain_and_probe_on_cuda(data_root: Path, tmp_path: Path) -> None:
    trained = pretrain(config("pretrain", data_root, tmp_path / "pt", device="cuda", amp=True, deterministic=False))
    assert trained["step"] == 6 and torch.isfinite(torch.tensor(trained["loss"]))
    result = probe(config("probe", data_root, tmp_path / "pr", device="cuda", pretrained=trained["checkpoint"]))
    assert result["test_videos"] == 9


class TestFinetuneWithFame:
    """``fame-aug finetune --fame``: FAME on the training clips only, with their own labels."""

    def test_fame_changes_training_clips_only(
        self, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from fame_aug import FAME

        calls: list[tuple[int, str, bool]] = []
        original = FAME.forward

        def spy(self: FAME, video: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            out = original(self, video, *args, **kwargs)
            calls.append((video.shape[0], self.mode, not torch.equal(out, video)))
            return out

        monkeypatch.setattr(FAME, "forward", spy)
        values = {"fame": True, "fame_mode": "stabilized", "epochs": 1}
        run = config("finetune", data_root, tmp_path / "ft", **values)
        assert run.build_fame() is not None and run.build_fame().mode == "stabilized"
        result = finetune(run)
        # 18 training videos at batch 8: steps of 8, 8 and 2 clips, each through FAME; the test
        # split (9 videos x 2 clips) is evaluated without it.
        assert calls[:2] == [(8, "stabilized", True)] * 2 and [c[0] for c in calls] == [8, 8, 2]
        assert result["test_videos"] == 9

    def test_command_line_flags(self, data_root: Path, tmp_path: Path) -> None:
        values = {**TINY, "epochs": 1, "data_root": str(data_root), "out": str(tmp_path / "ft")}
        args = ["finetune", "--preset", "cpu-demo", *flags(values), "--fame", "--fame-p", "0.5"]
        args += ["--fame-mode", "motion"]
        assert main(args) == 0
        saved = (tmp_path / "ft" / "config.json").read_text()
        assert '"fame": true' in saved and '"fame_p": 0.5' in saved and '"fame_mode": "motion"' in saved
        with pytest.raises(ValueError, match="fame_mode must be one of"):
            config("finetune", data_root, tmp_path / "bad", fame=True, fame_mode="optical-flow")
        with pytest.raises(ValueError, match="fame_p must lie in"):
            config("finetune", data_root, tmp_path / "bad", fame_p=1.5)


class FakeSummaryWriter:
    """Stands in for TensorBoard's ``SummaryWriter`` (not installed here): records every scalar."""

    scalars: ClassVar[list[tuple[str, float, int]]] = []

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass


@pytest.fixture
def tensorboard(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, int]]:
    """TensorBoard writing turned on (a fake module); returns the scalars written."""
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeSummaryWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    monkeypatch.setattr(FakeSummaryWriter, "scalars", [])
    return FakeSummaryWriter.scalars


class TestConsole:
    """What a run says: one logged line per epoch (no bar off a terminal), numbered as metrics.csv and TensorBoard."""

    def test_one_line_per_epoch_numbered_as_the_metrics(
        self, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tensorboard: list[Any]
    ) -> None:
        out = tmp_path / "run"
        args = ["pretrain", "--preset", "cpu-demo", *flags(tiny_values("pretrain", data_root, out))]
        assert main(args) == 0
        said = capsys.readouterr().err.splitlines()  # stderr is not a terminal here
        assert [line.split(":")[0] for line in said] == ["pretrain 1/2", "pretrain 2/2"]
        assert all(re.search(r"loss \S+ .*clips/s, .* s, elapsed \d\d:\d\d, ETA \d\d:\d\d$", line) for line in said)
        rows = list(csv.DictReader((out / "metrics.csv").open()))
        assert [row["epoch"] for row in rows] == ["1", "2"] and load_checkpoint(out / "checkpoint.pt")["epoch"] == 2
        assert sorted({step for tag, _, step in tensorboard if tag == "loss"}) == [1, 2]
        assert main([*args, "--epochs", "3", "--resume"]) == 0
        said = capsys.readouterr().err.splitlines()
        assert said[0] == f"resumed from {out / 'checkpoint.pt'} at epoch 2 of 3 (step 6); 1 more to train"
        assert said[1].startswith("pretrain 3/3: loss ")
        assert [row["epoch"] for row in csv.DictReader((out / "metrics.csv").open())] == ["1", "2", "3"]

    def test_messages_go_through_logging(self, data_root: Path, pretrained: Path, tmp_path: Path) -> None:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        package = logging.getLogger("fame_aug")
        level = package.level
        package.addHandler(handler)
        package.setLevel(logging.INFO)
        try:
            probe(config("probe", data_root, tmp_path / "probe", pretrained=str(pretrained), epochs=1))
        finally:
            package.removeHandler(handler)
            package.setLevel(level)
        lines = stream.getvalue().splitlines()
        assert lines[0].startswith("probe 1/1: loss ") and lines[1].startswith("test: 9 videos in ")
        assert re.fullmatch(r"probe test: top-1 \S+%, top-5 \S+% over 9 videos \(2 clips each\)", lines[2])

    def test_retrieval_results_are_logged_and_in_tensorboard(
        self,
        data_root: Path,
        pretrained: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        tensorboard: list[Any],
    ) -> None:
        args = ["retrieve", "--preset", "cpu-demo", *flags(tiny_values("retrieve", data_root, tmp_path / "rt"))]
        assert main([*args, "--pretrained", str(pretrained)]) == 0
        printed = capsys.readouterr()
        result = json.loads(printed.out)  # stdout holds the results alone
        assert "retrieval, 9 test queries against 18 training videos:" in printed.err
        assert "| raw | " in printed.err and "| centered | " in printed.err
        written = {tag: value for tag, value, _ in tensorboard}
        assert written["retrieve/raw/R@1"] == result["raw"]["R@1"]
        assert written["retrieve/centered/R@50"] == result["centered"]["R@50"] == 1.0
        assert len(written) == 10


def test_progress_bar_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, drawn in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        with Progress(3, "pretrain 1/2", World()) as progress:
            for index in range(1, 4):
                time.sleep(0.11)  # the bar redraws at most every 0.1 s
                progress.update(index, 8, loss=1.5, lr=0.01)
        shown = stream.getvalue()
        assert progress.clips == 24 and progress.clips_per_second > 0
        if drawn:  # elapsed<ETA, the values, clips/s; cleared at the end (the epoch's line replaces it)
            assert re.search(r"pretrain 1/2: +100%.*3/3 \[\d\d:\d\d<\d\d:\d\d, .*loss 1.5 lr 0.01 \S+ clips/s", shown)
            assert shown.endswith("\r")
        else:
            assert shown == ""


def test_metrics_numbered_from_zero_by_older_runs_are_renumbered(tmp_path: Path) -> None:
    old = tmp_path / "metrics.csv"
    old.write_text("epoch,loss\n0,2.0\n1,1.5\n")
    assert [row["epoch"] for row in read_metrics(old)] == ["1", "2"]
