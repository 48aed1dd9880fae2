"""Validated before any write, one run per folder, OS errors as one line, split files checked,
settings a checkpoint implies: the guarantees of the README's Faults section."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from datatrees import counter_frames, write_video
from tiny_runs import flags, make_tiny_dataset, tiny_config, tiny_values

from fame_aug.cli import main
from fame_aug.contrib.moco import finetune, loaders, pretrain, resolve_config
from fame_aug.contrib.moco.distributed import init_world
from fame_aug.contrib.moco.run_folder import RunFolder, RunFolderInUse
from fame_aug.data import HMDB51, UCF101, DuplicateVideoWarning, KineticsFolder, VideoList, eval_sampler


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("reliability") / "data")


@pytest.fixture(scope="module")
def pretrained_run(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reliability-run") / "run"
    pretrain(tiny_config("pretrain", data_root, out, epochs=1))
    return out


def run(command: str, root: Path, out: Path, **values: Any) -> list[str]:
    """Command-line arguments of a tiny ``cpu-demo`` run on the dataset in ``root``; ``values`` win."""
    return [command, "--preset", "cpu-demo", *flags({**tiny_values(command, root, out), **values})]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("fame-aug ")]
    assert "Traceback" not in err and len(said) == 1, err
    return said[0]


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file of ``folder`` and a hash of its bytes."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# 1. A run validates everything before it creates, writes or changes anything in --out.
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"resume": True, "backbone_width": 4}, "other model settings (backbone_width 8 -> 4)"),
        ({"resume": True, "crop_size": 0}, "crop_size must be >= 1"),
        ({"resume": True, "fame_beta": 1e-9}, "beta"),
        ({"resume": True, "epochs": 3, "data_root": "/nonexistent/data"}, "holds no background-bias dataset"),
    ],
)
def test_a_refused_resume_leaves_the_folder_as_it_was(
    data_root: Path, pretrained_run: Path, values: dict[str, Any], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = fingerprint(pretrained_run)
    assert main(run("pretrain", data_root, pretrained_run, **values)) == 2
    assert message in one_line_error(capsys)
    assert fingerprint(pretrained_run) == before  # config.json still describes the checkpoint


@pytest.mark.parametrize(
    ("command", "values", "message"),
    [
        ("pretrain", {"crop_size": 0}, "crop_size must be >= 1"),
        ("pretrain", {"fame_beta": 1e-9}, "beta"),
        ("finetune", {"fame": True, "fame_beta": 1e-9}, "beta"),
        ("probe", {"pretrained": "missing.pt"}, "pretrained 'missing.pt' does not exist"),
    ],
)
def test_a_refused_run_creates_no_folder(
    data_root: Path,
    tmp_path: Path,
    command: str,
    values: dict[str, Any],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "new"
    assert main(run(command, data_root, out, **values)) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_a_bad_test_split_is_found_before_training(data_root: Path, tmp_path: Path) -> None:
    splits = tmp_path / "splits"
    splits.mkdir()
    for name in ("classInd.txt", "trainlist01.txt"):
        (splits / name).write_text((data_root / "splits" / name).read_text())
    config = tiny_config("finetune", data_root, tmp_path / "run", dataset="ucf101", split_dir=str(splits))
    config.data_root = str(data_root / "videos")
    with pytest.raises(ValueError, match=r"testlist01\.txt"):
        finetune(config)
    assert not (tmp_path / "run").exists()  # not after an epoch of training


# 2. One run per folder.
def test_a_held_folder_is_refused_at_once_with_the_holders_pid(
    data_root: Path, pretrained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; f = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(f, fcntl.LOCK_EX); os.write(f, str(os.getpid()).encode()); print('held', flush=True); "
            "time.sleep(60)",
            str(pretrained_run / RunFolder.LOCK),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = fingerprint(pretrained_run)
        assert main(run("pretrain", data_root, pretrained_run, resume=True, epochs=2)) == 2
        line = one_line_error(capsys)
        assert str(pretrained_run) in line and f"PID {holder.pid}" in line
        assert fingerprint(pretrained_run) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel released the killed holder's lock: the run resumes.
    assert main(run("pretrain", data_root, pretrained_run, resume=True, epochs=2)) == 0
    rows = (pretrained_run / "metrics.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["1", "2"]


def test_an_open_run_holds_its_folder_until_it_closes(data_root: Path, tmp_path: Path) -> None:
    config = tiny_config("pretrain", data_root, tmp_path / "run")
    world = init_world("cpu")
    with RunFolder(config, world) as first:
        first.open()
        assert (tmp_path / "run" / RunFolder.LOCK).read_text().strip() == str(os.getpid())
        with pytest.raises(RunFolderInUse, match=f"in use by another fame-aug run \\(PID {os.getpid()}\\)"):
            RunFolder(config, world).open()
    second = RunFolder(config, world)  # released on close
    second.open()
    second.close()


# 3. Every path the command line takes goes through one check: one line, exit 2.
def symlink_loop(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return folder / "a"


@pytest.mark.parametrize(
    ("key", "make", "message"),
    [
        ("data_root", lambda tmp: symlink_loop(tmp / "loop") / "videos", "data_root '{path}': a symbolic link loop"),
        ("out", lambda tmp: symlink_loop(tmp / "loop") / "run", "out '{path}': a symbolic link loop"),
        ("out", lambda tmp: tmp / ("x" * 300), "is longer than"),
        ("out", lambda tmp: tmp / "file.txt" / "run", "is not a folder"),
        ("split_dir", lambda tmp: tmp / "file.txt", "split_dir '{path}' is not a folder"),
        ("pretrained", lambda tmp: symlink_loop(tmp / "loop"), "pretrained '{path}': a symbolic link loop"),
        ("pretrained", lambda tmp: tmp, "is not a file"),
    ],
)
def test_os_errors_in_paths_are_one_line(
    data_root: Path, tmp_path: Path, key: str, make: Any, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file.txt").write_text("not a folder")
    path = make(tmp_path)
    out = path if key == "out" else tmp_path / "run"
    values: dict[str, Any] = {} if key == "out" else {key: str(path)}
    if key in ("data_root", "split_dir"):
        values["dataset"] = "ucf101"
    command = "probe" if key == "pretrained" else "finetune"
    assert main(run(command, data_root, out, **values)) == 2
    assert message.format(path=path) in one_line_error(capsys)


def test_a_config_file_in_a_loop_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = symlink_loop(tmp_path / "loop")
    assert main(["pretrain", "--config", str(loop)]) == 2
    assert f"config file '{loop}': a symbolic link loop" in one_line_error(capsys)


def test_the_other_commands_check_their_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = symlink_loop(tmp_path / "loop")
    for args in (
        ["make-synthetic", str(loop / "data")],
        ["demo", "--out", str(loop / "demo")],
        ["experiment", "background-bias", "--out", str(loop / "exp")],
        ["visualize", "masks", str(loop), "--out", str(tmp_path / "m.png")],
    ):
        assert main(args) == 2, args
        assert "a symbolic link loop" in one_line_error(capsys)


# 4. Split files that contradict themselves.
def ucf_tree(root: Path, train: list[str], test: list[str]) -> tuple[Path, Path]:
    videos, splits = root / "videos", root / "splits"
    for name in ("a", "b", "c", "d"):
        write_video(videos / "Walk" / f"v_Walk_g0{ord(name) - 96}_c01.avi", counter_frames(8, 16, 16))
    splits.mkdir(parents=True)
    (splits / "classInd.txt").write_text("1 Walk\n")
    (splits / "trainlist01.txt").write_text("".join(f"{line}\n" for line in train))
    (splits / "testlist01.txt").write_text("".join(f"{line}\n" for line in test))
    return videos, splits


def test_a_video_listed_twice_is_loaded_once_with_a_warning(tmp_path: Path) -> None:
    names = [f"Walk/v_Walk_g0{i}_c01.avi 1" for i in range(1, 5)]
    videos, splits = ucf_tree(tmp_path, [*names, names[2]], [])
    with pytest.warns(DuplicateVideoWarning, match=r"trainlist01.txt: 1 line\(s\) name a video already listed"):
        data = UCF101(videos, splits, train=True)
    assert len(data) == 4


def test_a_video_in_both_splits_is_refused(tmp_path: Path) -> None:
    videos, splits = ucf_tree(tmp_path, ["Walk/v_Walk_g01_c01.avi 1", "Walk/v_Walk_g02_c01.avi 1"],
                              ["Walk/v_Walk_g02_c01.avi", "Walk/v_Walk_g03_c01.avi"])  # fmt: skip
    for train in (True, False):
        with pytest.raises(ValueError, match=r"1 video\(s\) are in both the training split .*trainlist01.txt.*"
                           r"testlist01.txt.*memorisation"):  # fmt: skip
            UCF101(videos, splits, train=train)


def test_hmdb51_lines_that_repeat_or_contradict(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_video(tmp_path / "run" / f"{name}.avi", counter_frames(8, 16, 16))
    (tmp_path / "run_test_split1.txt").write_text("a.avi 1\nb.avi 2\na.avi 1\n")
    with pytest.warns(DuplicateVideoWarning):
        assert len(HMDB51(tmp_path, split=1, train=True)) == 1
    (tmp_path / "run_test_split1.txt").write_text("a.avi 1\nb.avi 2\nb.avi 1\n")
    with pytest.raises(ValueError, match=r"both the training split"):
        HMDB51(tmp_path, split=1, train=False)


def test_kinetics_folders_that_share_a_clip(tmp_path: Path) -> None:
    for split, name in (("train", "abc_000001_000011"), ("train", "def_000001_000011"), ("val", "xyz_000001_000011")):
        write_video(tmp_path / split / "walk" / f"{name}.mp4", counter_frames(8, 16, 16))
    assert len(KineticsFolder(tmp_path, "val")) == 1
    write_video(tmp_path / "val" / "walk" / "abc_000001_000011.avi", counter_frames(8, 16, 16))  # re-encoded copy
    with pytest.raises(ValueError, match=r"1 clip id\(s\) are in both .*abc_000001_000011"):
        KineticsFolder(tmp_path, "val")
    (tmp_path / "train" / "run").mkdir()
    (tmp_path / "train" / "run" / "def_000001_000011.mp4").symlink_to(
        tmp_path / "train" / "walk" / "def_000001_000011.mp4"
    )
    with pytest.raises(ValueError, match="listed again with another class"):
        KineticsFolder(tmp_path, "train")


def test_list_files_that_repeat_or_share_videos(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write_video(tmp_path / f"{name}.avi", counter_frames(8, 16, 16))
    (tmp_path / "train.txt").write_text("a.avi 0\nb.avi 1\n./a.avi 0\n")
    (tmp_path / "test.txt").write_text("c.avi 0\nb.avi 1\n")
    with pytest.warns(DuplicateVideoWarning):
        assert len(VideoList(tmp_path / "train.txt")) == 2
    (tmp_path / "bad.txt").write_text("a.avi 0\na.avi 1\n")
    with pytest.raises(
        ValueError, match=r"bad.txt:2: video .* listed again with another class \(first at .*bad.txt:1\)"
    ):
        VideoList(tmp_path / "bad.txt")
    config = resolve_config(
        "finetune",
        overrides={
            "dataset": "list",
            "train_list": str(tmp_path / "train.txt"),
            "test_list": str(tmp_path / "test.txt"),
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DuplicateVideoWarning)
        with pytest.raises(ValueError, match=r"both the training split .*train.txt.*test.txt"):
            loaders.build_dataset(config, train=False, sampler=eval_sampler(8, 1, 1))


# 5. Settings a checkpoint implies.
def test_probe_and_retrieve_take_the_clips_and_data_the_checkpoint_was_trained_on(
    pretrained_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stored = json.loads((pretrained_run / "config.json").read_text())
    checkpoint = str(pretrained_run / "checkpoint.pt")
    for command in ("probe", "retrieve"):
        config = resolve_config(command, overrides={"pretrained": checkpoint}, check_paths=False)
        for key in ("backbone", "backbone_width", "num_frames", "stride", "frame_size", "crop_size", "data_root"):
            assert getattr(config, key) == stored[key], (command, key)
    with caplog.at_level("WARNING", logger="fame_aug"):
        config = resolve_config("probe", overrides={"pretrained": checkpoint, "crop_size": 20}, check_paths=False)
    assert config.crop_size == 20  # an explicit flag wins, with a warning
    assert f"crop_size 20 differs from the {stored['crop_size']} that {checkpoint} was trained with" in caplog.text
    preset = resolve_config("probe", "hmdb51", overrides={"pretrained": checkpoint}, check_paths=False)
    assert preset.dataset == "hmdb51" and preset.crop_size == stored["crop_size"]  # a preset names other data


def test_workers_never_exceed_the_cpus(data_root: Path, tmp_path: Path) -> None:
    config = tiny_config("finetune", data_root, tmp_path / "run", workers=64)
    data = loaders.build_dataset(config, train=False, sampler=eval_sampler(8, 1, 1))
    loader = loaders.build_loader(data, config, init_world("cpu"), train=False)
    assert loader.num_workers == min(64, loaders.available_cpus())


def test_pretraining_checks_the_test_split_too(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    splits = tmp_path / "splits"
    shutil.copytree(data_root / "splits", splits)
    with (splits / "testlist01.txt").open("a") as handle:
        handle.write("MoveUp/v_MoveUp_g99_c01.avi\n")  # a video that does not exist
    values = {"dataset": "ucf101", "data_root": str(data_root / "videos"), "split_dir": str(splits)}
    assert main(run("pretrain", data_root, tmp_path / "run", **values)) == 2
    assert "testlist01.txt" in one_line_error(capsys) and not (tmp_path / "run").exists()


def test_a_foreign_checkpoint_on_resume_is_one_line(
    data_root: Path, pretrained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "foreign"
    shutil.copytree(pretrained_run, out, ignore=shutil.ignore_patterns(".lock"))
    before = fingerprint(out)
    assert main(run("finetune", data_root, out, resume=True, epochs=2)) == 2
    err = capsys.readouterr().err
    assert "does not fit this run's model" in err and "resumed from" not in err  # no claim of a resume
    assert fingerprint(out) == before


def test_hard_links_are_the_same_video(tmp_path: Path) -> None:
    write_video(tmp_path / "a.avi", counter_frames(8, 16, 16))
    os.link(tmp_path / "a.avi", tmp_path / "copy.avi")
    (tmp_path / "train.txt").write_text("a.avi 0\ncopy.avi 0\n")
    with pytest.warns(DuplicateVideoWarning):
        assert len(VideoList(tmp_path / "train.txt")) == 1
    for split in ("train", "val"):
        (tmp_path / "kinetics" / split / "walk").mkdir(parents=True)
    write_video(tmp_path / "kinetics" / "train" / "walk" / "x_000001_000011.mp4", counter_frames(8, 16, 16))
    os.link(tmp_path / "kinetics/train/walk/x_000001_000011.mp4", tmp_path / "kinetics/val/walk/renamed.mp4")
    with pytest.raises(ValueError, match="in both the training split"):
        KineticsFolder(tmp_path / "kinetics", "val")


def test_a_full_disk_leaves_no_half_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fame_aug.data import background_bias

    written = []

    def fill_up(path: Path, *args: Any) -> None:
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        written.append(path)

    monkeypatch.setattr(background_bias, "_write_video", fill_up)
    out = tmp_path / "data"
    assert main(["make-synthetic", str(out), "--classes", "2", "--train-per-class", "2", "--test-per-class", "1"]) == 2
    assert f"No space left on device ({out})" in one_line_error(capsys)
    assert not out.exists()
    out.mkdir()  # an empty folder of the user's: kept, and left empty
    assert main(["make-synthetic", str(out), "--classes", "2", "--train-per-class", "2", "--test-per-class", "1"]) == 2
    assert out.is_dir() and not any(out.iterdir())


def test_an_existing_dataset_needs_only_reading(
    pretrained_run: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_access = os.access
    data = str(data_root)
    monkeypatch.setattr(os, "access", lambda path, mode: real_access(path, mode) and not (
        str(path).startswith(data) and mode & os.W_OK))  # fmt: skip
    overrides = {"pretrained": str(pretrained_run / "checkpoint.pt"), "out": str(tmp_path / "probe")}
    assert resolve_config("probe", overrides=overrides).data_root == data  # the checkpoint's, read-only
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file where the default run folder would go")
    out = tmp_path / "figure.png"
    checkpoint = str(pretrained_run / "checkpoint.pt")
    assert main(["visualize", "retrieval", checkpoint, "-k", "1", "--num-queries", "1", "--out", str(out)]) == 0
