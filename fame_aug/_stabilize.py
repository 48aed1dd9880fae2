"""Camera-motion compensation for ``mode="stabilized"``: align the frames, then find what moves.

Frame differences see the whole background change when the camera moves, and it outweighs the
object. This module estimates the background's motion between consecutive frames as an affine
map (pan, tilt, zoom, roll and shear) and scores each pixel by how much it differs once the
background is aligned, favouring pixels that the alignment makes *worse* (what the camera
follows):

1. Frames are averaged down by a whole factor to about 56 px (112 -> 56, 224 -> 56).
2. A coarse-to-fine exhaustive translation search per frame pair (radius 4 on 28 px thumbnails,
   2 at 56 px: up to 20 px of a 112 px frame) minimises a truncated absolute difference over the
   frames' overlap, so that pixels that do not follow the motion cost at most a constant. Pixels
   near the frame's border weigh more (the background surrounds the object, and a tracked object
   sits near the centre), and each pair's coarse costs are averaged with its neighbours' in time
   (the camera moves smoothly), so that a large object still in the image does not win the fit.
   Then a forward sweep searches each pair again (radius 2 coarse px) around the offset just found
   for the pair before it, and keeps the better fit, so a pan that keeps speeding up is followed to
   the clip's end, while each search's radius, and with it the risk of locking onto the object,
   stays small; from the clip's middle a backward sweep does the same towards its start (a pan that
   slows down).
3. Robust Gauss-Newton steps (Cauchy-weighted, same border weights) refine the translation to a
   full affine map on the 56 px frames.
4. Every other frame is compared with both neighbours, each warped onto it: channel-summed
   differences after warping (``aligned``) and without (``raw``), root mean squares over time in
   which a pair counts in inverse proportion to its background residue. Three-frame differences
   (the smaller of a frame's two: where the object is in that frame), plus ``_PAIR_SHARE`` of the
   pair differences (also the path between the object's positions). Each is scored ``aligned *
   (aligned / (aligned + raw))^2``: where the camera follows the object, it is still in the image
   (small ``raw``) and moves against the aligned background (large ``aligned``), while the
   background's parallax moves in the image too (large ``raw``).
5. Holes are filled: a region enclosed by higher scores (the inside of an object of one color,
   whose outline alone differs) is raised to its rim.
6. When the camera is still (in every pair the map moves no frame corner by 3 px of a 112 px frame,
   and leaving the frames unaligned fits them about as well), the plain frame differences at full
   size are scored instead: resampling blurs what it warps.

Everything is batched tensor code without host synchronisation. See docs/algorithm.md, section 3.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

# Frames are reduced to about this side by a whole factor (112 -> 56, 224 -> 56) before the
# alignment and the aligned differences: enough to place the object, and averaging suppresses noise.
_WORKING_SIDE = 56
# Search levels from coarse to fine: (halvings of the working frame, search radius and
# comparison stride, both in that level's pixels). At 56 px the radii 4 and 2 reach 8 and 2 px of
# the working frame (16 + 4 px of a 112 px frame), comparing every 2nd pixel of the 28 px level
# and every 4th of the 56 px one (it only places the start of the affine refinement).
_SEARCH_LEVELS = ((1, 4, 2), (0, 2, 4))
# Grey-level difference (of [0, 1] frames) above which a pixel no longer fits a candidate motion.
_RESIDUAL_CAP = 0.03
# Penalty on the coarse search's longest offset, as a share of a total misfit (see below).
_MOTION_PRIOR = 0.1
# Weight of the previous and the next pair's coarse search costs in each pair's (its own: 1).
_NEIGHBOUR_WEIGHT = 1.0
# Radius of the searches around a neighbouring pair's offset after the first (``_propagated``).
_PROPAGATION_RADIUS = 2
# Weight of the frame's border in the camera fit: 1 inside the central square of half-side
# ``_BORDER_START`` (in units of the half frame), rising linearly to ``1 + _BORDER_EMPHASIS`` at
# the border; then scaled to mean 1.
_BORDER_EMPHASIS = 30.0
_BORDER_START = 0.4
# Affine refinement: Gauss-Newton steps on the working frame, on every ``_REFINE_STRIDE``-th
# pixel in each direction, with this Cauchy scale of the grey residuals.
_REFINE_STEPS = 3
_REFINE_STRIDE = 2
_REFINE_SCALE = 0.03
# Step 4 above: the power of the share ``aligned / (aligned + raw)``, the weight of the pair
# differences beside the three-frame ones, and the power of the pair weights (``_pair_weights``).
_FOLLOW_POWER = 2.0
_PAIR_SHARE = 0.15
_WEIGHT_POWER = 1.0
# Reconstruction steps after the straight-line hole filling (``_holes_filled``).
_FILL_STEPS = 2
# The camera is still (the plain frame differences are scored, step 6 above) when in every pair
# the map moves no frame corner by ``_STILL_PIXELS`` (pixels of a 112 px frame) and the identity's
# robust cost is at most ``_STILL_COST_RATIO`` times the map's.
_STILL_PIXELS = 3.0
_STILL_COST_RATIO = 1.3
# Value around the frame in the search, marking sources outside the frame (left out of the mean).
_OUTSIDE = 1e3


def stabilized_saliency(clips: torch.Tensor) -> torch.Tensor:
    """Motion map (B, H, W) of (B, C, T, H, W) clips with the camera's motion removed.

    Not normalised or blurred; larger means more likely foreground. Computed in the clips' dtype
    (float32 or float64), on their device. Non-finite values count as no motion.
    """
    height, width = clips.shape[-2:]
    color, pairs, identity_fits = _working_frames_and_camera(clips)
    (aligned, raw), (pair_aligned, pair_raw) = _aligned_differences(color, pairs)
    moving = _holes_filled(_followed(aligned, raw) + _PAIR_SHARE * _followed(pair_aligned, pair_raw))
    moving = _scaled_to_frame(moving, height, width)
    plain = _scaled_to_frame(_plain_differences(clips), height, width)
    small_motion = _small_motion(pairs, color.shape[-2], color.shape[-1])
    still = (small_motion & identity_fits).all(dim=1).to(moving.dtype)[:, None, None]
    return torch.lerp(moving, plain, still)


def camera_maps(clips: torch.Tensor) -> torch.Tensor:
    """Affine background motion between consecutive frames of (B, C, T, H, W) clips, as the mode finds it.

    Returns (B, T-1, 3, 3) maps in normalised coordinates (-1 and 1 at the frame's outer edges,
    as ``F.affine_grid`` with ``align_corners=False``): frame t+1 at ``M @ (x, y, 1)`` shows what
    frame t shows at ``(x, y)``, for the background.
    """
    return _working_frames_and_camera(clips)[1]


def _working_frames_and_camera(clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 1-3: the (B, C, T, h, w) working frames and the (B, T-1, 3, 3) affine maps of their pairs.

    Also (B, T-1) whether the identity fits each pair about as well as its map (``_refine_affine``).
    """
    factor = max(1, min(clips.shape[-2:]) // _WORKING_SIDE)
    color = torch.nan_to_num(_pooled(clips, factor), nan=0.0, posinf=0.0, neginf=0.0)
    grey = color.mean(dim=1)
    steps = _search(_pyramid(grey))  # (B, T-1, 2) in pixels of ``grey``
    pairs = _translation_maps(steps, grey.shape[-2], grey.shape[-1])
    return color, *_refine_affine(grey, pairs, _REFINE_STEPS)


def _pooled(frames: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean of ``factor`` x ``factor`` blocks of (..., H, W) frames, the last rows and columns dropped.

    The same as ``avg_pool2d`` up to rounding, and faster on CPUs for small factors: rows are
    summed first, as contiguous slices.
    """
    if factor == 1:
        return frames
    *leading, height, width = frames.shape
    rows, cols = height // factor, width // factor
    blocks = frames[..., : rows * factor, : cols * factor].reshape(-1, rows, factor, cols * factor)
    summed = blocks[:, :, 0]
    for i in range(1, factor):
        summed = summed + blocks[:, :, i]
    columns = summed.view(-1, rows, cols, factor)
    out = columns[..., 0]
    for i in range(1, factor):
        out = out + columns[..., i]
    return (out / (factor * factor)).view(*leading, rows, cols)


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
    reach = 0.0  # the largest offset the levels so far can have found, in pixels of the current level
    previous = None
    for level, (halvings, radius, stride) in enumerate(_SEARCH_LEVELS):
        thumbs = pyramid[halvings]
        rows, cols = thumbs.shape[-2:]
        if previous is not None:
            offset = (offset * (rows / previous)).round()
            reach = reach * rows / previous
        enlarge = _enlargement(rows, cols, radius, stride)
        if enlarge > 1:  # too small to search: repeat pixels (offsets scale with them)
            thumbs = thumbs.repeat_interleave(enlarge, dim=-2).repeat_interleave(enlarge, dim=-1)
            offset = offset * enlarge
            reach = reach * enlarge
        first = thumbs[:, :-1].reshape(pairs, rows * enlarge, cols * enlarge)
        second = thumbs[:, 1:].reshape(pairs, rows * enlarge, cols * enlarge)
        cost = _alignment_cost(first, second, offset.long(), radius, stride, int(reach) + 1)  # (N, 2r+1, 2r+1)
        # At the coarsest level the smaller motion is preferred, at finer ones the coarser estimate:
        # a periodic background then cannot tip a tie to a period away (nor a sparse comparison grid).
        ranked = (_pooled_over_time(cost, batch) if level == 0 else cost) + _smallest_motion_prior(radius, cost)
        best = ranked.flatten(1).argmin(dim=1)
        row, col = best // (2 * radius + 1), best % (2 * radius + 1)
        offset = offset + torch.stack([row - radius, col - radius], dim=1).to(offset.dtype)
        reach = reach + radius
        if level == 0 and frames > 2:
            offset = _propagated(first, second, offset, ranked.flatten(1).amin(dim=1), batch, radius, stride)
            reach = max(reach, _sweep_reach(rows * enlarge, cols * enlarge, radius))
        if enlarge > 1:
            offset = offset / enlarge
            reach = reach / enlarge
        previous = rows
    offset = offset + _parabola_peak(cost, row, col) / enlarge
    assert previous is not None
    return (offset * (height / previous)).view(batch, frames - 1, 2)


def _propagated(
    first: torch.Tensor,
    second: torch.Tensor,
    offset: torch.Tensor,
    score: torch.Tensor,
    batch: int,
    radius: int,
    stride: int,
) -> torch.Tensor:
    """Coarse offsets improved by searching each pair again around its neighbour's offset, in sweeps.

    The camera moves smoothly, so a pan that speeds up past the search's reach around no motion
    is still within reach around the previous pair's motion. A forward sweep searches pair 1, 2,
    ... in turn around the offset just found for the pair before it, so that a pan that keeps
    speeding up is followed to the clip's end. Once it has passed the clip's middle, a backward
    sweep runs beside it, from there to the first pair (a pan that slows down into reach by the
    middle). It cannot start at the last pair: a pan that speeds up leaves the last pairs wrong
    until the forward sweep reaches them, and a wrong source would be propagated. Each search
    (batched over clips and sweeps) pools the costs of the pair and its neighbours in time around
    the same centre, as the first search does, measures the motion prior from that centre, and
    keeps the better of the two fits.
    """
    count = offset.shape[0]
    pairs = count // batch
    rows, cols = first.shape[-2:]
    full_radius, radius = radius, _PROPAGATION_RADIUS
    size = 2 * radius + 1
    reach = _sweep_reach(rows, cols, full_radius)
    # What every step compares, prepared once: the steps differ only in which pairs and where.
    search = _search_setup(first, second, radius, stride, reach)
    offset = offset.view(batch, pairs, 2).clone()
    score = score.view(batch, pairs).clone()
    inner = slice(full_radius - radius, full_radius + radius + 1)
    prior = _smallest_motion_prior(full_radius, score)[inner, inner].flatten()
    # Pairs t-1, t and t+1 of every clip for each t (clamped into the clip, the missing ones
    # weighing 0), their compared pixels and the offset of each candidate, all prepared once:
    # the steps are sequential, so each should launch as few operations as it can.
    pair = torch.arange(pairs, device=offset.device)
    neighbours = torch.stack([(pair - 1).clamp(min=0), pair, (pair + 1).clamp(max=pairs - 1)], dim=1)  # (T-1, 3)
    has = [(pair > 0) * _NEIGHBOUR_WEIGHT, torch.ones_like(pair), (pair < pairs - 1) * _NEIGHBOUR_WEIGHT]
    share = torch.stack(has, dim=1)
    share = (share / share.sum(dim=1, keepdim=True)).to(first.dtype)  # (T-1, 3)
    ids = (torch.arange(batch, device=offset.device)[None, :, None] * pairs + neighbours[:, None, :]).flatten(1)
    compared = search.compared[ids]  # (T-1, B * 3, P)
    row_step = torch.tensor([search.shape[1], 1], device=offset.device)
    deltas = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij"), -1).view(-1, 2)
    deltas = (deltas - radius).to(device=offset.device, dtype=offset.dtype)
    bases = ids * search.shape[0]  # each pair's first element in ``search.sources``
    # Step k searches pair k + 1 around pair k (the forward sweep) and, once the forward sweep has
    # passed the clip's middle, pair T-3-k around pair T-2-k (the backward sweep, whose sources the
    # forward sweep has then settled), batched. What a step reads but its centres is prepared here.
    plan = []
    for k in range(pairs - 1):
        steps = [(k + 1, k)] + ([(pairs - 2 - k, pairs - 1 - k)] if pairs - 2 - k < k + 1 else [])
        targets = [t for t, _ in steps]
        plan.append(
            (
                steps,
                bases[targets].flatten(),
                compared[targets].flatten(0, 1),
                share[targets].repeat_interleave(batch, dim=0)[:, :, None],  # (n B, 3, 1)
            )
        )
    for steps, base, against, weights in plan:
        searched = batch * len(steps)
        sources = [offset[:, source] for _, source in steps]  # (B, 2) each, within reach
        centre = torch.cat(sources) if len(sources) > 1 else sources[0]
        start = base + ((centre.long() * row_step).sum(dim=1)).repeat_interleave(3)
        cost = _truncated_cost(_windows(search, start), search, against).view(searched, 3, size * size)
        value, best = ((cost * weights).sum(dim=1) + prior).min(dim=1)
        found = (centre + deltas[best]).clamp_(-reach, reach)
        for half, (t, _) in enumerate(steps):
            part = slice(half * batch, (half + 1) * batch)
            better = value[part] < score[:, t]
            offset[:, t] = torch.where(better[:, None], found[part], offset[:, t])
            score[:, t] = torch.where(better, value[part], score[:, t])
    return offset.view(count, 2)


def _sweep_reach(rows: int, cols: int, radius: int) -> int:
    """The largest offset the sweeps of ``_propagated`` keep on (rows, cols) thumbnails searched within ``radius``.

    Offsets beyond half the thumbnail would compare too little of the frame to mean anything.
    """
    return max(radius, min(rows, cols) // 2 - _PROPAGATION_RADIUS)


def _pooled_over_time(cost: torch.Tensor, batch: int) -> torch.Tensor:
    """Each pair's coarse cost volume plus ``_NEIGHBOUR_WEIGHT`` times its neighbours' in time, renormalised.

    The camera moves smoothly, so the neighbours' costs say which of two close fits is the
    background's: a large object that stays still in the image (a tracking shot) can fit one
    pair as well as the background does, but rarely every pair around it.
    """
    count, size, _ = cost.shape
    volumes = cost.view(batch, count // batch, size * size)
    total = volumes.clone()
    norm = torch.ones_like(volumes[:, :, :1])
    total[:, 1:] += _NEIGHBOUR_WEIGHT * volumes[:, :-1]
    total[:, :-1] += _NEIGHBOUR_WEIGHT * volumes[:, 1:]
    norm[:, 1:] += _NEIGHBOUR_WEIGHT
    norm[:, :-1] += _NEIGHBOUR_WEIGHT
    return (total / norm).view(count, size, size)


def _enlargement(rows: int, cols: int, radius: int, stride: int) -> int:
    """Whole factor by which a (rows, cols) thumbnail must grow to leave 4 compared pixels a side."""
    needed = 2 * radius + 3 * stride + 1
    return max(1, -(-needed // min(rows, cols)))


def _alignment_cost(
    first: torch.Tensor, second: torch.Tensor, offset: torch.Tensor, radius: int, stride: int, reach: int
) -> torch.Tensor:
    """Weighted truncated mean absolute difference of ``first`` and ``second`` for every offset near ``offset``.

    ``first`` and ``second`` are (N, h, w) thumbnails and ``offset`` (N, 2) long the offset found
    so far, at most ``reach`` pixels either way. Returns (N, 2r+1, 2r+1), entry (i, j) for offset
    ``offset + (i - r, j - r)``. The central pixels of ``first`` (all but a border of r) are
    compared, every ``stride``-th in each direction, weighted by ``_border_weight``; pixels whose
    source in ``second`` is outside the frame are left out (the mean is over the overlap), so a
    fast pan is not penalised for what it brings into view.
    """
    count = first.shape[0]
    search = _search_setup(first, second, radius, stride, reach)
    windows = _candidates(search, torch.arange(count, device=first.device), offset)
    size = 2 * radius + 1
    return _truncated_cost(windows, search, search.compared).view(count, size, size)


class _Search(NamedTuple):
    """What ``_alignment_cost`` compares, prepared once for a set of frame pairs (``_search_setup``)."""

    sources: torch.Tensor  # (N * L,) every pair's later frame in a frame of ``_OUTSIDE``, flattened
    window: torch.Tensor  # (Hw * Ww,) indices of the window that all candidates read, at offset 0
    shape: tuple[int, int, int, int]  # (L, padded width, Hw, Ww)
    taps: tuple[int, int]  # compared pixels per column and per row
    radius: int
    stride: int
    reach: int
    compared: torch.Tensor  # (N, P) compared pixels of each earlier frame
    weight: torch.Tensor  # (P,) their weights


def _search_setup(first: torch.Tensor, second: torch.Tensor, radius: int, stride: int, reach: int) -> _Search:
    """Prepare the search of (N, h, w) pairs for offsets up to ``reach`` (+ ``radius``) either way.

    ``second`` goes into a frame of ``_OUTSIDE`` values ``reach + radius`` wide, so that sources
    outside the frame are recognised, and every candidate near an offset reads one window of it.
    """
    count, rows, cols = first.shape
    device = first.device
    margin = reach + radius
    sources = F.pad(second, (margin, margin, margin, margin), value=_OUTSIDE)
    width = cols + 2 * margin
    taps_r, taps_c = len(range(radius, rows - radius, stride)), len(range(radius, cols - radius, stride))
    window_rows, window_cols = 2 * radius + (taps_r - 1) * stride + 1, 2 * radius + (taps_c - 1) * stride + 1
    # At offset 0, candidate (0, 0) reads its first compared pixel (radius, radius) at (-radius, -radius).
    ys = torch.arange(window_rows, device=device) + margin
    xs = torch.arange(window_cols, device=device) + margin
    window = (ys[:, None] * width + xs[None, :]).flatten()
    compared = first[:, radius : rows - radius : stride, radius : cols - radius : stride].reshape(count, -1)
    weight = _border_weight(rows, cols, first)[radius : rows - radius : stride, radius : cols - radius : stride]
    shape = (sources.shape[-2] * width, width, window_rows, window_cols)
    return _Search(
        sources.flatten(), window, shape, (taps_r, taps_c), radius, stride, reach, compared, weight.flatten()
    )


def _candidates(search: _Search, pairs: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """(n, Hw, Ww) windows that the candidates near ``offset`` (n, 2) read, for the ``pairs`` (n,) of a ``_Search``.

    One gather reads each pair's window; ``_truncated_cost`` cuts the candidates from it (each is
    the window's compared grid shifted by (i, j)), instead of gathering every candidate's pixels.
    """
    per_pair, width = search.shape[:2]
    shift = offset.long().clamp(-search.reach, search.reach)
    return _windows(search, pairs * per_pair + shift[:, 0] * width + shift[:, 1])


def _windows(search: _Search, start: torch.Tensor) -> torch.Tensor:
    """(n, Hw, Ww) windows of ``search.sources`` that the candidates read, from each one's offset-0 origin (n,)."""
    window_rows, window_cols = search.shape[2:]
    return search.sources.take(start[:, None] + search.window).view(-1, window_rows, window_cols)


def _truncated_cost(windows: torch.Tensor, search: _Search, compared: torch.Tensor) -> torch.Tensor:
    """(n, K) weighted mean of ``|source - compared|`` capped at ``_RESIDUAL_CAP``, over the sources inside.

    ``windows`` (n, Hw, Ww) from ``_windows``: candidate (i, j) of the K = (2r+1)^2 reads the
    window's compared grid shifted by (i, j); ``compared`` (n, P) the P pixels it is compared
    with, weighted by ``search.weight``. A source outside the frame (``_OUTSIDE``) costs the cap
    in the sum, which is then corrected by its weight, found for all candidates at once by one
    dilated convolution of the windows' outside mask with the weights.
    """
    count, window_rows, window_cols = windows.shape
    size, stride, (taps_r, taps_c) = 2 * search.radius + 1, search.stride, search.taps
    values = windows.as_strided(
        (count, size, size, taps_r, taps_c),
        (window_rows * window_cols, window_cols, 1, stride * window_cols, stride),
    )
    against = compared.view(count, 1, 1, taps_r, taps_c)
    if torch.compiler.is_compiling():  # inductor fuses the copy; it does not follow ``out=``'s layout
        residual = (values - against).contiguous()
    else:  # one pass into a contiguous buffer (a plain difference would keep ``values``' strides)
        residual = torch.empty(values.shape, dtype=values.dtype, device=values.device)
        torch.sub(values, against, out=residual)
    capped = residual.abs_().clamp_(max=_RESIDUAL_CAP).view(-1, taps_r * taps_c) @ search.weight
    outside = (windows > _OUTSIDE / 2).to(windows.dtype)[:, None]
    kernel = search.weight.view(1, 1, taps_r, taps_c)
    outside_weight = F.conv2d(outside, kernel, dilation=stride).view(count, -1)  # (n, K)
    total = search.weight.sum()
    covered = (total - outside_weight).clamp_min(1e-6 * total)
    return (capped.view(count, -1) - _RESIDUAL_CAP * outside_weight).div_(covered)


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


def _border_weight(rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
    """(rows, cols) weights that grow from the frame's centre to its border (mean 1)."""
    y = (torch.arange(rows, dtype=like.dtype, device=like.device) + 0.5) / rows * 2 - 1
    x = (torch.arange(cols, dtype=like.dtype, device=like.device) + 0.5) / cols * 2 - 1
    ring = torch.maximum(y.abs()[:, None], x.abs()[None, :])
    weight = 1 + _BORDER_EMPHASIS * ((ring - _BORDER_START) / (1 - _BORDER_START)).clamp_(0, 1)
    return weight / weight.mean()


def _translation_maps(steps: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """(B, T-1, 3, 3) affine maps in normalised coordinates of pixel translations (dy, dx)."""
    eye = torch.eye(3, dtype=steps.dtype, device=steps.device).expand(*steps.shape[:-1], 3, 3).clone()
    eye[..., 0, 2] = steps[..., 1] * (2.0 / cols)
    eye[..., 1, 2] = steps[..., 0] * (2.0 / rows)
    return eye


def _refine_affine(grey: torch.Tensor, pairs: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust Gauss-Newton refinement of each pair's affine map on (B, T, h, w) grey frames.

    ``pairs`` (B, T-1, 3, 3) maps normalised coordinates of frame t to where frame t+1 shows the
    same background (the initial guess). Each step linearises frame t+1 around the current map
    with frame t's gradients (close enough for maps near a translation, and computed once), on
    every ``_REFINE_STRIDE``-th pixel; residuals are weighted by ``_border_weight`` and a Cauchy
    function of scale ``_REFINE_SCALE``, so that the object and other misfits are outliers, and
    points whose source is outside frame t+1 are left out.

    Returns the refined (B, T-1, 3, 3) maps and a (B, T-1) bool: whether the identity fits the
    pair about as well as its map (robust cost at most ``_STILL_COST_RATIO`` times that of the
    map before the last step).
    """
    batch, frames, rows, cols = grey.shape
    count = batch * (frames - 1)
    stride, start = _REFINE_STRIDE, _REFINE_STRIDE // 2
    template = grey[:, :-1].reshape(count, rows, cols)
    moving = grey[:, 1:].reshape(count, 1, rows, cols)
    gy, gx = _gradients(template, rows, cols)
    rs = torch.arange(start, rows, stride, device=grey.device)
    cs = torch.arange(start, cols, stride, device=grey.device)
    uy = ((rs.to(grey.dtype) * 2 + 1) / rows - 1)[:, None].expand(len(rs), len(cs)).flatten()
    ux = ((cs.to(grey.dtype) * 2 + 1) / cols - 1)[None, :].expand(len(rs), len(cs)).flatten()
    gx = gx[:, start::stride, start::stride].flatten(1)
    gy = gy[:, start::stride, start::stride].flatten(1)
    values = template[:, start::stride, start::stride].flatten(1)
    # The Jacobian's rows are (gx, gy) times (ux, uy, 1): the normal equations need only the three
    # gradient products and the six monomials of the coordinates, contracted by one matrix product.
    gradients = torch.stack([gx, gy], dim=1)  # (N, 2, P)
    products = torch.stack([gx * gx, gx * gy, gy * gy], dim=1)  # (N, 3, P)
    ones = torch.ones_like(ux)
    coordinates = torch.stack([ux, uy, ones], dim=1)  # (P, 3)
    monomials = torch.stack([ux * ux, ux * uy, ux, uy * uy, uy, ones], dim=1)  # (P, 6)
    spatial = _border_weight(rows, cols, grey)[start::stride, start::stride].flatten()
    inner = ((rs > 0) & (rs < rows - 1))[:, None] & ((cs > 0) & (cs < cols - 1))[None, :]
    spatial = spatial * inner.flatten()
    theta = pairs.reshape(count, 3, 3)[:, :2]
    eye = torch.eye(6, dtype=grey.dtype, device=grey.device)
    fit_cost = torch.zeros(count, dtype=grey.dtype, device=grey.device)
    for iteration in range(iterations):
        grid = _affine_grid_at(theta, uy, ux)  # (N, 1, P, 2)
        warped = F.grid_sample(moving, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        residual = warped.view(count, -1) - values
        support = spatial * _inside(grid).view(count, -1)
        if iteration == iterations - 1:
            fit_cost = _robust_cost(residual, support)
        weight = support / (1 + (residual / _REFINE_SCALE).square())
        hessian = ((products * weight[:, None]) @ monomials).view(count, 18)[:, _HESSIAN_ENTRIES].view(count, 6, 6)
        gradient = ((gradients * (weight * residual)[:, None]) @ coordinates).view(count, 6)
        damping = 1e-3 * hessian.diagonal(dim1=1, dim2=2).mean(dim=1) + 1e-9
        step = torch.linalg.solve_ex(hessian + damping[:, None, None] * eye, -gradient[:, :, None])[0]
        # A step at most a quarter of the frame or of a unit scale: a degenerate fit cannot run off.
        theta = theta + step.nan_to_num(0.0, 0.0, 0.0).clamp_(-0.25, 0.25).view(count, 2, 3)
    unmoved = moving[:, 0, start::stride, start::stride].flatten(1)
    still_cost = _robust_cost(unmoved - values, spatial.expand(count, -1))
    identity_fits = still_cost <= _STILL_COST_RATIO * fit_cost + 1e-9
    out = pairs.reshape(count, 3, 3).clone()
    out[:, :2] = theta
    return out.view_as(pairs), identity_fits.view(pairs.shape[:2])


def _hessian_entries() -> list[int]:
    """Where entry (k, m) of the affine Gauss-Newton matrix is in the (3 gradient products x 6 monomials) sums.

    Parameter k = 3a + i stands for gradient a (x, y) times coordinate i (x, y, 1): entry (k, m)
    with m = 3b + j is the sum of gradient product (a, b) times monomial (i, j).
    """
    product = [[0, 1], [1, 2]]
    monomial = [[0, 1, 2], [1, 3, 4], [2, 4, 5]]
    return [product[k // 3][m // 3] * 6 + monomial[k % 3][m % 3] for k in range(6) for m in range(6)]


_HESSIAN_ENTRIES = _hessian_entries()


def _robust_cost(residual: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean Cauchy loss ``log(1 + (r / _REFINE_SCALE)^2)`` of (N, P) residuals, (N,)."""
    loss = torch.log1p((residual / _REFINE_SCALE).square())
    return (weight * loss).sum(dim=1) / weight.sum(dim=1).clamp_min(1e-12)


def _affine_grid_at(theta: torch.Tensor, uy: torch.Tensor, ux: torch.Tensor) -> torch.Tensor:
    """(N, 1, P, 2) sampling grid of (N, 2, 3) affine maps at P points (normalised ``uy``, ``ux``)."""
    x = theta[:, 0, :1] * ux + theta[:, 0, 1:2] * uy + theta[:, 0, 2:]
    y = theta[:, 1, :1] * ux + theta[:, 1, 1:2] * uy + theta[:, 1, 2:]
    return torch.stack([x, y], dim=-1)[:, None]


def _gradients(image: torch.Tensor, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (d/dy, d/dx) of (..., h, w) images in normalised units (zero at the border)."""
    gy = torch.zeros_like(image)
    gx = torch.zeros_like(image)
    gy[..., 1:-1, :] = (image[..., 2:, :] - image[..., :-2, :]) * (rows / 4)
    gx[..., :, 1:-1] = (image[..., :, 2:] - image[..., :, :-2]) * (cols / 4)
    return gy, gx


def _affine_grid(theta: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``F.affine_grid(theta, (N, 1, rows, cols), align_corners=False)`` by broadcasting (faster on CPUs).

    The result is a (N, rows, cols, 2) view of a (N, 2, rows, cols) tensor; ``grid_sample`` reads it
    as fast as a contiguous grid.
    """
    y = (torch.arange(rows, dtype=theta.dtype, device=theta.device) * 2 + 1) / rows - 1
    x = (torch.arange(cols, dtype=theta.dtype, device=theta.device) * 2 + 1) / cols - 1
    t = theta[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    return (t[:, :, 0] * x + t[:, :, 1] * y[:, None] + t[:, :, 2]).permute(0, 2, 3, 1)


def _inside(grid: torch.Tensor) -> torch.Tensor:
    """Whether each sampling point of a (N, h, w, 2) grid lies inside the frame, (N, h, w) bool."""
    return grid.abs().amax(dim=-1) <= 1


def _aligned_differences(
    clips: torch.Tensor, pairs: torch.Tensor
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Root mean squares over time of channel-summed frame differences, with and without alignment.

    ``clips`` (B, C, T, h, w); ``pairs`` (B, T-1, 3, 3). Every other frame (1, 3, 5, ...) is
    compared with its two neighbours, each warped onto it: that covers every pair once, with one
    warp per pair (half of what comparing every frame with both neighbours takes). Returns two pairs
    of (B, h, w) maps, each (aligned, raw):

    - three-frame: for each of those frames, the smaller of its two differences (the last frame
      of an even-length clip: its one difference). A moving object differs from both neighbours
      where it is in this frame, while each pair's difference also shows where it is in the other
      frame, displaced by the camera's motion.
    - pair: all those differences, which also cover the path between an object's positions (the
      inside of an object of one color).

    ``raw`` is the same difference without warping. Each difference counts by its pair's weight
    (``_pair_weights``), a three-frame one by the geometric mean of its two.
    """
    frames = clips.shape[2]
    video = clips.transpose(1, 2).contiguous()  # (B, T, C, h, w): a frame is one block of memory
    centres = slice(1, frames, 2)
    inner = slice(1, frames - 1, 2)  # those with a next frame
    inverse = _inverse_affine(pairs.reshape(-1, 3, 3)).view_as(pairs)
    # Map t maps frame t's coordinates to frame t+1's: it warps frame t+1 onto frame t, its
    # inverse frame t onto frame t+1.
    to_next, next_inside, next_raw = _warped_difference(video[:, 2::2], video[:, inner], pairs[:, inner])
    previous_maps = inverse[:, 0 : frames - 1 : 2]
    to_previous, previous_inside, previous_raw = _warped_difference(video[:, 0:-1:2], video[:, centres], previous_maps)
    next_weight = _pair_weights(to_next, next_inside)
    previous_weight = _pair_weights(to_previous, previous_inside)
    both = to_next.shape[1]
    three = torch.cat([torch.minimum(to_next, to_previous[:, :both]), to_previous[:, both:]], dim=1)
    three_raw = torch.cat([torch.minimum(next_raw, previous_raw[:, :both]), previous_raw[:, both:]], dim=1)
    three_weight = torch.cat([(next_weight * previous_weight[:, :both]).sqrt(), previous_weight[:, both:]], dim=1)
    pair = torch.cat([to_next, to_previous], dim=1)
    pair_raw = torch.cat([next_raw, previous_raw], dim=1)
    pair_weight = torch.cat([next_weight, previous_weight], dim=1)
    return (_rms(three, three_weight), _rms(three_raw, three_weight)), (
        _rms(pair, pair_weight),
        _rms(pair_raw, pair_weight),
    )


def _warped_difference(
    moving: torch.Tensor, fixed: torch.Tensor, maps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Channel-summed differences of (B, n, C, h, w) frames ``moving`` warped onto ``fixed``, (B, n, h, w).

    ``maps`` (B, n, 3, 3) from each fixed frame's coordinates to its moving one's. Differences
    are 0 where the source is outside the frame. Also (B, n, h, w) bool, where it is inside, and
    the differences without warping.
    """
    batch, count, channels, rows, cols = moving.shape
    grid = _affine_grid(maps.reshape(-1, 3, 3)[:, :2], rows, cols)
    flat = moving.reshape(-1, channels, rows, cols)
    warped = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = _inside(grid).view(batch, count, rows, cols)
    aligned = warped.view_as(moving).sub_(fixed).abs_().sum(dim=2).mul_(inside)
    return aligned, inside, (moving - fixed).abs_().sum(dim=2)


def _pair_weights(aligned: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """(B, T-1) weights of each pair's squared differences: ``(mean residue / (residue + 1e-3))^_WEIGHT_POWER``.

    A pair's residue is the ``_border_weight``-ed mean of its aligned difference over the pixels
    whose source is inside the frame, mostly background: large where the camera model does not fit
    the pair (a pan too fast to search, motion blur, a fit that followed the object), whose
    differences then say little about what moves. Scaled by the clip's mean residue, so that a clip
    whose pairs fit equally well keeps its unweighted differences.
    """
    spatial = _border_weight(aligned.shape[-2], aligned.shape[-1], aligned) * inside
    residue = (aligned * spatial).sum(dim=(-2, -1)) / spatial.sum(dim=(-2, -1)).clamp_min(1e-6)
    return (residue.mean(dim=1, keepdim=True) / (residue + 1e-3)).pow(_WEIGHT_POWER)


def _inverse_affine(maps: torch.Tensor) -> torch.Tensor:
    """Inverses of (N, 3, 3) affine maps (last row 0, 0, 1), in closed form."""
    a, b, tx = maps[:, 0].unbind(dim=1)
    c, d, ty = maps[:, 1].unbind(dim=1)
    det = a * d - b * c
    inverse = maps.clone()
    inverse[:, 0, 0], inverse[:, 0, 1], inverse[:, 1, 0], inverse[:, 1, 1] = d / det, -b / det, -c / det, a / det
    inverse[:, 0, 2] = -(inverse[:, 0, 0] * tx + inverse[:, 0, 1] * ty)
    inverse[:, 1, 2] = -(inverse[:, 1, 0] * tx + inverse[:, 1, 1] * ty)
    return inverse


def _rms(differences: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted root mean square over dim 1 of (B, K, h, w) differences with (B, K) weights, (B, h, w)."""
    return (differences.square() * (weights / weights.shape[1])[..., None, None]).sum(dim=1).sqrt_()


def _followed(aligned: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    """``aligned * (aligned / (aligned + raw))^_FOLLOW_POWER`` of (B, h, w) maps, scaled to maximum 1 (step 4)."""
    moving = aligned * (aligned / (aligned + raw + 1e-3)).pow(_FOLLOW_POWER)
    return moving / moving.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]


def _holes_filled(scores: torch.Tensor) -> torch.Tensor:
    """(B, h, w) scores with holes raised to their rim: grey-level hole filling along straight lines (step 5).

    A hole is a region that cannot be left for the frame's border without crossing higher
    scores. Frame differences see an object's edges and texture, not the inside of a region of one
    color, which its outline then encloses. Each pixel is raised to the lowest of the four highest
    scores between it and the border (left, right, up and down: a running maximum from each
    edge), then ``_FILL_STEPS`` steps of reconstruction by erosion (``max(erode_3x3(level),
    scores)``) let a region drain where its way out bends. Exact hole filling needs as many steps
    as the frame is wide; the straight lines get most of it in four scans.
    """
    from_top = scores.cummax(dim=-2).values
    from_bottom = scores.flip(-2).cummax(dim=-2).values.flip(-2)
    from_left = scores.cummax(dim=-1).values
    from_right = scores.flip(-1).cummax(dim=-1).values.flip(-1)
    level = torch.minimum(torch.minimum(from_top, from_bottom), torch.minimum(from_left, from_right))[:, None]
    for _ in range(_FILL_STEPS):
        level = torch.maximum(-F.max_pool2d(-level, 3, stride=1, padding=1), scores[:, None])
    return level[:, 0]


def _plain_differences(clips: torch.Tensor) -> torch.Tensor:
    """Root mean square over time of channel-summed differences of consecutive frames, (B, H, W) at full size.

    On the CPU outside ``torch.compile`` clip by clip, into one reused buffer (temporaries stay in
    cache); elsewhere batched.
    """
    batch, channels, frames, height, width = clips.shape
    if clips.device.type != "cpu" or torch.compiler.is_compiling():
        squared = (clips[:, :, 1:] - clips[:, :, :-1]).abs_().sum(dim=1).square_()
        return torch.nan_to_num_(squared.mean(dim=1).sqrt_(), nan=0.0, posinf=0.0, neginf=0.0)
    out = torch.empty(batch, height, width, dtype=clips.dtype)
    diffs = torch.empty(channels, frames - 1, height, width, dtype=clips.dtype)
    summed = torch.empty(frames - 1, height, width, dtype=clips.dtype)
    for b in range(batch):
        torch.sub(clips[b, :, 1:], clips[b, :, :-1], out=diffs)
        torch.sum(diffs.abs_(), dim=0, out=summed)
        torch.sum(summed.square_(), dim=0, out=out[b])
    return torch.nan_to_num_(out.div_(frames - 1).sqrt_(), nan=0.0, posinf=0.0, neginf=0.0)


def _small_motion(pairs: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """(B, T-1) whether each pair's map moves every frame corner by less than ``_STILL_PIXELS`` of a 112 px frame.

    ``pairs`` (B, T-1, 3, 3) are maps of (rows, cols) working frames.
    """
    corners = torch.tensor(
        [[-1.0, 1.0, -1.0, 1.0], [-1.0, -1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], dtype=pairs.dtype, device=pairs.device
    )
    moved = pairs[..., :2, :] @ corners - corners[:2]  # (B, T-1, 2, 4) in normalised units
    to_pixels = torch.tensor([cols / 2, rows / 2], dtype=pairs.dtype, device=pairs.device) * (112 / max(rows, cols))
    return (moved * to_pixels[:, None]).abs().amax(dim=(-2, -1)) < _STILL_PIXELS


def _scaled_to_frame(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, h, w) maps scaled to maximum 1 and resized (bilinear) to (B, height, width)."""
    maps = maps / (maps.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None])
    if maps.shape[-2:] != (height, width):
        maps = F.interpolate(maps[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return maps
