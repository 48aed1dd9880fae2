"""Procedural clips: textured backgrounds with a moving object, and the object's masks.

They need no download, and because the object's pixels are known they show what FAME's mask
finds: ``fame-aug demo`` draws them, tests use them as ground truth, and
:mod:`fame_aug.data.background_bias` builds its dataset from them.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "BACKGROUND_KINDS",
    "RAMPS",
    "SHAPES",
    "background_texture",
    "draw_object",
    "hue_colors",
    "moving_object_clips",
    "random_colors",
]

BACKGROUND_KINDS = ("stripes", "checkers", "noise", "gradient", "blobs", "dots", "rings", "grid", "plaid", "waves")
SHAPES = ("disc", "square", "triangle", "diamond", "star", "sprite")
# How a generated camera's pan speed changes over a clip (``moving_object_clips(ramp=...)``).
RAMPS = ("none", "up", "down")


def random_colors(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 3) float32 RGB colors, each channel uniform over the integers 0-255."""
    return rng.integers(0, 256, size=(count, 3)).astype(np.float32)


def hue_colors(rng: np.random.Generator, hue: float, spread: float) -> np.ndarray:
    """(2, 3) float32 RGB colors of one hue family: a dark and a light one.

    Each has a hue within ``spread`` of ``hue`` (fractions of the hue circle), saturation 0.5-1,
    and value 0.15-0.5 (the dark one) or 0.65-1 (the light one), so a texture of the two keeps
    its contrast.
    """
    hues = (hue + rng.uniform(-spread, spread, size=2)) % 1.0
    saturation = rng.uniform(0.5, 1.0, size=2)
    value = np.array([rng.uniform(0.15, 0.5), rng.uniform(0.65, 1.0)])
    hsv = np.stack([360.0 * hues, saturation, value], axis=1).astype(np.float32)[None]
    return 255.0 * cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]


def background_texture(
    kind: str,
    height: int,
    rng: np.random.Generator,
    width: int | None = None,
    hue: float | None = None,
    hue_spread: float = 0.04,
) -> np.ndarray:
    """A (height, width, 3) uint8 texture of one procedural family, with random colors and scale.

    Args:
        kind: one of ``BACKGROUND_KINDS``.
        height: rows in pixels.
        rng: source of randomness (colors, scale, orientation, phase).
        width: columns (default ``height``).
        hue: None draws the texture's two colors uniformly over RGB; a fraction of the hue
            circle draws them from that hue family (:func:`hue_colors`).
        hue_spread: how far the colors' hue may stray from ``hue``.
    """
    if kind not in BACKGROUND_KINDS:
        raise ValueError(f"kind must be one of {BACKGROUND_KINDS}, got {kind!r}")
    width = height if width is None else width
    side = max(height, width)
    low, high = random_colors(rng, 2) if hue is None else hue_colors(rng, hue, hue_spread)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / side
    if kind == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(0.08, 0.25)
        weight = (np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period) > 0).astype(np.float32)
    elif kind == "checkers":
        cells = int(rng.integers(4, 12))
        weight = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2).astype(np.float32)
    elif kind == "noise":
        cells = max(2, side // 8)
        coarse = rng.random((cells, cells)).astype(np.float32)
        weight = cv2.resize(coarse, (side, side), interpolation=cv2.INTER_CUBIC)[:height, :width].clip(0, 1)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        weight = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) / np.sqrt(2) + 0.5
    elif kind == "blobs":
        weight = np.zeros((height, width), np.float32)
        for _ in range(int(rng.integers(4, 9))):
            cy, cx = rng.random(2)
            radius = rng.uniform(0.05, 0.2)
            weight = np.maximum(weight, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2)))
    elif kind == "dots":
        period = rng.uniform(0.1, 0.2)
        fy, fx = (yy / period) % 1 - 0.5, (xx / period) % 1 - 0.5
        weight = (fy**2 + fx**2 < rng.uniform(0.06, 0.15)).astype(np.float32)
    elif kind == "rings":
        cy, cx = rng.random(2)
        period = rng.uniform(0.08, 0.2)
        weight = (np.sin(2 * np.pi * np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / period) > 0).astype(np.float32)
    elif kind == "grid":
        period, line = rng.uniform(0.1, 0.25), rng.uniform(0.15, 0.3)
        weight = (((yy / period) % 1 < line) | ((xx / period) % 1 < line)).astype(np.float32)
    elif kind == "plaid":
        period = rng.uniform(0.1, 0.3)
        weight = 0.5 * (np.sin(2 * np.pi * xx / period) + np.sin(2 * np.pi * yy / (period * 1.7))) / 2 + 0.5
    else:  # waves
        period, amplitude = rng.uniform(0.1, 0.25), rng.uniform(0.03, 0.1)
        weight = (np.sin(2 * np.pi * (yy + amplitude * np.sin(2 * np.pi * xx / 0.3)) / period) > 0).astype(np.float32)
    texture = low[None, None] * (1 - weight[..., None]) + high[None, None] * weight[..., None]
    return texture.clip(0, 255).astype(np.uint8)


