"""FAME as pure functions: find the moving foreground of a clip, merge it onto a background.

Both functions act on float clip batches in [0, 1], laid out (B, C, T, H, W) ("BCTHW", the
default) or (B, T, C, H, W) ("BTCHW"). ``FAME`` in :mod:`fame_aug.fame` is a thin random
module over them.
"""

from __future__ import annotations

import math

import torch

from fame_aug import _checks
from fame_aug._checks import MASK_MODES
from fame_aug._filters import ReflectGaussianBlur, blur_kernel_size
from fame_aug._stabilize import stabilized_saliency

__all__ = ["MASK_MODES", "background_erasing", "blur_kernel_size", "foreground_mask", "merge", "still_background"]

# Shares of the normalised motion map that seed the color model (docs/algorithm.md, section 1,
# step 3). Fixed by the published method, independent of beta.
_FOREGROUND_SEED_SHARE = 0.5
_BACKGROUND_SEED_SHARE = 0.1
_HSV_BINS = 1000  # 10 x 10 x 10 quantisation of (hue x, hue y, value)
_TWO_PI = 2 * math.pi


def foreground_mask(
    video: torch.Tensor,
    beta: float = 0.5,
    mode: str = "official",
    data_format: str = "BCTHW",
) -> torch.Tensor:
    r"""Foreground mask of each clip: the ``int(beta * H * W)`` pixels that move the most.

    ``mode="official"`` is the published algorithm (docs/algorithm.md, section 1): motion saliency
    from frame differences, blurred and normalised, refined by a per-clip color model learned
    from the motion map, blurred again, then the top pixels. ``mode="motion"`` skips the color
    refinement (steps 1, 2 and 5): faster, and it works for any number of channels.
    ``mode="stabilized"`` removes the camera's motion first: it estimates the background's
    affine motion between consecutive frames (pan, tilt, zoom, roll), robustly, so that the
    object is the outlier, and scores each pixel by its frame differences after alignment, more
    so where alignment makes them larger than without it (an object the camera follows), each
    frame pair counting less the more background its alignment leaves unexplained; a still
    camera gets the plain frame differences. Then it blurs and keeps the top pixels as
    ``"motion"`` does. It keeps the moving object when the camera pans, zooms, rolls or tracks the
    object, where the other modes keep the moving background; on the CPU it takes about 1.2x the
    time of ``"official"`` at 224 px and 2-3x at 112 px (see the README).

    Convention:
        - Layout: ``video`` is (B, C, T, H, W) for ``data_format="BCTHW"`` or (B, T, C, H, W)
          for ``"BTCHW"`` (any case). The mask is (B, H, W) in both: one mask per clip, shared
          by all its frames and channels.
        - Count: exactly ``int(beta * H * W)`` pixels are True in every clip, also when scores
          tie (a static clip gets an arbitrary but valid mask).
        - Color: ``mode="official"`` reads the channels as RGB in [0, 1] and reproduces the
          published masks, including its hue quirk (the hue angle in radians is multiplied by
          2*pi once more); colors outside [0, 1] are clamped for the color model only.
        - No gradient: the mask is computed without autograd, whatever ``video.requires_grad``.
        - Non-finite input: NaN and Inf count as no motion (and as black for the color model),
          so the mask keeps its exact count.
        - Camera motion (``"stabilized"``): one affine map per pair of consecutive frames,
          found within about a sixth of the frame (20 px at 112) of translation, on frames
          averaged down by a whole factor to about 56 px (112 -> 56, 224 -> 56). The fit weighs
          the frame's border most and pools each pair's coarse fit with its neighbours' in
          time; it fails when the object covers most of the border, or the camera jerks by more
          than a few pixels from one pair to the next. Parallax (a near and a far background)
          is not modelled. When no pair moves by 3 px of a 112 px frame and the unaligned frames
          fit about as well, the camera counts as still and the plain frame differences (at full
          size) are scored.
        - Blur: Gaussian with ``k = int(0.1 * min(H, W)) // 2 * 2 + 1`` taps, sigma ``k / 3``,
          reflect border (k = 11 at 112 px, 23 at 224 px).

    Args:
        video: float clips in [0, 1], shape (B, C, T, H, W) or (B, T, C, H, W), T >= 2;
            C = 3 (RGB) in ``mode="official"``.
        beta: share of pixels kept as foreground, in (0, 1).
        mode: ``"official"``, ``"motion"`` or ``"stabilized"``.
        data_format: ``"BCTHW"`` or ``"BTCHW"``.

    Returns:
        bool tensor (B, H, W) on ``video``'s device.

    Example:
        >>> video = torch.zeros(2, 3, 4, 16, 16)
        >>> video[:, :, 1::2, 4:8, 4:8] = 1.0  # a blinking square
        >>> mask = foreground_mask(video, beta=0.25, mode="motion")
        >>> mask.shape, mask.dtype, int(mask[0].sum())
        (torch.Size([2, 16, 16]), torch.bool, 64)
        >>> bool(mask[:, 4:8, 4:8].all())
        True
    """
    fmt = _checks.data_format(data_format)
    mode = _checks.mask_mode(mode)
    beta = _checks.unit_interval("beta", beta, open_interval=True)
    _checks.video(video, "video", fmt, rgb=mode == "official")
    clips = _as_bcthw(video, fmt)
    count = _checks.foreground_pixels(beta, clips.shape[-2], clips.shape[-1])
    with torch.no_grad():
        return _foreground_mask(clips.detach(), count, mode)


