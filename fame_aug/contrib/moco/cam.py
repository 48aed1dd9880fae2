"""Class activation maps (Zhou et al., CVPR 2016) of a fine-tuned video classifier.

The classifier's weights for the predicted class, applied to the last convolutional feature
map, give a (T', H', W') map of where the evidence for that class lies; it is upsampled to the
clip's frames in space and time and drawn as a heat map (Figure 2 of the FAME supplementary).
A figure of a trained model, so it lives with the training code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fame_aug.contrib.moco.builder import build_backbone
from fame_aug.contrib.moco.checkpoint import load_checkpoint
from fame_aug.contrib.moco.models import VideoBackbone
from fame_aug.data import center_crop, open_video, to_float_clips
from fame_aug.data.presets import KINETICS_MEAN, KINETICS_STD
from fame_aug.visualize.figures import clip_rows_figure, heatmap_overlay

__all__ = ["cam_figure", "class_activation_maps", "load_classifier", "read_centre_clip"]


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


@torch.no_grad()
def class_activation_maps(model: VideoBackbone, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CAMs of uint8 (N, T, H, W, 3) clips for the model's predicted classes.

    Returns:
        ``(maps (N, T, H, W) in [0, 1], predicted classes (N,), their probabilities (N,))``.
    """
    device = next(model.parameters()).device
    video = to_float_clips(torch.as_tensor(clips, device=device))
    mean = torch.tensor(KINETICS_MEAN, device=device).view(1, 3, 1, 1, 1)
    std = torch.tensor(KINETICS_STD, device=device).view(1, 3, 1, 1, 1)
    features = model.forward_features((video - mean) / std)
    probabilities = F.softmax(model.forward_head(features), dim=1)
    predicted = probabilities.argmax(dim=1)
    weights = model.fc.weight[predicted]  # (N, C): the predicted classes' classifier weights
    maps = torch.einsum("nc,ncthw->nthw", weights, features).relu()
    maps = F.interpolate(maps[:, None], size=video.shape[2:], mode="trilinear", align_corners=False)[:, 0]
    maps = maps / maps.flatten(1).amax(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)
    confidence = probabilities.gather(1, predicted[:, None])[:, 0]
    return maps.cpu().numpy(), predicted.cpu().numpy(), confidence.cpu().numpy()


def cam_figure(
    checkpoints: Sequence[str | Path],
    videos: Sequence[str | Path],
    num_frames: int = 8,
    names: Sequence[str] | None = None,
    min_side: int = 96,
) -> np.ndarray:
    """Per video: its frames, then one row of class activation maps per checkpoint.

    Args:
        checkpoints: fine-tuning checkpoints (the first decides how clips are cut; a second one
            gives the comparison row, as in Figure 2 of the supplementary).
        videos: video files or frame folders.
        num_frames: frames shown per row.
        names: row labels of the checkpoints (default: their folder names).
        min_side: enlarge smaller frames to this side.
    """
    if not checkpoints or not videos:
        raise ValueError("cam_figure needs at least one checkpoint and one video")
    models = [load_classifier(path) for path in checkpoints]
    clips = np.stack([read_centre_clip(path, models[0][2]) for path in videos])
    labels = list(names) if names is not None else [Path(p).parent.name or Path(p).stem for p in checkpoints]
    outputs = [class_activation_maps(model, clips) for model, _, _ in models]
    rows: list[tuple[str, np.ndarray]] = []
    for n, path in enumerate(videos):
        rows.append((f"{Path(path).stem[:32]}: frames", clips[n]))
        for label, (_, classes, _), (maps, predicted, confidence) in zip(labels, models, outputs, strict=True):
            text = f"{label}: CAM of '{classes[predicted[n]]}' ({confidence[n]:.0%})"
            rows.append((text, heatmap_overlay(clips[n], maps[n])))
    return clip_rows_figure(rows, num_frames, min_side)
