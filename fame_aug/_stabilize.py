"""Camera-motion compensation for ``mode="stabilized"``: align the frames, then find what moves.

Frame differences see the whole background change when the camera pans, and it outweighs the
object. This module estimates the background's motion as one global translation per pair of
consecutive frames and measures motion after aligning them, with two cues:

- frame differences after alignment (what FAME's motion map is, minus the camera), and
- the difference of each frame from a background model, the per-pixel temporal median of the
  aligned frames: it covers the whole object, not only its moving edges, when the object moves
  slowly relative to the scene (a tracking shot keeps the object still in the image).

Each cue is aggregated over time as a root mean square, which favours the object's few strong
differences over the many weak ones of rippling water or a swaying crowd.

Alignment is robust to the object: the translation minimises a truncated absolute difference
of grey thumbnails, so pixels that do not fit the motion (the object, flickering water) each
cost at most a constant, and the motion that most of the frame follows wins; among fits that
are nearly as good, a small penalty prefers the smaller motion. The search is coarse to fine
and exhaustive at each level (for 112 px frames: a radius of 4 thumbnail pixels on 28 px
thumbnails, 2 on 56 px ones, 1 at 112 px, i.e. up to 16 + 4 + 1 = 21 px of the 112 px frame, about
a fifth of it, per frame pair), with a parabola fit for the sub-pixel part. Everything is batched
tensor code without host synchronisation. See docs/algorithm.md, section 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Frames are reduced to about this side by a whole factor (224 -> 112) before anything else:
# enough detail for alignment and for the blurred map, and averaging suppresses sensor noise.
_WORKING_SIDE = 112
# Search levels from coarse to fine: (halvings of the working frame, search radius and
# comparison stride, both in that level's pixels). At 112 px the radii 4, 2 and 1 reach 16, 4 and
# 1 px of the working frame, comparing every 2nd, 2nd and 4th pixel of each level.
_SEARCH_LEVELS = ((2, 4, 2), (1, 2, 2), (0, 1, 4))
# Grey-level difference (of [0, 1] frames) above which a pixel no longer fits a candidate motion.
_RESIDUAL_CAP = 0.03
# Penalty on the coarse search's longest offset, as a share of a total misfit (see below).
_MOTION_PRIOR = 0.5
# Weight of the background-model cue relative to the frame-difference cue (each scaled to max 1).
_BACKGROUND_WEIGHT = 0.5


def stabilized_saliency(clips: torch.Tensor) -> torch.Tensor:
    """Motion map (B, H, W) of (B, C, T, H, W) clips with the camera's translation removed.

    Not normalised or blurred; larger means more likely foreground. Computed in the clips' dtype
    (float32 or float64), on their device. Non-finite values count as no motion.
    """
    batch, _, _, height, width = clips.shape
    factor = max(1, min(height, width) // _WORKING_SIDE)
    small = F.avg_pool3d(clips, (1, factor, factor)) if factor > 1 else clips
    grey = torch.nan_to_num(small.mean(dim=1), nan=0.0, posinf=0.0, neginf=0.0)  # (B, T, h, w)
    pyramid = _pyramid(grey)
    steps = _search(pyramid)  # (B, T-1, 2) in pixels of ``small``
    positions = torch.cat([steps.new_zeros(batch, 1, 2), steps.cumsum(dim=1)], dim=1)
    # Non-finite pixels count as no motion: their differences are dropped (the grey above is clean).
    differences = _aligned_differences(small, positions).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    # The background model is grey at half the working size (the pyramid's next level, which
    # repeats the finest one for tiny frames): it only needs to place the object.
    half = pyramid[1]
    from_background = _background_differences(half, positions * (half.shape[-1] / grey.shape[-1]))
    saliency = _scaled_to_frame(differences, height, width)
    saliency += _BACKGROUND_WEIGHT * _scaled_to_frame(from_background, height, width)
    return saliency


def frame_translations(grey: torch.Tensor) -> torch.Tensor:
    """Global translation between consecutive frames, in pixels of the (B, T, H, W) input.

    Returns (B, T-1, 2) offsets (dy, dx) such that frame t+1 at (y + dy, x + dx) shows what
    frame t shows at (y, x) for the background (the part of the frame that most pixels follow).
    """
    return _search(_pyramid(grey))


def _pyramid(grey: torch.Tensor) -> list[torch.Tensor]:
    """``grey`` (B, T, h, w) and its 2x, 4x, ... averages, as many as the search levels use.

    Levels too small to average again repeat the previous one.
    """
    levels = [grey]
    for _ in range(max(halvings for halvings, _, _ in _SEARCH_LEVELS)):
        finer = levels[-1]
        levels.append(F.avg_pool2d(finer, 2) if min(finer.shape[-2:]) >= 2 else finer)
    return levels


def _search(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Coarse-to-fine translation search over a ``_pyramid``; offsets in pixels of its finest level."""
    batch, frames, height = pyramid[0].shape[:3]
    pairs = batch * (frames - 1)
    offset = pyramid[0].new_zeros(pairs, 2)  # in pixels of the current level
    previous = None
    for level, (halvings, radius, stride) in enumerate(_SEARCH_LEVELS):
        thumbs = pyramid[halvings]
        rows, cols = thumbs.shape[-2:]
        if previous is not None:
            offset = (offset * (rows / previous)).round()
        enlarge = _enlargement(rows, cols, radius, stride)
        if enlarge > 1:  # too small to search: repeat pixels (offsets scale with them)
            thumbs = thumbs.repeat_interleave(enlarge, dim=-2).repeat_interleave(enlarge, dim=-1)
            offset = offset * enlarge
        first = thumbs[:, :-1].reshape(pairs, rows * enlarge, cols * enlarge)
        second = thumbs[:, 1:].reshape(pairs, rows * enlarge, cols * enlarge)
        cost = _alignment_cost(first, second, offset.long(), radius, stride)  # (N, 2r+1, 2r+1)
        # Offsets are absolute at the coarsest level only: there the smaller motion is preferred.
        ranked = cost + _smallest_motion_prior(radius, cost) if level == 0 else cost
        best = ranked.flatten(1).argmin(dim=1)
        row, col = best // (2 * radius + 1), best % (2 * radius + 1)
        offset = offset + torch.stack([row - radius, col - radius], dim=1).to(offset.dtype)
        if enlarge > 1:
            offset = offset / enlarge
        previous = rows
    offset = offset + _parabola_peak(cost, row, col) / enlarge
    assert previous is not None
    return (offset * (height / previous)).view(batch, frames - 1, 2)


