"""Figures of trained models (class activation maps, retrieval) and the ``fame-aug visualize`` command."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tiny_runs import make_tiny_dataset, tiny_config

from fame_aug.cli import main
from fame_aug.contrib.moco import finetune, pretrain
from fame_aug.contrib.moco.cam import class_activation_maps, load_classifier, read_centre_clip
from fame_aug.contrib.moco.retrieval_figure import retrieval_config, retrieval_figure

LABEL, GAP = 14, 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("figures")
    data = make_tiny_dataset(base / "data")
    pretrain(tiny_config("pretrain", data, base / "pt", epochs=1))
    finetune(tiny_config("finetune", data, base / "ft-a", epochs=1))
    finetune(tiny_config("finetune", data, base / "ft-b", epochs=1, seed=1))
    videos = sorted((data / "videos").rglob("*.avi"))
    return {"data": data, "pretrained": base / "pt" / "checkpoint.pt", "a": base / "ft-a" / "checkpoint.pt",
            "b": base / "ft-b" / "checkpoint.pt", "video0": videos[0], "video1": videos[-1]}  # fmt: skip


def read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_masks_command(tmp_path: Path, runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "masks.png"
    args = ["visualize", "masks", str(runs["video0"]), str(runs["video1"]), "--size", "32", "--frames", "4"]
    assert main([*args, "--out", str(out)]) == 0
    assert read(out).shape == (2 * 3 * (96 + LABEL), 4 * 96 + 3 * GAP, 3)  # 32-pixel clips drawn 3x larger
    assert "FAME masks (official, beta 0.5): 0.5" in capsys.readouterr().out
    assert main([*args, "--clean-background", "--out", str(out)]) == 0


def test_class_activation_maps(runs: dict[str, Path]) -> None:
    model, classes, config = load_classifier(runs["a"])
    clip = read_centre_clip(runs["video0"], config)
    assert clip.shape == (8, 28, 28, 3)
    maps, predicted, confidence = class_activation_maps(model, clip[None])
    assert maps.shape == (1, 8, 28, 28) and maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    assert 0 <= predicted[0] < len(classes) and 0 < confidence[0] <= 1
    # the map is the predicted class's weights applied to the last feature map, upsampled
    video = torch.as_tensor(clip[None]).permute(0, 4, 1, 2, 3).float().div(255)
    mean, std = torch.tensor([0.43216, 0.394666, 0.37645]), torch.tensor([0.22803, 0.22145, 0.216989])
    with torch.no_grad():
        features = model.forward_features((video - mean.view(1, 3, 1, 1, 1)) / std.view(1, 3, 1, 1, 1))
        raw = torch.einsum("c,cthw->thw", model.fc.weight[int(predicted[0])], features[0]).relu()
    expected = torch.nn.functional.interpolate(raw[None, None], size=(8, 28, 28), mode="trilinear")[0, 0]
    np.testing.assert_allclose(maps[0], (expected / expected.max()).numpy(), atol=1e-5)


def test_cam_command_with_comparison(tmp_path: Path, runs: dict[str, Path]) -> None:
    out = tmp_path / "cam.png"
    args = ["visualize", "cam", str(runs["a"]), str(runs["video0"]), str(runs["video1"]), "--compare", str(runs["b"])]
    assert main([*args, "--frames", "4", "--out", str(out)]) == 0
    image = read(out)
    side = 4 * 28  # 28-pixel crops drawn 4x larger
    assert image.shape == (2 * 3 * (side + LABEL), 4 * side + 3 * GAP, 3)  # per video: frames, model a, model b
    frames = image[LABEL : LABEL + side, :side].astype(int)
    heat = image[(side + LABEL) + LABEL : 2 * (side + LABEL), :side].astype(int)
    assert np.abs(heat - frames).mean() > 10  # the heat map is drawn over the frames


def test_cam_needs_a_classifier(runs: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["visualize", "cam", str(runs["pretrained"]), str(runs["video0"]), "--out", str(tmp_path / "x.png")]
    assert main(args) == 2
    assert "not a fine-tuning checkpoint" in capsys.readouterr().err


def test_retrieval_figure(runs: dict[str, Path], tmp_path: Path) -> None:
    config = retrieval_config(runs["pretrained"], device="cpu")
    image, recall = retrieval_figure(config, "train", "test", k=3, num_queries=4)
    tile = 4 * 28 + 2 * 3  # enlarged crop and its border
    assert image.shape[0] == LABEL + 4 * (LABEL + tile + GAP) and image.shape[1] == 4 * tile + 3 * GAP
    assert 0.0 <= recall <= 1.0
    again, _ = retrieval_figure(config, "train", "test", k=3, num_queries=4)
    assert np.array_equal(image, again)  # deterministic
    border = image[LABEL + LABEL, tile + GAP]  # top-left border pixel of the first neighbour
    assert tuple(border) in ((40, 170, 40), (220, 40, 40))  # green hit or red miss


def test_retrieval_command(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "retrieval.png"
    assert (
        main(["visualize", "retrieval", str(runs["pretrained"]), "-k", "2", "--num-queries", "3", "--out", str(out)])
        == 0
    )
    assert read(out).shape[0] == LABEL + 3 * (LABEL + 4 * 28 + 6 + GAP)
    assert "recall@2 over the 3 queries shown" in capsys.readouterr().out


def test_grad_cam_of_an_earlier_stage_and_its_share_on_the_moving_object(runs: dict[str, Path]) -> None:
    from fame_aug.contrib.moco.cam import moving_pixels, share_on

    model, _, config = load_classifier(runs["a"])
    clip = read_centre_clip(runs["video0"], config)[None]
    maps, predicted, _ = class_activation_maps(model, clip, layer="layer2")
    assert maps.shape == (1, 8, 28, 28) and maps.max() == pytest.approx(1.0)
    assert predicted[0] == class_activation_maps(model, clip)[1][0]  # the same prediction as CAM's
    with pytest.raises(ValueError, match="layer must name a stage"):
        class_activation_maps(model, clip, layer="layer9")
    # moving pixels: what differs from the clip's still background (a square crossing a still scene)
    still = np.full((1, 6, 20, 20, 3), 60, np.uint8)
    for t in range(6):
        still[0, t, 5:9, 2 * t : 2 * t + 4] = 250
    moving = moving_pixels(still)
    assert moving.shape == (1, 6, 20, 20) and moving[0, 0, 5:9, 0:4].all() and moving.sum() == 6 * 16
    assert share_on(moving.astype(float), moving)[0] == pytest.approx(1.0)
    assert share_on(np.ones_like(moving, float), moving)[0] == pytest.approx(moving.mean())