def merge(
    video: torch.Tensor,
    mask: torch.Tensor,
    pairs: torch.Tensor,
    background: torch.Tensor | None = None,
    data_format: str = "BCTHW",
) -> torch.Tensor:
    r"""Paste each clip's foreground onto another clip's background.

    ``out[b] = video[b] * mask[b] + source[pairs[b]] * (1 - mask[b])``, where ``source`` is
    ``background`` if given, else ``video`` itself.

    Convention:
        - Layout: ``video`` and ``background`` in ``data_format`` ("BCTHW" or "BTCHW"); the
          output keeps ``video``'s layout, dtype and device. ``mask`` is (B, H, W), shared by
          frames and channels.
        - Hard masks (bool) select: every output pixel is bit for bit the clip's own pixel or
          its partner's. Soft masks (floating point in [0, 1]) blend and are differentiable.
        - Pairing: ``pairs[b]`` indexes ``source`` (0 <= pairs[b] < len(source)); a clip paired
          with itself comes out unchanged.
        - Gradient: the output is differentiable with respect to ``video`` and ``background``;
          the gradient is ``mask`` for the foreground clip and ``1 - mask`` for its partner.
        - Non-finite values are copied like any other value from the clip that a hard mask
          selects; on the CPU the merge is a 0/1 linear blend for speed, so a NaN or Inf in the
          other clip at that pixel also yields NaN there.

    Args:
        video: float clips (B, C, T, H, W) or (B, T, C, H, W).
        mask: (B, H, W) bool, or floating point weights of the foreground clip.
        pairs: (B,) long, the source clip behind each clip.
        background: optional (N, C, T, H, W) or (N, T, C, H, W) source clips, any N >= 1, same
            dtype and device as ``video``; T may be 1, a still frame behind every frame (e.g.
            :func:`still_background`).
        data_format: ``"BCTHW"`` or ``"BTCHW"``.

    Returns:
        The merged clips, same shape, layout, dtype and device as ``video``.

    Example:
        >>> video = torch.stack([torch.zeros(3, 2, 4, 4), torch.ones(3, 2, 4, 4)])
        >>> mask = torch.zeros(2, 4, 4, dtype=torch.bool)
        >>> mask[:, :2] = True  # top half is foreground
        >>> out = merge(video, mask, pairs=torch.tensor([1, 0]))
        >>> out[0, 0, 0]
        tensor([[0., 0., 0., 0.],
                [0., 0., 0., 0.],
                [1., 1., 1., 1.],
                [1., 1., 1., 1.]])
    """
    fmt = _checks.data_format(data_format)
    _checks.video(video, "video", fmt, rgb=False)
    if background is not None:
        _checks.background(background, video, fmt, still=True)
    clips = _as_bcthw(video, fmt)
    source = clips if background is None else _as_bcthw(background, fmt)
    batch, _, _, height, width = clips.shape
    _checks.mask(mask, batch, height, width, clips.device)
    if mask.dtype != torch.bool and not clips.is_floating_point():
        raise TypeError(f"a soft (float) mask blends, so video must be float, got {clips.dtype}; use a bool mask")
    _checks.pairs(pairs, batch, source.shape[0], clips.device)
    merged = _merge(clips, mask, pairs, source, apply=None, self_source=background is None)
    return _from_bcthw(merged, fmt)


