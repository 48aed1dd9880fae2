"""The built-in background-bias dataset: motions, bias, determinism, layout, command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fame_aug.cli import main
from fame_aug.data import MOTIONS, UCF101, BackgroundBiasConfig, eval_sampler, make_background_bias_dataset
from fame_aug.data.background_bias import render_video


@pytest.mark.parametrize("motion", MOTIONS)
def test_objects_move_as_their_class_says(motion: str) -> None:
    video, masks, info = render_video(motion, "noise", 24, 64, np.random.default_rng(0))
    assert video.shape == (24, 64, 64, 3) and info["motion"] == motion
    ys, xs = zip(*(np.argwhere(m).mean(axis=0) for m in masks), strict=True)
    dx, dy = xs[-1] - xs[0], ys[-1] - ys[0]
    area = masks.sum(axis=(1, 2))
    if motion == "LeftToRight":
        assert dx > 20 and abs(dy) < 3
    elif motion == "RightToLeft":
        assert dx < -20 and abs(dy) < 3
    elif motion == "MoveUp":
        assert dy < -20 and abs(dx) < 3
    elif motion == "MoveDown":
        assert dy > 20 and abs(dx) < 3
    elif motion == "DiagonalUp":
        assert dx > 15 and dy < -15
    elif motion == "DiagonalDown":
        assert dx > 15 and dy > 15
    elif motion == "ZoomIn":
        assert area[-1] > 3 * area[0]
    elif motion == "ZoomOut":
        assert area[0] > 3 * area[-1]
    else:  # circles: the turning direction is the sign of the cross product of successive steps
        steps = np.diff(np.stack([xs, ys], axis=1), axis=0)
        cross = steps[:-1, 0] * steps[1:, 1] - steps[:-1, 1] * steps[1:, 0]
        turn = np.sign(cross).mean()
        assert turn > 0.8 if motion == "Clockwise" else turn < -0.8  # image y points down


def test_dataset_bias_layout_and_determinism(tmp_path: Path) -> None:
    config = BackgroundBiasConfig(classes=4, train_per_class=30, test_per_class=20, frames=8, size=32, bias=0.8, seed=3)
    meta = make_background_bias_dataset(tmp_path / "a", config)
    assert meta["stats"]["train"]["videos"] == 120 and meta["stats"]["test"]["videos"] == 80
    assert abs(meta["stats"]["train"]["own_background_share"] - 0.8) < 0.1
    assert abs(meta["stats"]["test"]["own_background_share"] - 0.25) < 0.12
    train = UCF101(tmp_path / "a" / "videos", tmp_path / "a" / "splits", sampler=eval_sampler(8, 1, 1), frame_size=None)
    test = UCF101(tmp_path / "a" / "videos", tmp_path / "a" / "splits", train=False)
    assert train.classes == list(MOTIONS[:4]) and len(train) == 120 and len(test) == 80
    assert train[0][0].shape == (1, 8, 32, 32, 3)
    records = {r["path"]: r for r in json.loads((tmp_path / "a" / "metadata.json").read_text())["videos"]}
    for path, label in train.videos[:10]:
        assert records[f"{path.parent.name}/{path.name}"]["label"] == label

    again = make_background_bias_dataset(tmp_path / "b", config)
    assert again["videos"] == meta["videos"]
    first = train[5][0]
    other = UCF101(tmp_path / "b" / "videos", tmp_path / "b" / "splits", sampler=eval_sampler(8, 1, 1), frame_size=None)
    assert np.array_equal(other[5][0].numpy(), first.numpy())  # lossless FFV1: identical pixels


def test_overwrite_deletes_only_what_it_wrote(tmp_path: Path) -> None:
    """--overwrite replaces a dataset make-synthetic wrote, and never deletes a file it did not write."""
    config = BackgroundBiasConfig(classes=2, train_per_class=1, test_per_class=1, frames=4, size=16)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="does not hold a dataset made by make-synthetic"):
        make_background_bias_dataset(tmp_path / "mine", config, overwrite=True)
    # a folder that only looks like ours: a metadata.json it did not write
    (tmp_path / "look" / "src").mkdir(parents=True)
    (tmp_path / "look" / "metadata.json").write_text("{}")
    (tmp_path / "look" / "src" / "important.txt").write_text("x")
    with pytest.raises(ValueError, match="nothing was deleted"):
        make_background_bias_dataset(tmp_path / "look", config, overwrite=True)
    assert (tmp_path / "look" / "src" / "important.txt").read_text() == "x"
    make_background_bias_dataset(tmp_path / "data", config)
    with pytest.raises(ValueError, match="is not empty"):
        make_background_bias_dataset(tmp_path / "data", config)
    (tmp_path / "data" / "videos" / "notes.txt").write_text("mine")  # a user's file inside our dataset
    with pytest.raises(ValueError, match=r"holds 1 files make-synthetic did not write \(videos/notes.txt\)"):
        make_background_bias_dataset(tmp_path / "data", config, overwrite=True)
    assert (tmp_path / "data" / "videos" / "notes.txt").is_file() and (tmp_path / "data" / "metadata.json").is_file()
    (tmp_path / "data" / "videos" / "notes.txt").unlink()
    meta = make_background_bias_dataset(tmp_path / "data", config, overwrite=True)
    assert meta["made_by"] == "fame-aug make-synthetic" and (tmp_path / "data" / "splits" / "classInd.txt").is_file()


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="classes must be between 2 and 10"):
        BackgroundBiasConfig(classes=11)
    with pytest.raises(ValueError, match="bias must lie in"):
        BackgroundBiasConfig(bias=1.5)
    for bad in [(0.2, 0.1), (0.0, 0.1), (0.1, 0.6), (0.1,)]:
        with pytest.raises(ValueError, match="object_size must be"):
            BackgroundBiasConfig(object_size=bad)  # type: ignore[arg-type]


def test_object_size_sets_the_object_radius() -> None:
    """object_size is the radius range in units of the frame side; a JSON list is accepted."""
    assert BackgroundBiasConfig(object_size=[0.1, 0.2]).object_size == (0.1, 0.2)  # type: ignore[arg-type]
    areas = [
        render_video("LeftToRight", "noise", 4, 100, np.random.default_rng(seed), object_size=(side, side))[1][0].sum()
        for seed in range(6)  # the same seed draws the same shape at both sizes
        for side in (0.08, 0.2)
    ]
    ratios = np.array(areas[1::2]) / np.array(areas[0::2])
    assert np.all((ratios > 4.5) & (ratios < 8.5)), ratios  # (0.2 / 0.08) ** 2 = 6.25


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["make-synthetic", str(tmp_path / "out"), "--classes", "3", "--train-per-class", "2"]
    assert main([*args, "--test-per-class", "1", "--frames", "6", "--size", "24", "--pan", "1"]) == 0
    printed = capsys.readouterr().out
    assert "wrote 6 training and 3 test videos" in printed and "UCF101(" in printed
    assert all(r["pan"] for r in json.loads((tmp_path / "out" / "metadata.json").read_text())["videos"])
    assert main(args) == 2
    assert "is not empty" in capsys.readouterr().err


def test_each_background_family_has_its_own_hue() -> None:
    """Family k of n draws its colors within hue_spread of k / n of the hue circle; None: any color."""
    import cv2

    from fame_aug.data.synthetic import BACKGROUND_KINDS, background_texture

    def hues(texture: np.ndarray) -> np.ndarray:
        hsv = cv2.cvtColor(texture.reshape(1, -1, 3).astype(np.float32) / 255, cv2.COLOR_RGB2HSV)[0]
        return hsv[hsv[:, 1] > 0.3, 0] / 360  # saturated pixels only

    rng = np.random.default_rng(0)
    for k, kind in enumerate(BACKGROUND_KINDS[:8]):
        for _ in range(5):
            found = hues(background_texture(kind, 32, rng, hue=k / 8, hue_spread=0.04))
            distance = np.abs((found - k / 8 + 0.5) % 1.0 - 0.5)  # around the circle
            assert found.size and distance.max() < 0.04 + 0.01, (kind, distance.max())
    spread = np.concatenate([hues(background_texture("noise", 32, rng)) for _ in range(30)])
    assert np.ptp(spread) > 0.8  # random colors cover the circle
    assert BackgroundBiasConfig().hue_spread == 0.04 and BackgroundBiasConfig(hue_spread=None).hue_spread is None
    for bad in (-0.1, 0.6, True, "0.1"):
        with pytest.raises(ValueError, match="hue_spread must be None or lie in"):
            BackgroundBiasConfig(hue_spread=bad)  # type: ignore[arg-type]
