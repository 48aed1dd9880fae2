"""A built-in dataset that rewards learning motion and punishes learning backgrounds.

Each video shows one object (a shape or a sprite of random color and size) moving as its class
prescribes (left to right, up, clockwise circle, zoom in, ...) over a procedural texture. Each
class has its "own" background family, a texture pattern in colors of the family's own hue, as
real scenes have theirs (a pitch is green, a pool blue). In the training split a video of class ``c`` is shown
on family ``c`` with probability ``bias`` and on one of the other families otherwise; in the
test split the family is drawn uniformly, independent of the class. A model that learned the
backgrounds scores near chance on the test split; a model that learned the motion does not.

The files are real videos in UCF101's layout (``videos/<Class>/v_<Class>_gXX_cYY.avi`` and
``splits/classInd.txt``, ``trainlist01.txt``, ``testlist01.txt``), so every loader and loop runs
on them unchanged: ``UCF101(out / "videos", out / "splits", train=False)``. ``metadata.json``
records every parameter and, per video, its split, class, background family, object shape and
color, and pan.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fame_aug.data.synthetic import BACKGROUND_KINDS, SHAPES, background_texture, draw_object, random_colors

__all__ = ["MOTIONS", "BackgroundBiasConfig", "family_hue", "make_background_bias_dataset", "render_video"]

MOTIONS = (
    "LeftToRight",
    "RightToLeft",
    "MoveUp",
    "MoveDown",
    "Clockwise",
    "Anticlockwise",
    "ZoomIn",
    "ZoomOut",
    "DiagonalUp",
    "DiagonalDown",
)
_CODECS = {"ffv1": "FFV1", "mjpg": "MJPG"}
_MARKER = "metadata.json"
_MADE_BY = "fame-aug make-synthetic"  # in the marker: what --overwrite may delete was written here


@dataclass(frozen=True)
class BackgroundBiasConfig:
    """Parameters of the dataset (all recorded in ``metadata.json``).

    Attributes:
        classes: number of motion classes, 2 to 10 (each with its own background family).
        train_per_class: training videos per class.
        test_per_class: test videos per class.
        frames: frames per video.
        size: frame side in pixels.
        bias: probability that a training video shows its class's own background family.
        pan: probability that a video has a slow camera pan over a larger texture.
        object_size: ``(low, high)``: the object's radius is drawn uniformly between them, in
            units of the frame side (zooming classes scale it by 0.45 to 1.75 over the video).
        hue_spread: each background family has its own hue (family ``k`` of ``n``: ``k / n`` of
            the hue circle) and its textures' colors stray from it by at most this much, so a
            family is told apart by its colors as well as its pattern: a background shortcut a
            model finds at once. None draws texture colors uniformly over RGB, independent of
            the family (the datasets of fame-aug 0.1), leaving the pattern alone to tell families apart.
        seed: everything is deterministic given the seed.
        codec: ``"ffv1"`` (lossless, default) or ``"mjpg"``.
    """

    classes: int = 8
    train_per_class: int = 96
    test_per_class: int = 16
    frames: int = 32
    size: int = 64
    bias: float = 0.8
    pan: float = 0.0
    object_size: tuple[float, float] = (0.09, 0.14)
    hue_spread: float | None = 0.04
    seed: int = 0
    codec: str = "ffv1"

    def __post_init__(self) -> None:
        if not 2 <= self.classes <= len(MOTIONS):
            raise ValueError(f"classes must be between 2 and {len(MOTIONS)}, got {self.classes}")
        for name, low in (("train_per_class", 1), ("test_per_class", 1), ("frames", 2), ("size", 16)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("bias", "pan"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
        smallest, largest = (float(v) for v in self.object_size) if len(self.object_size) == 2 else (0.0, -1.0)
        if not 0.0 < smallest <= largest <= 0.5:
            raise ValueError(f"object_size must be (low, high) with 0 < low <= high <= 0.5, got {self.object_size!r}")
        object.__setattr__(self, "object_size", (smallest, largest))  # a list from JSON becomes the tuple
        spread = self.hue_spread
        if spread is not None and (
            isinstance(spread, bool) or not isinstance(spread, int | float) or not 0 <= spread <= 0.5
        ):
            raise ValueError(f"hue_spread must be None or lie in [0, 0.5], got {spread!r}")
        if self.codec not in _CODECS:
            raise ValueError(f"codec must be one of {tuple(_CODECS)}, got {self.codec!r}")


def _track(motion: str, frames: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Object centre (frames, 2) in units of the frame side, and scale (frames,), for a motion class."""
    t = np.linspace(0.0, 1.0, frames) * rng.uniform(0.8, 1.0)  # a little speed variation
    t = t + rng.uniform(0.0, 1.0 - t[-1])
    scale = np.ones(frames)
    if motion in ("Clockwise", "Anticlockwise"):
        sign = 1.0 if motion == "Clockwise" else -1.0  # image y points down: +angle turns clockwise
        angle = rng.uniform(0, 2 * math.pi) + sign * 2 * math.pi * t
        radius = rng.uniform(0.2, 0.28)
        middle = 0.5 + rng.uniform(-0.05, 0.05, size=2)
        centre = middle + radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    elif motion in ("ZoomIn", "ZoomOut"):
        growth = 0.45 + 1.3 * t
        scale = growth if motion == "ZoomIn" else growth[::-1].copy()
        centre = np.tile(0.5 + rng.uniform(-0.1, 0.1, size=2), (frames, 1))
    else:  # straight lines
        along = 0.15 + 0.7 * t
        across = np.full(frames, 0.5 + rng.uniform(-0.2, 0.2))
        x, y = {
            "LeftToRight": (along, across),
            "RightToLeft": (1 - along, across),
            "MoveUp": (across, 1 - along),
            "MoveDown": (across, along),
            "DiagonalUp": (along, 1 - along + (across - 0.5) / 2),
            "DiagonalDown": (along, along + (across - 0.5) / 2),
        }[motion]
        centre = np.stack([x, y], axis=1)
    return centre, scale