def still_background(video: torch.Tensor, data_format: str = "BCTHW") -> torch.Tensor:
    r"""Each clip's still background: every pixel's median over the clip's frames.

    An object that covers a pixel for less than half of the clip's frames leaves it, so for a
    still camera this is the scene behind the moving foreground: ``FAME(clean_background=True)``
    pastes a clip's foreground onto its partner's still background, so that the merged clip shows
    one moving object instead of two (the published merge keeps the partner's own moving object
    outside the mask). Under a moving camera it is a blurred still of the scene.

    Convention:
        - Layout: ``video`` in ``data_format`` ("BCTHW" or "BTCHW"); the result keeps that
          layout with one frame, (B, C, 1, H, W) or (B, 1, C, H, W), which broadcasts against
          the clips (``.expand_as(video)`` gives every frame without a copy).
        - Values: each output value is one of the clip's own values at that pixel and channel
          (for an even number of frames, the lower of the two middle ones): uint8 clips stay
          uint8, bit for bit.
        - Gradient: differentiable with respect to ``video`` (the gradient reaches the frame whose
          value was taken).

    Args:
        video: clips (B, C, T, H, W) or (B, T, C, H, W), float or uint8.
        data_format: ``"BCTHW"`` or ``"BTCHW"``.

    Returns:
        The still backgrounds, one frame per clip, same dtype and device as ``video``.

    Example:
        >>> video = torch.zeros(1, 3, 5, 8, 8)
        >>> for t in range(5):
        ...     video[0, :, t, 2:4, t : t + 2] = 1.0  # a square moving right
        >>> plate = still_background(video)
        >>> plate.shape, bool((plate == 0).all())  # the square is gone
        (torch.Size([1, 3, 1, 8, 8]), True)
    """
    fmt = _checks.data_format(data_format)
    _checks.video(video, "video", fmt, rgb=False)
    return _from_bcthw(_still_background(_as_bcthw(video, fmt)), fmt)


# --------------------------------------------------------------------------------------------
# Internals on (B, C, T, H, W) views. Checked input only.
# --------------------------------------------------------------------------------------------