def _enlargement(rows: int, cols: int, radius: int, stride: int) -> int:
    """Whole factor by which a (rows, cols) thumbnail must grow to leave 4 compared pixels a side."""
    needed = 2 * radius + 3 * stride + 1
    return max(1, -(-needed // min(rows, cols)))


def shift_frames(frames: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample frames at whole-pixel offsets: ``out[..., y, x] = frames[..., y + dy, x + dx]``.

    ``frames`` is (..., H, W) and ``offsets`` (..., 2) long (dy, dx), with leading dimensions
    that broadcast to the frames' (one offset per frame, shared by its channels, say). Returns
    the shifted frames (the border repeated where the source is outside the frame) and a bool
    map (offsets' leading dimensions, H, W) of where the source is inside.
    """
    height, width = frames.shape[-2:]
    rows = torch.arange(height, device=frames.device) + offsets[..., :1]  # (..., H)
    cols = torch.arange(width, device=frames.device) + offsets[..., 1:]  # (..., W)
    # One gather over the flattened frame: source pixel (row, col) of every output pixel.
    source, valid = _flat_sources(rows[..., :, None], cols[..., None, :], height, width)
    leading = torch.broadcast_shapes(frames.shape[:-2], source.shape[:-2])
    index = source.flatten(-2).expand(*leading, height * width)
    shifted = frames.flatten(-2).expand(*leading, height * width).gather(-1, index)
    return shifted.view(*leading, height, width), valid


def _flat_sources(rows: torch.Tensor, cols: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat index ``row * width + col`` of source pixels clamped into the frame, and whether each is inside.

    ``rows`` and ``cols`` are long tensors that broadcast against each other.
    """
    inside = ((rows >= 0) & (rows < height)) & ((cols >= 0) & (cols < width))
    return rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1), inside


def _alignment_cost(
    first: torch.Tensor, second: torch.Tensor, offset: torch.Tensor, radius: int, stride: int
) -> torch.Tensor:
    """Truncated mean absolute difference of ``first`` and ``second`` for every offset near ``offset``.

    ``first`` and ``second`` are (N, h, w) thumbnails and ``offset`` (N, 2) long the offset found
    so far. Returns (N, 2r+1, 2r+1), entry (i, j) for offset ``offset + (i - r, j - r)``. The
    central pixels of ``first`` (all but a border of r) are compared, every ``stride``-th in each
    direction; pixels whose source in ``second`` is outside the frame count as not fitting.
    """
    count, rows, cols = first.shape
    device = first.device
    row_taps = torch.arange(radius, rows - radius, stride, device=device)
    col_taps = torch.arange(radius, cols - radius, stride, device=device)
    centre = first[:, row_taps][:, :, col_taps]  # (N, th, tw)
    steps = torch.arange(-radius, radius + 1, device=device)
    source_rows = row_taps[None, None] + (offset[:, :1, None] + steps[None, :, None])  # (N, 2r+1, th)
    source_cols = col_taps[None, None] + (offset[:, 1:, None] + steps[None, :, None])  # (N, 2r+1, tw)
    # One gather reads the compared pixels of every candidate offset: (N, 2r+1, 2r+1, th, tw).
    index, inside = _flat_sources(source_rows[:, :, None, :, None], source_cols[:, None, :, None, :], rows, cols)
    windows = second.reshape(count, -1).gather(1, index.reshape(count, -1)).view(index.shape)
    residual = (windows - centre[:, None, None]).abs_().clamp_(max=_RESIDUAL_CAP)
    residual = residual.masked_fill_(~inside, _RESIDUAL_CAP)
    return residual.mean(dim=(-2, -1))


def _smallest_motion_prior(radius: int, cost: torch.Tensor) -> torch.Tensor:
    """(2r+1, 2r+1) penalty growing with the square of the offset's length, added at the coarsest level.

    Without it, whatever has texture decides: before a plain wall or sky the object is the only
    thing to align, and a periodic background (stripes, a fence) fits as well one period away.
    The penalty prefers the smaller motion among fits that are close: at the search's corner it
    equals ``_MOTION_PRIOR`` times the cost of a frame where no pixel fits; at one pixel of the
    coarse thumbnail it is ``_MOTION_PRIOR / (2 r^2)`` of that.
    """
    offsets = torch.arange(-radius, radius + 1, dtype=cost.dtype, device=cost.device)
    squared = offsets[:, None].square() + offsets[None, :].square()
    return squared * (_MOTION_PRIOR * _RESIDUAL_CAP / (2 * radius * radius))


def _parabola_peak(cost: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """Sub-pixel (dy, dx) in [-0.5, 0.5] from a parabola through the minimum and its neighbours."""
    count, size, _ = cost.shape
    index = torch.arange(count, device=cost.device)

    def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return cost[index, r.clamp(0, size - 1), c.clamp(0, size - 1)]

    centre = at(row, col)

    def vertex(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        curvature = before + after - 2 * centre
        flat = curvature <= 1e-12  # a flat or edge minimum: keep the whole-pixel estimate
        step = 0.5 * (before - after) / torch.where(flat, torch.ones_like(curvature), curvature)
        return torch.where(flat, torch.zeros_like(step), step).clamp_(-0.5, 0.5)

    return torch.stack([vertex(at(row - 1, col), at(row + 1, col)), vertex(at(row, col - 1), at(row, col + 1))], dim=1)


def _aligned_differences(clips: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Root mean square over time of channel-summed differences of aligned consecutive frames.

    ``clips`` (B, C, T, h, w); ``positions`` (B, T, 2), each frame's offset from frame 0 in
    pixels of ``clips``. The map is in each earlier frame's own coordinates (the image's), and
    zero where the later frame has no data.
    """
    steps = (positions[:, 1:] - positions[:, :-1]).round().long()  # (B, T-1, 2)
    # Shift every later frame onto its earlier one; offsets are shared by the channels.
    aligned, valid = shift_frames(clips[:, :, 1:], steps[:, None])  # (B, C, T-1, h, w), (B, 1, T-1, h, w)
    squared = (clips[:, :, :-1] - aligned).abs_().sum(dim=1).square_().mul_(valid[:, 0])
    return squared.mean(dim=1).sqrt_()


def _background_differences(grey: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Root mean square over time of each frame's difference from the aligned temporal median.

    ``grey`` (B, T, h, w); ``positions`` as in ``_aligned_differences``. The median is taken in
    frame 0's coordinates over the frames that see each pixel; each frame's difference is moved
    back to its own coordinates.
    """
    to_first = positions.sub(positions[:, :1]).round().long()  # (B, T, 2)
    aligned, valid = shift_frames(grey, to_first)
    stack = aligned.masked_fill_(~valid, float("nan"))
    background = torch.nan_to_num(stack.nanmedian(dim=1).values, nan=0.0)
    residual = (stack - background[:, None]).abs_().nan_to_num_(nan=0.0)
    residual, valid = shift_frames(residual, -to_first)
    return residual.square_().mul_(valid).mean(dim=1).sqrt_()


def _scaled_to_frame(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, h, w) maps scaled to maximum 1 and resized (bilinear) to (B, height, width)."""
    maps = maps / (maps.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None])
    if maps.shape[-2:] != (height, width):
        maps = F.interpolate(maps[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return maps
