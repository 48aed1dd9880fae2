"""Faults a user or an adversary meets on the training side: each ends in one clear line, nothing is lost.

Exit codes of ``fame-aug``: 0 done, 2 bad input or file, 3 diverged, 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import cv2
import pytest
import torch
from datatrees import counter_frames, write_frame_folder, write_video
from tiny_runs import TINY, flags, make_tiny_dataset, tiny_config, tiny_values

from fame_aug import FAME
from fame_aug.cli import main
from fame_aug.contrib.moco import loaders, pretrain, resolve_config
from fame_aug.contrib.moco.checkpoint import NonFiniteState, load_checkpoint, non_finite_entries, save_checkpoint
from fame_aug.contrib.moco.config import SYNTHETIC_ROOT
from fame_aug.contrib.moco.loaders import build_dataset
from fame_aug.contrib.moco.moco import MoCo
from fame_aug.data import UCF101, BadVideoWarning, VideoList, eval_sampler


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("faults") / "data")


@pytest.fixture(scope="module")
def pretrained(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults-pretrained")
    pretrain(tiny_config("pretrain", data_root, out, epochs=1))
    return out / "checkpoint.pt"


def run(command: str, data_root: Path, out: Path, **values: Any) -> list[str]:
    """Command-line arguments of a tiny ``cpu-demo`` run."""
    return [command, "--preset", "cpu-demo", *flags(tiny_values(command, data_root, out, **values))]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line ``fame-aug`` printed about the fault (progress bars aside), and no traceback."""
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("fame-aug ")]
    assert "Traceback" not in err and len(said) == 1, err
    return said[0]


# 2. Every number is checked before any work.
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("lr", "nan", "lr must be a finite number"),
        ("lr", "inf", "lr must be a finite number"),
        ("gamma", "-1", r"gamma must lie in \(0.0, inf\]"),
        ("moco_dim", "0", r"moco_dim must lie in \[1, inf\]"),
        ("bn_splits", "0", r"bn_splits must lie in \[1, inf\]"),
        ("backbone_width", "0", r"backbone_width must lie in \[1, inf\]"),
        ("momentum", "1.5", r"momentum must lie in \[0.0, 1.0\]"),
        ("split", "7", "split must be 1, 2 or 3"),
        ("crop_scale", "0.9", r"crop_scale must be \[min, max\]"),
    ],
)
def test_numbers_checked_before_any_work(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, message: str
) -> None:
    assert main([*run("pretrain", data_root, tmp_path / "r"), f"--{key.replace('_', '-')}", value]) == 2
    assert re.search(message, one_line_error(capsys))
    assert not (tmp_path / "r").exists()  # refused before the run folder was made


@pytest.mark.parametrize("ks", [[0], [-1], []])
def test_recall_levels_checked(
    pretrained: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], ks: list[int]
) -> None:
    config = tmp_path / "retrieve.json"
    config.write_text(json.dumps({"ks": ks}))
    args = run("retrieve", data_root, tmp_path / "r", pretrained=pretrained)
    assert main([*args, "--config", str(config)]) == 2
    assert "ks must" in one_line_error(capsys)


# 2. No checkpoint with a non-finite tensor is ever written.
def test_save_refuses_non_finite_state_and_keeps_the_good_file(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}, "epoch": 1})
    poisoned = {"model": {"bn.running_var": torch.tensor([1.0, float("inf")]), "w": torch.ones(3)}, "epoch": 2}
    assert non_finite_entries(poisoned) == ["model.bn.running_var"]
    with pytest.raises(NonFiniteState, match=r"1 tensors hold NaN or inf \(model.bn.running_var\)"):
        save_checkpoint(path, poisoned)
    assert load_checkpoint(path)["epoch"] == 1