def background_erasing(
    video: torch.Tensor,
    frames: torch.Tensor,
    weights: torch.Tensor,
    data_format: str = "BCTHW",
) -> torch.Tensor:
    r"""Background Erasing (Wang et al., CVPR 2021): blend one still frame of each clip into all its frames.

    ``out[b, :, t] = (1 - weights[b]) * video[b, :, t] + weights[b] * video[b, :, frames[b]]``.
    The still frame carries the clip's background and none of its motion, so a model asked to
    match the result with the untouched clip cannot lean on the background. The paper adds the
    weighted frame to every frame; the convex form here keeps the values in the clip's range
    (it is the paper's sum divided by ``1 + w / (1 - w)``, a change of contrast only).

    Convention:
        - Layout: ``video`` in ``data_format`` ("BCTHW" or "BTCHW"); the output keeps its
          layout, dtype and device. uint8 clips are blended in float32 and rounded back.
        - A weight of 0 leaves a clip unchanged, bit for bit.
        - Gradient: differentiable with respect to ``video`` (float clips) and ``weights``.

    Args:
        video: clips (B, C, T, H, W) or (B, T, C, H, W), float in [0, 1] or uint8.
        frames: (B,) long, the frame of each clip to blend in (0 <= frames[b] < T).
        weights: (B,) float, the still frame's weight in [0, 1].
        data_format: ``"BCTHW"`` or ``"BTCHW"``.

    Returns:
        The blended clips, same shape, layout, dtype and device as ``video``.

    Example:
        >>> video = torch.stack([torch.zeros(2, 2), torch.ones(2, 2)]).view(1, 1, 2, 2, 2)
        >>> video.shape  # one clip, one channel, frames 0 (black) and 1 (white)
        torch.Size([1, 1, 2, 2, 2])
        >>> out = background_erasing(video, frames=torch.tensor([1]), weights=torch.tensor([0.25]))
        >>> out[0, 0, :, 0, 0]  # frame 0 moves a quarter of the way to frame 1; frame 1 stays
        tensor([0.2500, 1.0000])
    """
    fmt = _checks.data_format(data_format)
    _checks.video(video, "video", fmt, rgb=False)
    clips = _as_bcthw(video, fmt)
    batch, _, length = clips.shape[:3]
    if not isinstance(frames, torch.Tensor) or frames.dtype != torch.long or tuple(frames.shape) != (batch,):
        raise TypeError(f"frames must be a ({batch},) int64 tensor of frame indices")
    if not isinstance(weights, torch.Tensor) or not weights.is_floating_point() or tuple(weights.shape) != (batch,):
        raise TypeError(f"weights must be a ({batch},) floating point tensor")
    for name, tensor in (("frames", frames), ("weights", weights)):
        if tensor.device != clips.device:
            raise ValueError(f"{name} must be on the video's device {clips.device}, got {tensor.device}")
    if not torch.compiler.is_compiling() and clips.device.type == "cpu":  # reading values would sync a GPU
        if bool(((frames < 0) | (frames >= length)).any()):
            raise ValueError(f"frames must index the clips' {length} frames, got {frames.tolist()}")
        if bool(((weights < 0) | (weights > 1)).any()):
            raise ValueError(f"weights must lie in [0, 1], got {weights.tolist()}")
    return _from_bcthw(_background_erasing(clips, frames, weights), fmt)


def _background_erasing(
    clips: torch.Tensor, frames: torch.Tensor, weights: torch.Tensor, apply: torch.Tensor | None = None
) -> torch.Tensor:
    """BE on (B, C, T, H, W); clips whose ``apply`` is False get weight 0 (unchanged)."""
    batch, channels, _, height, width = clips.shape
    index = frames.view(batch, 1, 1, 1, 1).expand(batch, channels, 1, height, width)
    still = clips.gather(2, index)  # (B, C, 1, H, W)
    if apply is not None:
        weights = torch.where(apply, weights, torch.zeros_like(weights))
    dtype = clips.dtype if clips.is_floating_point() else torch.float32
    w = weights.to(dtype).view(batch, 1, 1, 1, 1)
    blended = torch.lerp(clips.to(dtype), still.to(dtype), w)
    if clips.is_floating_point():
        return torch.where(w == 0, clips, blended)  # exactly unchanged at weight 0
    return blended.round_().clamp_(0, 255).to(clips.dtype)


def _as_bcthw(video: torch.Tensor, fmt: str) -> torch.Tensor:
    """A (B, C, T, H, W) view of ``video`` (no copy)."""
    return video if fmt == "BCTHW" else video.transpose(1, 2)


def _from_bcthw(video: torch.Tensor, fmt: str) -> torch.Tensor:
    """Back to the caller's layout (the inverse view of ``_as_bcthw``)."""
    return video if fmt == "BCTHW" else video.transpose(1, 2)