def render_video(
    motion: str,
    family: str,
    frames: int,
    size: int,
    rng: np.random.Generator,
    pan: bool = False,
    object_size: tuple[float, float] = (0.09, 0.14),
    hue: float | None = None,
    hue_spread: float = 0.04,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One video: uint8 RGB (frames, size, size, 3), bool object masks, and what was drawn.

    Args:
        motion: one of ``MOTIONS``.
        family: one of ``BACKGROUND_KINDS``.
        frames: number of frames.
        size: frame side.
        rng: source of randomness.
        pan: move the camera slowly over a larger texture.
        object_size: range of the object's radius, in units of the frame side.
        hue: the background's hue family (a fraction of the hue circle); None: random colors.
        hue_spread: how far the background's colors may stray from ``hue``.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    margin = size // 2 if pan else 0
    texture = background_texture(family, size + margin, rng, hue=hue, hue_spread=hue_spread)
    centre, scale = _track(motion, frames, rng)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    color = random_colors(rng, 1)[0]
    sprite = rng.integers(0, 256, size=(4, 4, 3)).astype(np.uint8)
    radius = size * rng.uniform(*object_size)
    pan_direction = rng.uniform(0, 2 * math.pi)
    video = np.empty((frames, size, size, 3), np.uint8)
    masks = np.zeros((frames, size, size), bool)
    for t in range(frames):
        if pan:  # the camera drifts across the texture by about half a frame over the video
            offset = margin / 2 + (t / max(frames - 1, 1) - 0.5) * margin * np.array(
                [math.cos(pan_direction), math.sin(pan_direction)]
            )
            top, left = (round(v) for v in offset.clip(0, margin)[::-1])
            video[t] = texture[top : top + size, left : left + size]
        else:
            video[t] = texture
        masks[t] = draw_object(video[t], shape, tuple(centre[t] * size), radius * scale[t], color, sprite)
    info = {
        "motion": motion,
        "background": family,
        "shape": shape,
        "color": color.astype(int).tolist(),
        "pan": bool(pan),
    }
    return video, masks, info


def _write_video(path: Path, video: np.ndarray, codec: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*_CODECS[codec]), 25, (video.shape[2], video.shape[1]))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {codec} video to {path}")
    try:
        for frame in video:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def family_hue(index: int, config: BackgroundBiasConfig) -> dict[str, Any]:
    """``render_video``'s ``hue`` and ``hue_spread`` for background family ``index`` of a dataset."""
    if config.hue_spread is None:
        return {"hue": None}
    return {"hue": index / config.classes, "hue_spread": config.hue_spread}


_SPLIT_FILES = ("splits/classInd.txt", "splits/trainlist01.txt", "splits/testlist01.txt")