def test_blow_up_on_the_last_step_keeps_the_last_good_checkpoint(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Weights that blow up in the last step of epoch 2 (after its loss was checked) never reach the file."""
    original, calls = torch.optim.AdamW.step, {"n": 0}

    def blow_up_on_the_last_step(self: torch.optim.AdamW, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 6:  # 3 steps per epoch: the last step of epoch 2
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", blow_up_on_the_last_step)
    out = tmp_path / "poisoned"
    assert main(run("pretrain", data_root, out, epochs=2)) == 3
    assert "The last good checkpoint is kept at" in one_line_error(capsys)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] == 1 and non_finite_entries(state) == []


def test_diverged_before_any_checkpoint_says_so(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    original = MoCo.forward

    def nan_loss(self: MoCo, *args: Any) -> dict[str, torch.Tensor]:
        out = original(self, *args)
        out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(MoCo, "forward", nan_loss)
    assert main(run("pretrain", data_root, tmp_path / "n", epochs=1)) == 3
    assert "No checkpoint had been written yet" in one_line_error(capsys)
    assert not (tmp_path / "n" / "checkpoint.pt").exists()


# 4. Broken or foreign checkpoints: one line that names the file.
def broken_files(folder: Path, good: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.pt" for name in ("empty", "truncated", "random", "foreign", "tensor")}
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(good.read_bytes()[:1000])
    files["random"].write_bytes(os.urandom(4096))
    torch.save({"weights": torch.ones(2)}, files["foreign"])
    torch.save(torch.ones(2), files["tensor"])
    return files


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "foreign", "tensor"])
def test_broken_pretrained_checkpoints(
    pretrained: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    bad = broken_files(tmp_path / "bad", pretrained)[kind]
    assert main(run("probe", data_root, tmp_path / "p", pretrained=bad, epochs=1)) == 2
    assert str(bad) in one_line_error(capsys)


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "foreign"])
def test_broken_checkpoints_given_to_resume(
    pretrained: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(broken_files(tmp_path / "bad", pretrained)[kind].read_bytes())
    assert main([*run("pretrain", data_root, out), "--resume"]) == 2
    assert str(out / "checkpoint.pt") in one_line_error(capsys)


def test_resume_refuses_another_model_and_damaged_state(
    pretrained: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(pretrained.read_bytes())
    assert main([*run("pretrain", data_root, out, backbone_width=16), "--resume"]) == 2
    assert "other model settings (backbone_width 8 -> 16)" in one_line_error(capsys)
    state = load_checkpoint(pretrained)
    torch.save({**state, "epoch": -5}, out / "checkpoint.pt")
    assert main([*run("pretrain", data_root, out), "--resume"]) == 2
    assert "epoch -5" in one_line_error(capsys)
    (out / "checkpoint.pt").write_bytes(pretrained.read_bytes())
    (out / "metrics.csv").write_text("epoch,loss\nnot-a-number,1.0\n")
    assert main([*run("pretrain", data_root, out), "--resume"]) == 2
    assert f"{out / 'metrics.csv'} is damaged" in one_line_error(capsys)


def test_a_killed_save_leaves_no_temporary_file_behind(tmp_path: Path) -> None:
    stale = tmp_path / ".checkpoint.pt.tmp-999999999"  # a process id no machine has
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "checkpoint.pt", {"epoch": 1})
    assert not stale.exists() and (tmp_path / "checkpoint.pt").is_file()


# 5. Evaluation refuses non-finite features.
def test_retrieval_refuses_nan_weights(
    pretrained: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_checkpoint(pretrained)
    state["model"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state["model"].items()}
    nan_file = tmp_path / "nan.pt"
    torch.save(state, nan_file)  # written with torch.save: save_checkpoint would refuse it
    assert main(run("retrieve", data_root, tmp_path / "r", pretrained=nan_file)) == 2
    assert "NaN or infinite" in one_line_error(capsys)


# 6. The command line: I/O and config-file errors, Ctrl-C.
def test_out_naming_a_file_and_bad_config_files(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    assert main(run("pretrain", data_root, a_file)) == 2
    assert str(a_file) in one_line_error(capsys) and a_file.read_text() == "mine"
    broken = tmp_path / "broken.yaml"
    broken.write_text("lr: [0.1\nepochs: 3\n")
    assert main(["pretrain", "--config", str(broken)]) == 2
    assert "is not valid YAML" in one_line_error(capsys)
    with_bom = tmp_path / "bom.json"
    with_bom.write_bytes(b"\xef\xbb\xbf" + b'{"lr": "nan"}')
    assert main(["pretrain", "--config", str(with_bom), "--data-root", str(data_root)]) == 2
    assert "lr must be" in one_line_error(capsys)  # read despite the byte-order mark


def test_ctrl_c_is_one_line_exit_130_and_keeps_the_checkpoint(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    original, calls = MoCo.forward, {"n": 0}

    def interrupt_in_epoch_two(self: MoCo, *args: Any) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(MoCo, "forward", interrupt_in_epoch_two)
    out = tmp_path / "cut"
    assert main(run("pretrain", data_root, out, epochs=2)) == 130
    assert "interrupted" in one_line_error(capsys)
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1


# 3. Faults in the data: skipped and counted with a warning that names the file, or one clear error.
def test_videos_that_are_not_videos_are_skipped_and_counted(tmp_path: Path) -> None:
    write_video(tmp_path / "good.avi", counter_frames(20))
    cv2.imwrite(str(tmp_path / "image.png"), counter_frames(1)[0])
    (tmp_path / "image.avi").write_bytes((tmp_path / "image.png").read_bytes())  # a PNG renamed .avi
    write_video(tmp_path / "single.avi", counter_frames(1))
    gappy = write_frame_folder(tmp_path / "gappy", counter_frames(6))
    (gappy / "img_00003.png").unlink()  # a missing middle frame would be read as a jump in time
    listing = tmp_path / "list.txt"
    listing.write_text("image.avi 0\nsingle.avi 0\ngappy 0\ngood.avi 0\n")
    data = VideoList(listing, sampler=eval_sampler(4, 1, 1), frame_size=None)
    with pytest.warns(BadVideoWarning) as caught:
        assert [data[i][2] for i in range(3)] == [3, 3, 3]  # each bad item is served by the next good video
    messages = " | ".join(str(w.message) for w in caught)
    assert data.num_bad == 3 and "image.avi holds 1 frames: not a video" in messages
    assert "single.avi holds 1 frames" in messages and "misses frame number 3 (of 1-6)" in messages


def test_unreadable_videos_are_counted_in_a_logged_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_video(tmp_path / "good.avi", counter_frames(20))
    (tmp_path / "broken.avi").write_bytes(b"not a video")
    listing = tmp_path / "list.txt"
    listing.write_text("broken.avi 0\ngood.avi 0\n")
    data = VideoList(listing, sampler=eval_sampler(4, 1, 1), frame_size=None)
    with pytest.warns(BadVideoWarning):
        data[0]
    with caplog.at_level(logging.INFO, logger="fame_aug"):
        assert loaders.report_unreadable(data, "pretrain 1/2") == 1
        assert loaders.report_unreadable(data, "pretrain 2/2", before=1) == 1  # nothing new: said once
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.name == "fame_aug.contrib.moco.loaders"
    assert record.getMessage() == f"pretrain 1/2: 1 of 2 videos are unreadable and skipped ({tmp_path / 'broken.avi'})"


def test_help_shows_the_checkpoints_model(pretrained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["retrieve", "--pretrained", str(pretrained), "--help"])  # a cpu-demo checkpoint, no --preset
    shown = " ".join(capsys.readouterr().out.split())
    assert f"channels of r3d_small. (default 8, from the checkpoint {pretrained})" in shown
    assert f"(default 'r3d_small', from the checkpoint {pretrained})" in shown


def test_split_files_as_editors_write_them(tmp_path: Path) -> None:
    """A byte-order mark and indented comments load; odd digits, duplicates and huge labels are refused."""
    write_video(tmp_path / "a.avi", counter_frames(8))
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xef\xbb\xbf" + b"a.avi 0\n   # an indented comment\n")
    assert len(VideoList(listing)) == 1
    listing.write_text("a.avi \u00b2\n", encoding="utf-8")  # '²' passes str.isdigit
    with pytest.raises(ValueError, match=r"list.txt:1: class '²' is not among"):
        VideoList(listing, classes=["x"])
    listing.write_text("a.avi 100000000\n")
    with pytest.raises(ValueError, match=r"list.txt:1: label 100000000 would make 100000001 classes"):
        VideoList(listing)
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 Run\n2 Jump\n3 Run\n")
    (splits / "trainlist01.txt").write_text("Run/a.avi 1\n")
    with pytest.raises(ValueError, match=r"classInd.txt:3: class 'Run' is listed twice \(also as id 1\)"):
        UCF101(tmp_path, splits)


def test_a_link_out_of_the_root_is_refused(tmp_path: Path) -> None:
    outside = write_video(tmp_path / "outside" / "secret.avi", counter_frames(8))
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.avi").symlink_to(outside)
    listing = tmp_path / "list.txt"
    listing.write_text("link.avi 0\n")
    with pytest.raises(ValueError, match="escapes the dataset root"):
        VideoList(listing, root=root)


# 7. The augmentation's API: a settings change after construction is checked as at construction.
def test_fame_settings_and_inputs_checked() -> None:
    fame = FAME(mode="motion")
    with pytest.raises(ValueError, match="beta"):
        fame.beta = 2
    with pytest.raises(ValueError, match="mode"):
        fame.mode = "bogus"
    with pytest.raises(ValueError, match="p must"):
        fame.p = -0.5
    assert fame.beta == 0.5 and fame.mode == "motion"  # a refused value changes nothing
    video = torch.rand(2, 3, 4, 8, 8)
    out = fame(video)
    with pytest.raises(TypeError, match=r"params\['mask'\] must be a bool tensor, got list"):
        fame(video, params={**fame._params, "mask": [[True]]})
    with pytest.raises(TypeError, match=r"float32 or float64 \(0-1\) tensor, got torch\.float8"):
        fame(video.to(torch.float8_e4m3fn))
    assert out.shape == video.shape


def test_device_queue_full_disk_and_real_bugs(
    data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*run("pretrain", data_root, tmp_path / "a"), "--device", "tpu"]) == 2
    assert "device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'" in one_line_error(capsys)
    assert main([*run("pretrain", data_root, tmp_path / "b"), "--queue-size", "2000000000"]) == 2
    assert "would need 954 GiB" in one_line_error(capsys)

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", disk_full)
    assert main(run("pretrain", data_root, tmp_path / "c", epochs=1)) == 2
    assert "is the disk full?" in one_line_error(capsys)
    monkeypatch.undo()

    def a_bug_below(*args: Any, **kwargs: Any) -> None:
        raise ValueError("a bug in a library, not a bad input")

    monkeypatch.setattr(torch.optim.AdamW, "step", a_bug_below)
    with pytest.raises(ValueError, match="a bug in a library"):  # its traceback is shown, not hidden as exit 2
        main(run("pretrain", data_root, tmp_path / "d", epochs=1))


def test_later_stages_read_the_model_from_the_checkpoint(
    pretrained: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cpu-demo checkpoint (small R3D, width 8) probed without --preset: the model comes from its config."""
    values = {k: v for k, v in TINY.items() if k != "backbone_width"}
    args = ["probe", *flags({**values, "dataset": "synthetic", "data_root": data_root, "out": tmp_path / "p"})]
    assert main([*args, "--pretrained", str(pretrained), "--epochs", "1"]) == 0
    assert '"test_videos": 9' in capsys.readouterr().out
    # An explicit flag still wins, and a mismatch is one clear line.
    assert main([*args, "--pretrained", str(pretrained), "--backbone-width", "16", "--out", str(tmp_path / "q")]) == 2
    assert "shapes differ" in one_line_error(capsys)


# 3. The built-in dataset is made only where the user asked for it.
def test_a_mistyped_data_root_is_not_made_into_a_dataset(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "dta"
    assert main(run("pretrain", typo, tmp_path / "out")) == 2
    said = one_line_error(capsys)
    assert f"data_root '{typo}' holds no background-bias dataset" in said
    assert f"`fame-aug make-synthetic {typo}`" in said
    assert not typo.exists() and not (tmp_path / "out").exists()  # refused before any work
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    some_file = str(data_root / "metadata.json")  # the data is checked before the checkpoint
    assert main(run("retrieve", tmp_path / "notes", tmp_path / "r", pretrained=some_file)) == 2
    assert "holds no background-bias dataset" in one_line_error(capsys)
    config = tiny_config("pretrain", data_root, tmp_path / "api")
    config.data_root = str(typo)  # the Python API, past the checks of resolve_config: the same refusal
    with pytest.raises(ValueError, match="holds no background-bias dataset"):
        build_dataset(config, train=True, sampler=eval_sampler(8, 2, 1))
    assert not typo.exists()


def test_the_default_data_root_is_made_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    made: list[Path] = []

    def make_tiny(root: Path) -> None:  # the full dataset takes 10 s: the tiny one stands in
        made.append(Path(root))
        make_tiny_dataset(Path(root))

    monkeypatch.setattr(loaders, "make_background_bias_dataset", make_tiny)
    config = resolve_config("pretrain", "cpu-demo", overrides={"frame_size": [32, 32], "crop_size": 28})
    assert config.data_root == SYNTHETIC_ROOT
    for _ in range(2):  # made once, then read
        assert len(build_dataset(config, train=True, sampler=eval_sampler(8, 2, 1))) == 18
    assert made == [Path(SYNTHETIC_ROOT)]
    shutil.rmtree(SYNTHETIC_ROOT)
    Path(SYNTHETIC_ROOT).mkdir(parents=True)
    (Path(SYNTHETIC_ROOT) / "stray.txt").write_text("mine")  # not empty: nothing is made or deleted there
    with pytest.raises(ValueError, match="holds files but no background-bias dataset"):
        resolve_config("pretrain", "cpu-demo")
    assert made == [Path(SYNTHETIC_ROOT)]