def _still_background(clips: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, H, W): the median over time of checked (B, C, T, H, W) clips."""
    return clips.median(dim=2, keepdim=True).values


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Masks are computed in float32 (float64 for float64 clips): half precision is too coarse."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _use_clip_loop(*tensors: torch.Tensor) -> bool:
    """Whether to process clip by clip (CPU, eager, no autograd).

    On the CPU, per-clip work keeps temporaries in cache and avoids page-faulting fresh
    full-size buffers; on GPUs, under ``torch.compile`` and when autograd must see the ops,
    batched tensor ops are used instead.
    """
    if torch.compiler.is_compiling() or not all(t.is_floating_point() for t in tensors):
        return False  # uint8 clips take the batched torch.where path (lerp needs floats)
    if any(t.device.type != "cpu" for t in tensors):
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def _motion_saliency(clips: torch.Tensor, with_mean_frame: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Step 1 (docs/algorithm.md): mean over the T-1 frame pairs of the channel-summed absolute difference.

    Also returns the temporal mean frame (B, C, H, W) when asked (for the color model), read
    while the clip is still in cache. Differences are written to a contiguous (C, T-1, H, W)
    buffer before they are reduced, so the result does not depend on the clip's memory layout
    (BTCHW input gives exactly the BCTHW values).
    """
    batch, channels, frames, height, width = clips.shape
    dtype = _compute_dtype(clips.dtype)
    if _use_clip_loop(clips):
        saliency = torch.empty(batch, height, width, dtype=dtype)
        mean_frame = torch.empty(batch, channels, height, width, dtype=dtype) if with_mean_frame else None
        diffs = torch.empty(channels, frames - 1, height, width, dtype=clips.dtype)
        for b in range(batch):
            clip = clips[b]
            torch.sub(clip[:, 1:], clip[:, :-1], out=diffs)
            torch.sum(diffs.abs_(), dim=(0, 1), dtype=dtype, out=saliency[b])
            if mean_frame is not None:
                torch.sum(clip, dim=1, dtype=dtype, out=mean_frame[b])
    else:
        diffs = torch.empty(batch, channels, frames - 1, height, width, dtype=clips.dtype, device=clips.device)
        torch.sub(clips[:, :, 1:], clips[:, :, :-1], out=diffs)
        saliency = diffs.abs_().sum(dim=(1, 2), dtype=dtype)
        mean_frame = clips.sum(dim=2, dtype=dtype) if with_mean_frame else None
    saliency = torch.nan_to_num_(saliency.div_(frames - 1), nan=0.0, posinf=0.0, neginf=0.0)
    if mean_frame is not None:
        mean_frame = torch.nan_to_num_(mean_frame.div_(frames), nan=0.0, posinf=0.0, neginf=0.0).clamp_(0.0, 1.0)
    return saliency, mean_frame


def _min_max_normalise(maps: torch.Tensor) -> torch.Tensor:
    """Per-map ``(m - min) / (max - min + 1e-8)``, computed as the published code does."""
    flat = maps.flatten(1)
    flat = flat - flat.amin(dim=1, keepdim=True)
    return (flat / (flat.amax(dim=1, keepdim=True) + 1e-8)).view_as(maps)