def draw_object(
    frame: np.ndarray,
    shape: str,
    centre: tuple[float, float],
    radius: float,
    color: np.ndarray,
    sprite: np.ndarray | None = None,
) -> np.ndarray:
    """Draw ``shape`` in place on ``frame`` (H, W, 3) uint8; returns the object's bool mask.

    ``color`` fills the shape; ``sprite``, a small (k, k, 3) uint8 pattern, is drawn instead
    when ``shape == "sprite"`` (and needed only then).
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    if shape == "sprite" and sprite is None:
        raise ValueError('shape "sprite" needs a sprite: a (k, k, 3) uint8 pattern')
    height, width = frame.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    cx, cy = centre
    r = max(radius, 1.0)
    if shape == "disc":
        cv2.circle(mask, (round(cx), round(cy)), round(r), 1, -1)
    elif shape in ("square", "sprite"):
        cv2.rectangle(mask, (round(cx - r), round(cy - r)), (round(cx + r), round(cy + r)), 1, -1)
    else:
        if shape == "triangle":
            angles = np.radians([-90, 30, 150])
            radii = np.full(3, r * 1.2)
        elif shape == "diamond":
            angles = np.radians([-90, 0, 90, 180])
            radii = np.array([r * 1.2, r * 0.8, r * 1.2, r * 0.8])
        else:  # star
            angles = np.radians(np.arange(10) * 36 - 90)
            radii = np.where(np.arange(10) % 2 == 0, r * 1.3, r * 0.55)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [points.round().astype(np.int32)], 1)
    inside = mask > 0
    if sprite is not None and shape == "sprite":
        side = 2 * round(r) + 1
        pattern = cv2.resize(sprite, (side, side), interpolation=cv2.INTER_NEAREST)
        top, left = round(cy - r), round(cx - r)
        ys, xs = np.nonzero(inside)
        frame[ys, xs] = pattern[(ys - top).clip(0, side - 1), (xs - left).clip(0, side - 1)]
    else:
        frame[inside] = color.astype(np.uint8)
    return inside


def moving_object_clips(
    num_clips: int = 4,
    num_frames: int = 16,
    size: int = 112,
    seed: int = 0,
    pan: float = 0.0,
    zoom: float = 0.0,
    rotate: float = 0.0,
    track: bool = False,
    ramp: str = "none",
) -> tuple[np.ndarray, np.ndarray]:
    """Clips of one object crossing a textured background in a straight line.

    Each clip draws its own background family, colors, object shape, size, direction and speed.
    With ``pan > 0`` the camera also moves: the background slides by ``pan`` pixels per frame in
    a random direction of its own (whole pixels), while the object's path in the frame is as
    without it, so frame differences see the whole background change. ``zoom`` and ``rotate``
    make the camera zoom (the view's scale changes by the factor ``1 + zoom`` per frame, about
    the frame's centre; the object grows or shrinks with it) and roll (``rotate`` degrees per
    frame, in a random sense). With ``track=True`` the camera follows the object: it stays near
    the frame's centre (drifting by a tenth of its usual travel) while the background moves.
    ``ramp="up"`` makes the pan speed up evenly from still to ``pan`` pixels per frame at the
    clip's end, ``ramp="down"`` slow down from ``pan`` to still (a camera catching up with an
    object, or settling on it). The defaults (no zoom, no rotation, no tracking, no ramp) give the
    same clips as before these options.

    Args:
        num_clips: clips to make.
        num_frames: frames per clip.
        size: frame side in pixels.
        seed: everything is deterministic given the seed.
        pan: camera speed in pixels per frame (0: a static camera).
        zoom: relative change of the view's scale per frame, in [-0.05, 0.1] (0.02: 2 % closer per frame).
        rotate: camera roll in degrees per frame, in [0, 10].
        track: whether the camera follows the object (the object nearly still in the frame).
        ramp: ``"none"`` (a steady pan), ``"up"`` or ``"down"`` (its speed changing evenly).

    Returns:
        The pair ``(clips, masks)`` of uint8 RGB (N, T, size, size, 3) clips and bool object masks
        (N, T, size, size).
    """
    if num_clips < 1 or num_frames < 1 or size < 8:
        raise ValueError(f"need num_clips >= 1, num_frames >= 1, size >= 8; got {num_clips}, {num_frames}, {size}")
    if not 0 <= pan <= size:
        raise ValueError(f"pan must be between 0 and size={size} pixels per frame, got {pan!r}")
    if not -0.05 <= zoom <= 0.1:
        raise ValueError(f"zoom must be between -0.05 and 0.1 per frame, got {zoom!r}")
    if not 0 <= rotate <= 10:
        raise ValueError(f"rotate must be between 0 and 10 degrees per frame, got {rotate!r}")
    if ramp not in RAMPS:
        raise ValueError(f"ramp must be one of {RAMPS}, got {ramp!r}")
    rng = np.random.default_rng(seed)
    clips = np.empty((num_clips, num_frames, size, size, 3), np.uint8)
    masks = np.zeros((num_clips, num_frames, size, size), bool)
    travelled = _pan_travel(num_frames, pan, ramp)
    extent = int(np.ceil(travelled[-1]))  # how far the camera travels
    warped = zoom != 0 or rotate != 0
    # Room around the view for its corners when it turns, and for its growth when it zooms out.
    smallest = min(1.0, (1 + zoom) ** max(num_frames - 1, 0))
    margin = int(np.ceil(size * (np.sqrt(2) / smallest - 1) / 2)) + 1 if warped else 0
    for n in range(num_clips):
        scene = background_texture(BACKGROUND_KINDS[int(rng.integers(5))], size + extent + 2 * margin, rng)
        color = random_colors(rng, 1)[0]
        radius = size * rng.uniform(0.08, 0.16)
        shape = SHAPES[int(rng.integers(2))]
        angle = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        travel = size * rng.uniform(0.35, 0.6)
        start = size / 2 - direction * travel / 2
        camera = _camera_path(rng, travelled, extent) if pan > 0 else np.zeros((num_frames, 2), int)
        if track:  # the camera follows the object: it drifts by a tenth of its travel around the centre
            start, travel = size / 2 - direction * travel / 20, travel / 10
        roll = rotate * (1 if rng.random() < 0.5 else -1) if warped else 0.0
        for t in range(num_frames):
            centre = start + direction * travel * t / max(num_frames - 1, 1)
            top, left = camera[t]
            scale = (1 + zoom) ** t
            if warped:
                clips[n, t] = _camera_view(scene, size, (top + margin, left + margin), scale, roll * t)
            else:
                clips[n, t] = scene[top : top + size, left : left + size]
            masks[n, t] = draw_object(clips[n, t], shape, (centre[0], centre[1]), radius * scale, color)
    return clips, masks


def _camera_view(scene: np.ndarray, size: int, corner: tuple[int, int], scale: float, degrees: float) -> np.ndarray:
    """The (size, size) view of ``scene`` at ``corner`` (row, col of its unturned top-left corner).

    The view is magnified by ``scale`` and turned by ``degrees`` about its centre (bilinear).
    """
    half = (size - 1) / 2
    angle = np.radians(degrees)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    # Frame pixel (x, y) -> scene pixel: centre + R (p - half) / scale.
    matrix = np.array(
        [
            [cos, -sin, corner[1] + half - cos * half + sin * half],
            [sin, cos, corner[0] + half - sin * half - cos * half],
        ],
        np.float64,
    )
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(scene, matrix, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT)


def _pan_travel(num_frames: int, pan: float, ramp: str) -> np.ndarray:
    """(T,) distance the camera has travelled at each frame: ``pan`` px per frame, or ramping (``RAMPS``)."""
    if ramp == "none" or num_frames < 2:
        return pan * np.arange(num_frames, dtype=np.float64)
    share = np.arange(1, num_frames) / (num_frames - 1)  # the speed of each step: the last (first) at ``pan``
    steps = pan * (share if ramp == "up" else share[::-1])
    return np.concatenate([[0.0], np.cumsum(steps)])


def _camera_path(rng: np.random.Generator, travelled: np.ndarray, extent: int) -> np.ndarray:
    """(T, 2) whole-pixel top-left corners of a view sliding ``travelled`` px along a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    path = np.array([np.sin(angle), np.cos(angle)])[None] * travelled[:, None]
    path -= path.min(axis=0)  # start where the whole path fits in the (size + extent) scene
    return np.clip(np.round(path), 0, extent).astype(int)