def _remove_own_dataset(out: Path) -> None:
    """Delete a dataset this module wrote in ``out``: its files only, and only if nothing else is there.

    The marker must say this module made it, and every file in the folder must be one it lists;
    otherwise nothing is deleted and ``ValueError`` names what is not ours.
    """
    try:
        metadata = json.loads((out / _MARKER).read_text())
        if metadata.get("made_by") != _MADE_BY:
            raise ValueError("not ours")
        own = {_MARKER, *_SPLIT_FILES, *(f"videos/{record['path']}" for record in metadata["videos"])}
    except Exception:
        raise ValueError(
            f"{out} does not hold a dataset made by make-synthetic (no valid {_MARKER} of ours); nothing was "
            "deleted: choose a new folder"
        ) from None
    present = {path.relative_to(out).as_posix() for path in out.rglob("*") if not path.is_dir()}
    foreign = sorted(present - own)
    if foreign:
        raise ValueError(
            f"{out} holds {len(foreign)} files make-synthetic did not write ({', '.join(foreign[:3])}); nothing "
            "was deleted: move them or choose a new folder"
        )
    for relative in sorted(present):
        (out / relative).unlink()
    for folder in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        folder.rmdir()  # empty now: every file in it was ours


def make_background_bias_dataset(
    out: str | Path, config: BackgroundBiasConfig | None = None, overwrite: bool = False
) -> dict:
    """Write the dataset to ``out`` and return its metadata.

    Args:
        out: folder to create (must not exist or be empty, unless ``overwrite`` and it holds a
            dataset made by this function).
        config: the parameters (defaults: 8 classes, 96 + 16 videos each, 32 frames of 64x64).
        overwrite: replace a dataset previously written here: only if ``metadata.json`` says
            this function made it and the folder holds no file it did not write (then only
            its files are deleted); otherwise ``ValueError`` and nothing is deleted.

    Returns:
        The metadata written to ``out / "metadata.json"``, with per-split statistics.
    """
    config = config or BackgroundBiasConfig()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"{out} is not empty; choose a new folder, or replace a dataset made there before "
                f"with the overwrite option"
            )
        _remove_own_dataset(out)
    created = not out.exists()
    try:
        return _write_dataset(out, config)
    except BaseException:  # a full disk, Ctrl-C: leave no half-written dataset (out was empty)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        elif out.is_dir():
            for child in out.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _write_dataset(out: Path, config: BackgroundBiasConfig) -> dict[str, Any]:
    """Render and write every video, the split files and ``metadata.json`` into the empty ``out``."""
    rng = np.random.default_rng(config.seed)
    motions = MOTIONS[: config.classes]
    families = BACKGROUND_KINDS[: config.classes]
    records = []
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for split, per_class in (("train", config.train_per_class), ("test", config.test_per_class)):
        for label, motion in enumerate(motions):
            for n in range(per_class):
                if split == "train" and rng.random() < config.bias:
                    family = families[label]
                elif split == "train":
                    family = families[rng.choice([f for f in range(config.classes) if f != label])]
                else:
                    family = families[int(rng.integers(config.classes))]
                video, _, info = render_video(
                    motion,
                    family,
                    config.frames,
                    config.size,
                    rng,
                    pan=bool(rng.random() < config.pan),
                    object_size=config.object_size,
                    **family_hue(families.index(family), config),
                )
                group = n // 4 + 1 + (0 if split == "train" else 50)  # test groups never meet train groups
                relative = f"{motion}/v_{motion}_g{group:02d}_c{n % 4 + 1:02d}.avi"
                _write_video(out / "videos" / relative, video, config.codec)
                lists[split].append(f"{relative} {label + 1}" if split == "train" else relative)
                records.append({"path": relative, "split": split, "label": label, **info})
    splits = out / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    (splits / "classInd.txt").write_text("".join(f"{i + 1} {m}\n" for i, m in enumerate(motions)))
    (splits / "trainlist01.txt").write_text("".join(line + "\n" for line in lists["train"]))
    (splits / "testlist01.txt").write_text("".join(line + "\n" for line in lists["test"]))
    stats = {}
    for split in ("train", "test"):
        rows = [r for r in records if r["split"] == split]
        own = sum(r["background"] == families[r["label"]] for r in rows)
        stats[split] = {"videos": len(rows), "own_background_share": own / len(rows)}
    metadata = {
        "made_by": _MADE_BY,
        "config": asdict(config),
        "classes": list(motions),
        "backgrounds": list(families),
        "stats": stats,
        "videos": records,
    }
    (out / _MARKER).write_text(json.dumps(metadata, indent=1))
    return metadata