def _hsv_bins(mean_frame: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Step 3 (docs/algorithm.md): the 10x10x10 HSV bin (0..999) of every pixel of the mean frame, (B, H*W) long.

    The HSV arithmetic is ``kornia.color.rgb_to_hsv``'s, operation for operation, so that the
    bins match the published implementation bit for bit; it works in place on (B, H, W) maps
    instead of stacking channels, which makes it 1.5x faster on CPUs.
    """
    red, green, blue = mean_frame.unbind(dim=1)
    value = torch.maximum(red, green)
    torch.maximum(value, blue, out=value)
    spread = torch.minimum(red, green)
    torch.minimum(spread, blue, out=spread)
    torch.sub(value, spread, out=spread)
    saturation = (value + eps).masked_fill_(value == 0, 1.0)
    torch.div(spread, saturation, out=saturation)
    spread.masked_fill_(spread == 0, 1.0)
    # Hue sextant of the first maximal channel, in units of 60 degrees, as Kornia computes it.
    red_c, green_c, blue_c = value - red, value - green, value - blue
    from_red = blue_c - green_c
    from_green = torch.sub(red_c, blue_c, out=blue_c).add_(2.0 * spread)
    from_blue = torch.sub(green_c, red_c, out=green_c).add_(4.0 * spread)
    red_is_max = (red >= green).logical_and_(red >= blue)
    hue = torch.where(red_is_max, from_red, torch.where(green >= blue, from_green, from_blue))
    hue = hue.div_(spread).div_(6.0).remainder_(1.0).mul_(_TWO_PI)  # radians in [0, 2*pi)
    hue.masked_fill_(hue >= _TWO_PI, 0.0)
    # The published quirk: ``hue`` is already an angle in radians, and is scaled by 2*pi again.
    angle = hue.mul_(_TWO_PI)
    # q = round(9 * (s * cos(angle) + 1) / 2 + 1), likewise with sin, and round(9 * v + 1).
    hue_x = torch.cos(angle).mul_(saturation).add_(1).mul_(9).div_(2).add_(1).round_()
    hue_y = torch.sin(angle).mul_(saturation).add_(1).mul_(9).div_(2).add_(1).round_()
    level = value.mul_(9).add_(1).round_()
    # bin = qh + 10 * (qs - 1) + 100 * (qv - 1), shifted to start at 0.
    bins = hue_y.sub_(1).mul_(10).add_(hue_x).add_(level.sub_(1).mul_(100)).sub_(1)
    return bins.flatten(1).long()


def _color_refine(saliency: torch.Tensor, mean_frame: torch.Tensor) -> torch.Tensor:
    """Step 3 (docs/algorithm.md): score each pixel by how much more its color belongs to moving pixels.

    Foreground seeds are the top half of the normalised motion map, background seeds its
    bottom tenth; each gives a color histogram over the HSV bins (the background one smoothed
    by +1 per bin); the score of a pixel is ``pf / (pf + pb)`` at its bin.
    """
    batch, height, width = saliency.shape
    flat = saliency.flatten(1)
    pixels = height * width
    bins = _hsv_bins(mean_frame)
    fg_seeds = torch.topk(flat, int(_FOREGROUND_SEED_SHARE * pixels), dim=1, sorted=False).indices
    bg_seeds = torch.topk(flat, int(_BACKGROUND_SEED_SHARE * pixels), dim=1, largest=False, sorted=False).indices
    # One scatter fills both histograms: foreground bins 0..999, background bins 1000..1999.
    seed_bins = torch.cat([bins.gather(1, fg_seeds), bins.gather(1, bg_seeds) + _HSV_BINS], dim=1)
    counts = torch.zeros(batch, 2 * _HSV_BINS, dtype=flat.dtype, device=flat.device)
    counts.scatter_add_(1, seed_bins, torch.ones_like(seed_bins, dtype=flat.dtype))
    fg_hist, bg_hist = counts[:, :_HSV_BINS], counts[:, _HSV_BINS:] + 1
    fg_hist = fg_hist / (fg_hist.sum(dim=1, keepdim=True) + 1e-8)
    bg_hist = bg_hist / (bg_hist.sum(dim=1, keepdim=True) + 1e-8)
    score_per_bin = fg_hist / (fg_hist + bg_hist)
    return score_per_bin.gather(1, bins).view(batch, height, width)


def _top_pixels(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Step 5 (docs/algorithm.md): bool (B, H, W) with exactly ``count`` True per map, at the highest scores."""
    flat = scores.flatten(1)
    top = torch.topk(flat, count, dim=1, sorted=False).indices
    mask = torch.zeros(flat.shape, dtype=torch.bool, device=flat.device)
    return mask.scatter_(1, top, True).view_as(scores)


def _foreground_mask(clips: torch.Tensor, count: int, mode: str) -> torch.Tensor:
    """The mask of a checked ``mode`` on checked (B, C, T, H, W) clips, without autograd.

    uint8 clips are read as float in [0, 1] (value / 255), so they get the masks their float
    versions get. Computed in inference mode outside ``torch.compile``: a mask takes from about 40
    (``"motion"``) to about 800 (``"stabilized"``) small tensor operations, and inference mode
    spares each the autograd bookkeeping that ``no_grad`` still does; the result is copied out as
    an ordinary tensor, which the merge's autograd may save.
    """
    if torch.compiler.is_compiling():
        return _mask_of(clips, count, mode)
    with torch.inference_mode():
        mask = _mask_of(clips, count, mode)
    return mask.clone()


def _mask_of(clips: torch.Tensor, count: int, mode: str) -> torch.Tensor:
    """``_foreground_mask``'s computation."""
    if clips.dtype == torch.uint8:
        clips = clips.to(torch.float32) / 255
    return _top_pixels(_foreground_scores(clips, mode), count)


def _foreground_scores(clips: torch.Tensor, mode: str) -> torch.Tensor:
    """The normalised (B, H, W) score whose top pixels form the mask.

    Steps 1-4 for ``"official"``, 1-2 for ``"motion"``; ``"stabilized"`` replaces step 1 by the
    camera-compensated motion map of :mod:`fame_aug._stabilize` (docs/algorithm.md, section 3).
    """
    refine = mode == "official"
    if mode == "stabilized":
        saliency, mean_frame = stabilized_saliency(clips.to(_compute_dtype(clips.dtype))), None
    else:
        saliency, mean_frame = _motion_saliency(clips, with_mean_frame=refine)
    blur = ReflectGaussianBlur(clips.shape[-2], clips.shape[-1], saliency.dtype, saliency.device)
    saliency = _min_max_normalise(blur(saliency))
    if refine:
        assert mean_frame is not None
        # The refined score is piecewise constant: its blur must keep exact ties (see _filters).
        saliency = _min_max_normalise(blur(_color_refine(saliency, mean_frame), tie_exact=True))
    return saliency


def _merge(
    clips: torch.Tensor,
    mask: torch.Tensor,
    pairs: torch.Tensor,
    source: torch.Tensor,
    apply: torch.Tensor | None,
    self_source: bool,
) -> torch.Tensor:
    """Merge on (B, C, T, H, W) views; clips whose ``apply`` is False come out unchanged.

    ``source`` is (N, C, T, H, W), or (N, C, 1, H, W) still backgrounds that broadcast over
    time. ``self_source`` says that ``source`` is ``clips`` itself, so that a clip paired with
    itself can be copied instead of blended.
    """
    batch = clips.shape[0]
    weights = mask[:, None, None]  # (B, 1, 1, H, W): shared by channels and frames
    if _use_clip_loop(clips, source):
        # One clip at a time: lerp(partner, clip, w) is exact for w in {0, 1} and finite values,
        # and five times faster than torch.where on CPUs; it writes straight into the output.
        out = torch.empty_like(clips)
        weights = weights.to(clips.dtype)
        keep = [False] * batch if apply is None else (~apply).tolist()
        for b, partner in enumerate(pairs.tolist()):
            if keep[b] or (self_source and partner == b):
                out[b].copy_(clips[b])
            else:
                torch.lerp(source[partner], clips[b], weights[b], out=out[b])
        return out
    partners = source.index_select(0, pairs)
    if mask.dtype == torch.bool:
        if apply is not None:
            weights = weights | ~apply.view(batch, 1, 1, 1, 1)
        return torch.where(weights, clips, partners)
    merged = torch.lerp(partners, clips, weights.to(clips.dtype))
    if apply is not None:
        merged = torch.where(apply.view(batch, 1, 1, 1, 1), merged, clips)
    return merged
