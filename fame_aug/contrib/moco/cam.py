"""Class activation maps (Zhou et al., CVPR 2016) of a fine-tuned video classifier.

The classifier's weights for the predicted class, applied to the last convolutional feature
map, give a (T', H', W') map of where the evidence for that class lies; it is upsampled to the
clip's frames in space and time and drawn as a heat map (Figure 2 of the FAME supplementary).
A small model's last map can be coarse (2 x 2 cells for the cpu-demo model's 28-pixel clips):
``layer=`` takes the map of an earlier stage instead, weighted by the gradient of the predicted
class's score (Grad-CAM, Selvaraju et al., ICCV 2017; for the last map it equals CAM up to scale).
:func:`moving_pixels` and :func:`share_on` measure how much of a map lies on what moves.
A figure of a trained model, so it lives with the training code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from fame_aug import still_background
from fame_aug.contrib.moco.builder import build_backbone
from fame_aug.contrib.moco.checkpoint import load_checkpoint
from fame_aug.contrib.moco.models import VideoBackbone
from fame_aug.data import center_crop, open_video, to_float_clips
from fame_aug.data.presets import KINETICS_MEAN, KINETICS_STD
from fame_aug.visualize.figures import clip_rows_figure, heatmap_overlay

__all__ = ["cam_figure", "class_activation_maps", "load_classifier", "moving_pixels", "read_centre_clip", "share_on"]


def load_classifier(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[VideoBackbone, list[str], dict[str, Any]]:
    """A fine-tuned classifier from a ``fame-aug finetune`` checkpoint: ``(model, classes, config)``."""
    state = load_checkpoint(path, device)
    config, classes = state.get("config") or {}, state.get("classes")
    if not classes or "model" not in state or "backbone" not in config:
        raise ValueError(
            f"{path} is not a fine-tuning checkpoint (no classes): class activation maps need a classifier"
        )
    model = build_backbone(config, num_classes=len(classes))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), list(classes), config


def read_centre_clip(path: str | Path, config: dict[str, Any]) -> np.ndarray:
    """The clip at the middle of a video, as the checkpoint's model saw clips: uint8 (T, S, S, 3)."""
    frames, stride, crop = config.get("num_frames", 16), config.get("stride", 2), config.get("crop_size", 112)
    video = open_video(path)
    span = (frames - 1) * stride + 1
    start = max((video.num_frames - span) // 2, 0)
    indices = [min(start + i * stride, video.num_frames - 1) for i in range(frames)]
    clip = video.read(indices, tuple(config.get("frame_size", [128, 171])))
    return center_crop(clip, crop)


def class_activation_maps(
    model: VideoBackbone, clips: np.ndarray, layer: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CAMs of uint8 (N, T, H, W, 3) clips for the model's predicted classes.

    Args:
        model: a classifier (``forward_features``, ``forward_head``, ``fc``).
        clips: uint8 clips as the model saw them (cropped).
        layer: None for the last feature map weighted by the classifier (CAM); the name of an
            earlier stage (``"layer2"``) for its map weighted by the predicted score's gradient
            (Grad-CAM).

    Returns:
        ``(maps (N, T, H, W) in [0, 1], predicted classes (N,), their probabilities (N,))``.
    """
    device = next(model.parameters()).device
    video = to_float_clips(torch.as_tensor(clips, device=device))
    mean = torch.tensor(KINETICS_MEAN, device=device).view(1, 3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD, device=device).view(1, 3, 1, 1, 1)
    video = (video - mean) / std
    if layer is None:
        with torch.no_grad():
            features = model.forward_features(video)
            probabilities = F.softmax(model.forward_head(features), dim=1)
            predicted = probabilities.argmax(dim=1)
            classifier = cast(torch.nn.Linear, model.fc)  # a classifier checkpoint's fc is a Linear layer
            weights = classifier.weight[predicted]  # (N, C): the predicted classes' classifier weights
    else:
        stage = getattr(model, layer, None)
        if not isinstance(stage, torch.nn.Module):
            raise ValueError(f"layer must name a stage of the model (e.g. 'layer2'), got {layer!r}")
        captured: list[torch.Tensor] = []
        hook = stage.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
        try:
            with torch.enable_grad():
                logits = model(video)
                predicted = logits.argmax(dim=1)
                score = logits.gather(1, predicted[:, None]).sum()
                (gradient,) = torch.autograd.grad(score, captured[0])
        finally:
            hook.remove()
        probabilities = F.softmax(logits.detach(), dim=1)
        features, weights = captured[0].detach(), gradient.mean(dim=(2, 3, 4))
    maps = torch.einsum("nc,ncthw->nthw", weights, features).relu()
    maps = F.interpolate(maps[:, None], size=video.shape[2:], mode="trilinear", align_corners=False)[:, 0]
    maps = maps / maps.flatten(1).amax(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
    confidence = probabilities.gather(1, predicted[:, None])[:, 0]
    return maps.cpu().numpy(), predicted.cpu().numpy(), confidence.cpu().numpy()


def moving_pixels(clips: np.ndarray, threshold: float = 0.1, grow: int = 0) -> np.ndarray:
    """Where uint8 (N, T, H, W, 3) clips differ from their still background: (N, T, H, W) bool.

    A pixel moves in a frame when one of its channels is more than ``threshold`` (of the value
    range) away from the clip's still background (each pixel's median over the frames,
    :func:`fame_aug.still_background`): with a still camera, the moving object frame by frame.
    ``grow`` widens the region by that many pixels in each frame (a coarse map's cells cover the
    object's edges too).
    """
    video = to_float_clips(torch.as_tensor(clips))
    moving = ((video - still_background(video)).abs().amax(dim=1) > threshold).float()  # (N, T, H, W)
    if grow:
        moving = F.max_pool2d(moving.flatten(0, 1), 2 * grow + 1, stride=1, padding=grow).view_as(moving)
    return moving.numpy() > 0


def share_on(maps: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Per clip, the share of the maps' total that lies in ``region`` (same (N, T, H, W) shape)."""
    total = maps.reshape(len(maps), -1).sum(axis=1)
    inside = (maps * region).reshape(len(maps), -1).sum(axis=1)
    return inside / np.maximum(total, 1e-12)


def cam_figure(
    checkpoints: Sequence[str | Path],
    videos: Sequence[str | Path],
    num_frames: int = 8,
    names: Sequence[str] | None = None,
    min_side: int = 96,
    layer: str | None = None,
) -> np.ndarray:
    """Per video: its frames, then one row of class activation maps per checkpoint.

    Args:
        checkpoints: fine-tuning checkpoints (the first decides how clips are cut; a second one
            gives the comparison row, as in Figure 2 of the supplementary).
        videos: video files or frame folders.
        num_frames: frames shown per row.
        names: row labels of the checkpoints (default: their folder names).
        min_side: enlarge smaller frames to this side.
        layer: None for CAM on the last feature map, or a stage's name for Grad-CAM on its map
            (see :func:`class_activation_maps`).
    """
    if not checkpoints or not videos:
        raise ValueError("cam_figure needs at least one checkpoint and one video")
    models = [load_classifier(path) for path in checkpoints]
    clips = np.stack([read_centre_clip(path, models[0][2]) for path in videos])
    labels = list(names) if names is not None else [Path(p).parent.name or Path(p).stem for p in checkpoints]
    outputs = [class_activation_maps(model, clips, layer) for model, _, _ in models]
    rows: list[tuple[str, np.ndarray]] = []
    for n, path in enumerate(videos):
        rows.append((f"{Path(path).stem[:32]}: frames", clips[n]))
        for label, (_, classes, _), (maps, predicted, confidence) in zip(labels, models, outputs, strict=True):
            method = "CAM" if layer is None else f"Grad-CAM ({layer})"
            text = f"{label}: {method} of '{classes[predicted[n]]}' ({confidence[n]:.0%})"
            rows.append((text, heatmap_overlay(clips[n], maps[n])))
    return clip_rows_figure(rows, num_frames, min_side)
