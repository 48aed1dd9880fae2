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

import functools
from collections.abc import Callable
from typing import NamedTuple, TypeVar

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


_Constant = TypeVar("_Constant")


def _geometry_constant(build: Callable[..., _Constant]) -> Callable[..., _Constant]:
    """Cache what ``build`` makes from sizes, a dtype and a device, outside ``torch.compile``.

    The index grids, weights and tables of the search and the refinement depend on the frames'
    geometry only; building them takes a few hundred small tensor operations per call, a good share
    of the mode's time on a CPU. They are built outside inference mode (ordinary tensors, which any
    later call may use) and shared between calls: nothing modifies them in place. Under
    ``torch.compile`` they are built in the graph instead (constants there).
    """
    cached = functools.lru_cache(maxsize=256)(build)

    @functools.wraps(build)
    def constant(*key: object) -> _Constant:
        if torch.compiler.is_compiling():
            return build(*key)
        with torch.inference_mode(False):
            return cached(*key)

    # typeshed's functools._Wrapped declares no attributes beyond __wrapped__; this one is set here.
    constant.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return constant


def stabilized_saliency(clips: torch.Tensor) -> torch.Tensor:
    """Motion map (B, H, W) of (B, C, T, H, W) clips with the camera's motion removed.

    Not normalised or blurred; larger means more likely foreground. Computed in the clips' dtype
    (float32 or float64), on their device. Non-finite values count as no motion.
    """
    height, width = clips.shape[-2:]
    color, plain = _working_frames_and_plain_differences(clips)
    pairs, identity_fits = _camera(color)
    (aligned, raw), (pair_aligned, pair_raw) = _aligned_differences(color, pairs)
    moving = _holes_filled(_followed(aligned, raw) + _PAIR_SHARE * _followed(pair_aligned, pair_raw))
    moving = _scaled_to_frame(moving, height, width)
    plain = _scaled_to_frame(plain, height, width)
    small_motion = _small_motion(pairs, color.shape[-2], color.shape[-1])
    still = (small_motion & identity_fits).all(dim=1).to(moving.dtype)[:, None, None]
    return torch.lerp(moving, plain, still)


def camera_maps(clips: torch.Tensor) -> torch.Tensor:
    """Affine background motion between consecutive frames of (B, C, T, H, W) clips, as the mode finds it.

    Returns (B, T-1, 3, 3) maps in normalised coordinates (-1 and 1 at the frame's outer edges,
    as ``F.affine_grid`` with ``align_corners=False``): frame t+1 at ``M @ (x, y, 1)`` shows what
    frame t shows at ``(x, y)``, for the background.
    """
    return _camera(_working_frames(clips))[0]


def _working_factor(clips: torch.Tensor) -> int:
    """The whole factor by which step 1 reduces the frames of (..., H, W) clips."""
    return max(1, min(clips.shape[-2:]) // _WORKING_SIDE)


def _working_frames(clips: torch.Tensor) -> torch.Tensor:
    """Step 1: the (B, C, T, h, w) working frames of (B, C, T, H, W) clips, non-finite values 0."""
    return torch.nan_to_num(_pooled(clips, _working_factor(clips)), nan=0.0, posinf=0.0, neginf=0.0)


def _working_frames_and_plain_differences(clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``_working_frames`` and ``_plain_differences`` of (B, C, T, H, W) clips.

    On the CPU outside ``torch.compile`` clip by clip, reading each clip once from memory for both,
    into reused buffers (temporaries stay in cache); the working frames are then a (B, C, T, h, w)
    view of (B, T, C, h, w) memory (a frame is one block, as ``_aligned_differences`` reads them).
    Elsewhere batched, one after the other.
    """
    if clips.device.type != "cpu" or torch.compiler.is_compiling():
        return _working_frames(clips), _plain_differences(clips)
    factor = _working_factor(clips)
    batch, channels, frames, height, width = clips.shape
    rows, cols = height // factor, width // factor
    working = torch.empty(batch, frames, channels, rows, cols, dtype=clips.dtype)
    plain = torch.empty(batch, height, width, dtype=clips.dtype)
    diffs = torch.empty(channels, frames - 1, height, width, dtype=clips.dtype)
    summed = torch.empty(frames - 1, height, width, dtype=clips.dtype)
    for b in range(batch):
        clip = clips[b]
        _plain_squares(clip, diffs, summed, out=plain[b])
        _pooled(clip, factor, out=working[b].transpose(0, 1))
    plain = torch.nan_to_num_(plain.div_(frames - 1).sqrt_(), nan=0.0, posinf=0.0, neginf=0.0)
    return torch.nan_to_num_(working, nan=0.0, posinf=0.0, neginf=0.0).transpose(1, 2), plain


def _camera(color: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 2-3: the (B, T-1, 3, 3) affine maps between consecutive (B, C, T, h, w) working frames.

    Also (B, T-1) whether the identity fits each pair about as well as its map (``_refine_affine``).
    """
    grey = color.mean(dim=1)
    steps = _search(_pyramid(grey))  # (B, T-1, 2) in pixels of ``grey``
    pairs = _translation_maps(steps, grey.shape[-2], grey.shape[-1])
    return _refine_affine(grey, pairs, _REFINE_STEPS)


def _pooled(frames: torch.Tensor, factor: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``factor`` x ``factor`` blocks of (..., H, W) frames, the last rows and columns dropped.

    The same as ``avg_pool2d`` up to rounding, and faster on CPUs for small factors: rows are
    summed first, as contiguous slices. ``out``: a tensor of the result's shape to write it to.
    """
    if factor == 1:
        return frames if out is None else out.copy_(frames)
    *leading, height, width = frames.shape
    rows, cols = height // factor, width // factor
    blocks = frames[..., : rows * factor, : cols * factor].reshape(-1, rows, factor, cols * factor)
    summed = blocks[:, :, 0]
    for i in range(1, factor):
        summed = summed + blocks[:, :, i]
    columns = summed.view(*leading, rows, cols, factor)
    pooled = columns[..., 0] + columns[..., 1]
    for i in range(2, factor):
        pooled = pooled.add_(columns[..., i])
    if out is None:
        return pooled.div_(factor * factor)
    return torch.div(pooled, factor * factor, out=out)


def _pyramid(grey: torch.Tensor) -> list[torch.Tensor]:
    """``grey`` (B, T, h, w) and its 2x, 4x, ... averages, as many as the search levels use.

    Levels too small to average again repeat the previous one.
    """
    levels = [grey]
    for _ in range(max(halvings for halvings, _, _ in _SEARCH_LEVELS)):
        finer = levels[-1]
        levels.append(_pooled(finer, 2) if min(finer.shape[-2:]) >= 2 else finer)
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
        cost = _alignment_cost(thumbs, offset, radius, stride, int(reach) + 1)  # (N, 2r+1, 2r+1)
        # At the coarsest level the smaller motion is preferred, at finer ones the coarser estimate:
        # a periodic background then cannot tip a tie to a period away (nor a sparse comparison grid).
        ranked = (_pooled_over_time(cost, batch) if level == 0 else cost) + _smallest_motion_prior(
            radius, cost.dtype, cost.device
        )
        best = ranked.flatten(1).argmin(dim=1)
        row, col = best // (2 * radius + 1), best % (2 * radius + 1)
        offset = offset + torch.stack([row - radius, col - radius], dim=1).to(offset.dtype)
        reach = reach + radius
        if level == 0 and frames > 2:
            offset = _propagated(thumbs, offset, ranked.flatten(1).amin(dim=1), radius, stride)
            reach = max(reach, _sweep_reach(rows * enlarge, cols * enlarge, radius))
        if enlarge > 1:
            offset = offset / enlarge
            reach = reach / enlarge
        previous = rows
    offset = offset + _parabola_peak(cost, row, col) / enlarge
    assert previous is not None
    return (offset * (height / previous)).view(batch, frames - 1, 2)


def _propagated(
    thumbs: torch.Tensor, offset: torch.Tensor, score: torch.Tensor, radius: int, stride: int
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
    batch, frames, rows, cols = thumbs.shape
    pairs = frames - 1
    full_radius, radius = radius, _PROPAGATION_RADIUS
    reach = _sweep_reach(rows, cols, full_radius)
    # What every step compares, prepared once: the steps differ only in which pairs and where.
    search = _search_setup(thumbs, radius, stride, reach)
    state = torch.cat([offset, score[:, None]], dim=1)  # pair t of clip b at b * pairs + t: offset, cost
    inner = slice(full_radius - radius, full_radius + radius + 1)
    prior = _smallest_motion_prior(full_radius, score.dtype, score.device)[inner, inner].flatten()
    deltas = _candidate_offsets(radius, offset.dtype, offset.device)
    # The steps are sequential, so each should launch as few operations as it can: what they read
    # but their centres is gathered once, for all of them.
    sources, targets, neighbours, shares = _sweep_plan(batch, pairs, thumbs.dtype, thumbs.device)
    sizes = [len(step) for step in sources]
    plan = zip(
        sources,
        targets,
        _source_starts(search, neighbours).split(sizes),  # each neighbour's later frame in ``search.sources``
        search.compared[neighbours.flatten()].split([3 * size for size in sizes]),  # (n B * 3, P) each
        shares,
        strict=True,
    )
    for source, target, base, against, weights in plan:
        centre = state[source, :2]
        origin = _window_origins(search, centre)  # (n B, 2): in the sources, in the overlap tables
        capped = _capped_sums(_windows(search, (base + origin[:, :1]).flatten()), search, against)
        pooled = torch.bmm(weights, capped.view(weights.shape[0], 3, -1))[:, 0]
        value, best = (_over_overlap(pooled, search, origin[:, 1]) + prior).min(dim=1)
        found = torch.cat([(centre + deltas[best]).clamp_(-reach, reach), value[:, None]], dim=1)
        kept = state[target]
        state[target] = torch.where((value < kept[:, 2])[:, None], found, kept)
    return state[:, :2].contiguous()


@_geometry_constant
def _sweep_plan(
    batch: int, pairs: int, dtype: torch.dtype, device: torch.device
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], torch.Tensor, tuple[torch.Tensor, ...]]:
    """Which pairs each step of ``_propagated``'s sweeps searches, around which, with which neighbours.

    Step k searches pair k + 1 around pair k (the forward sweep) and, once the forward sweep has
    passed the clip's middle, pair T-3-k around pair T-2-k (the backward sweep, whose sources the
    forward sweep has then settled), batched over clips and sweeps. Pair t of clip b is
    b * pairs + t. Returns, per step, the (n B,) source and target pairs; the (S, 3) neighbours t-1,
    t and t+1 of every step's targets, the steps one after the other (clamped into the clip, the
    missing ones weighing 0); and per step their (n B, 1, 3) weights.
    """
    steps = [
        [(k + 1, k)] + ([(pairs - 2 - k, pairs - 1 - k)] if pairs - 2 - k < k + 1 else []) for k in range(pairs - 1)
    ]
    searches = [(b * pairs, t, source) for step in steps for t, source in step for b in range(batch)]
    neighbours = [[start + max(t - 1, 0), start + t, start + min(t + 1, pairs - 1)] for start, t, _ in searches]
    share = [[_NEIGHBOUR_WEIGHT * (t > 0), 1.0, _NEIGHBOUR_WEIGHT * (t < pairs - 1)] for _, t, _ in searches]
    shares = torch.tensor(share, dtype=dtype, device=device)
    sizes = [batch * len(step) for step in steps]
    return (
        torch.tensor([start + source for start, _, source in searches], device=device).split(sizes),
        torch.tensor([start + t for start, t, _ in searches], device=device).split(sizes),
        torch.tensor(neighbours, device=device),
        (shares / shares.sum(dim=1, keepdim=True))[:, None].split(sizes),
    )


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


def _alignment_cost(thumbs: torch.Tensor, offset: torch.Tensor, radius: int, stride: int, reach: int) -> torch.Tensor:
    """Weighted truncated mean absolute difference of consecutive thumbnails for every offset near ``offset``.

    ``thumbs`` (B, T, h, w); ``offset`` (N, 2) the whole-pixel offset found so far for each of the
    N = B (T-1) pairs, at most ``reach`` pixels either way. Returns (N, 2r+1, 2r+1), entry (i, j)
    for offset ``offset + (i - r, j - r)``. The central pixels of a pair's earlier frame (all but a
    border of r) are compared, every ``stride``-th in each direction, weighted by ``_border_weight``;
    pixels whose source in the later frame is outside it are left out (the mean is over the
    overlap), so a fast pan is not penalised for what it brings into view.
    """
    count = offset.shape[0]
    search = _search_setup(thumbs, radius, stride, reach)
    origin = _window_origins(search, offset.clamp(-reach, reach))
    pair_start = _source_starts(search, torch.arange(count, device=offset.device))
    capped = _capped_sums(_windows(search, pair_start + origin[:, 0]), search, search.compared)
    size = 2 * radius + 1
    return _over_overlap(capped, search, origin[:, 1]).view(count, size, size)


class _Geometry(NamedTuple):
    """What a search compares, for frames of one size: ``_search_geometry``."""

    margin: int  # the frame of ``_OUTSIDE`` values around each frame
    window: torch.Tensor  # (Hw * Ww,) indices of the window that all candidates read, at offset 0
    shape: tuple[int, int, int, int]  # (L, padded width, Hw, Ww): L the padded frame's size
    taps: tuple[int, int]  # compared pixels per column and per row
    radius: int
    stride: int
    weight: torch.Tensor  # (P,) the compared pixels' weights
    to_origins: torch.Tensor  # (2, 2): an offset (dy, dx) times this is its window's and its tables' origin
    candidates: torch.Tensor  # (K,) each candidate's place in the tables from its window's origin
    overlap: torch.Tensor  # (S * S, 2) per offset: (1, -cap * weight outside) / weight inside (``_over_overlap``)


class _Search(NamedTuple):
    """What ``_alignment_cost`` compares, prepared once for a set of frame pairs (``_search_setup``)."""

    geometry: _Geometry
    sources: torch.Tensor  # (B * T * L,) every frame in a frame of ``_OUTSIDE``, flattened
    pairs: int  # pairs per clip: pair b * pairs + t compares frames t and t + 1 of clip b
    compared: torch.Tensor  # (N, P) compared pixels of each earlier frame


def _search_setup(thumbs: torch.Tensor, radius: int, stride: int, reach: int) -> _Search:
    """Prepare the search of the pairs of consecutive (B, T, h, w) thumbnails, offsets up to ``reach`` + ``radius``.

    Each frame goes into a frame of ``_OUTSIDE`` values ``reach + radius`` wide, and every
    candidate near an offset reads one window of a pair's later frame.
    """
    batch, frames, rows, cols = thumbs.shape
    geometry = _search_geometry(rows, cols, radius, stride, reach, thumbs.dtype, thumbs.device)
    margin = geometry.margin
    sources = F.pad(thumbs.reshape(-1, rows, cols), (margin, margin, margin, margin), value=_OUTSIDE)
    compared = thumbs[:, :-1, radius : rows - radius : stride, radius : cols - radius : stride]
    return _Search(geometry, sources.flatten(), frames - 1, compared.reshape(batch * (frames - 1), -1))


@_geometry_constant
def _search_geometry(
    rows: int, cols: int, radius: int, stride: int, reach: int, dtype: torch.dtype, device: torch.device
) -> _Geometry:
    """The windows, weights and tables of a search of (rows, cols) frames (``_search_setup``).

    Whether a compared pixel's source is outside the frame depends on the offset only: the weights
    inside and outside are tabulated once for every offset within ``reach + radius`` (S = 2
    (reach + radius) + 1 a side).
    """
    margin = reach + radius
    width = cols + 2 * margin
    taps_r, taps_c = len(range(radius, rows - radius, stride)), len(range(radius, cols - radius, stride))
    window_rows, window_cols = 2 * radius + (taps_r - 1) * stride + 1, 2 * radius + (taps_c - 1) * stride + 1
    # At offset 0, candidate (0, 0) reads its first compared pixel (radius, radius) at (-radius, -radius).
    ys = torch.arange(window_rows, device=device) + margin
    xs = torch.arange(window_cols, device=device) + margin
    window = (ys[:, None] * width + xs[None, :]).flatten()
    weight = _border_weight(rows, cols, dtype, device)[radius : rows - radius : stride, radius : cols - radius : stride]
    # At offset d, compared pixel (radius + stride k, radius + stride l) reads a source inside the
    # frame when both its row and its column are inside: the weight inside is (rows in) W (columns in).
    side = 2 * margin + 1
    shifts = torch.arange(-margin, margin + 1, device=device)
    row_inside = _inside_frame(torch.arange(radius, rows - radius, stride, device=device)[:, None] + shifts, rows)
    col_inside = _inside_frame(torch.arange(radius, cols - radius, stride, device=device)[:, None] + shifts, cols)
    inside_weight = row_inside.to(dtype).T @ weight @ col_inside.to(dtype)  # (S, S)
    total = weight.sum()
    outside_weight = total - inside_weight
    covered = inside_weight.clamp_min(1e-6 * total)
    size = 2 * radius + 1
    candidates = torch.arange(size, device=device)
    return _Geometry(
        margin=margin,
        window=window,
        shape=((rows + 2 * margin) * width, width, window_rows, window_cols),
        taps=(taps_r, taps_c),
        radius=radius,
        stride=stride,
        weight=weight.flatten(),
        to_origins=torch.tensor([[width, side], [1, 1]], dtype=dtype, device=device),
        # Candidate (i, j) of a window whose centre is offset d reads offset d + (i - r, j - r).
        candidates=(candidates[:, None] * side + candidates[None, :]).flatten() + (margin - radius) * (side + 1),
        overlap=torch.stack([1 / covered, -_RESIDUAL_CAP * outside_weight / covered], dim=-1).view(-1, 2),
    )


def _inside_frame(positions: torch.Tensor, length: int) -> torch.Tensor:
    """Whether integer ``positions`` lie in [0, ``length``)."""
    return (positions >= 0) & (positions < length)


def _source_starts(search: _Search, pairs: torch.Tensor) -> torch.Tensor:
    """Where the later frame of each of the ``pairs`` (ids, any shape) starts in ``search.sources``."""
    return (pairs + pairs // search.pairs + 1) * search.geometry.shape[0]


@_geometry_constant
def _candidate_offsets(radius: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(K, 2) offsets (i - r, j - r) of the K = (2r+1)^2 candidates, row by row."""
    steps = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    return torch.stack(torch.meshgrid(steps, steps, indexing="ij"), dim=-1).view(-1, 2)


def _window_origins(search: _Search, centre: torch.Tensor) -> torch.Tensor:
    """(n, 2) long: where the windows of whole-pixel offsets ``centre`` (n, 2) start in the sources and tables."""
    return (centre @ search.geometry.to_origins).long()


def _windows(search: _Search, start: torch.Tensor) -> torch.Tensor:
    """(n, Hw, Ww) windows of ``search.sources`` that the candidates read, from each one's offset-0 origin (n,).

    One gather reads each pair's window; ``_capped_sums`` cuts the candidates from it (each is the
    window's compared grid shifted by (i, j)), instead of gathering every candidate's pixels.
    """
    window_rows, window_cols = search.geometry.shape[2:]
    return search.sources.take(start[:, None] + search.geometry.window).view(-1, window_rows, window_cols)


def _capped_sums(windows: torch.Tensor, search: _Search, compared: torch.Tensor) -> torch.Tensor:
    """(n, K) weighted sums of ``|source - compared|`` capped at ``_RESIDUAL_CAP``.

    ``windows`` (n, Hw, Ww) from ``_windows``: candidate (i, j) of the K = (2r+1)^2 reads the
    window's compared grid shifted by (i, j); ``compared`` (n, P) the P pixels it is compared
    with, weighted by the geometry's ``weight``. A source outside the frame (``_OUTSIDE``) costs the
    cap; ``_over_overlap`` takes it out again.
    """
    count, window_rows, window_cols = windows.shape
    geometry = search.geometry
    size, stride, (taps_r, taps_c) = 2 * geometry.radius + 1, geometry.stride, geometry.taps
    values = windows.as_strided(
        (count, size, size, taps_r, taps_c),
        (window_rows * window_cols, window_cols, 1, stride * window_cols, stride),
    )
    # Copied first: a contiguous copy and a contiguous difference are faster than one difference
    # that reads the overlapping, strided candidates.
    residual = values.contiguous().sub_(compared.view(count, 1, 1, taps_r, taps_c))
    return (residual.abs_().clamp_(max=_RESIDUAL_CAP).view(-1, taps_r * taps_c) @ geometry.weight).view(count, -1)


def _over_overlap(capped: torch.Tensor, search: _Search, origin: torch.Tensor) -> torch.Tensor:
    """(n, K) mean misfits over the frames' overlap from (n, K) ``_capped_sums`` and the (n,) tables' origins.

    Sources outside the frame cost the cap in the sums: the mean over the overlap is the sum less
    the cap times the weight outside, over the weight inside (one multiply-add with the tables).
    """
    index = origin[:, None] + search.geometry.candidates
    scale, shift = search.geometry.overlap.index_select(0, index.flatten()).view(*index.shape, 2).unbind(dim=-1)
    return torch.addcmul(shift, capped, scale)


@_geometry_constant
def _smallest_motion_prior(radius: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(2r+1, 2r+1) penalty growing with the square of the offset's length, added at the coarsest level.

    Without it, whatever has texture decides: before a plain wall or sky the object is the only
    thing to align, and a periodic background (stripes, a fence) fits as well one period away.
    The penalty prefers the smaller motion among fits that are close: at the search's corner it
    equals ``_MOTION_PRIOR`` times the cost of a frame where no pixel fits; at one pixel of the
    coarse thumbnail it is ``_MOTION_PRIOR / (2 r^2)`` of that.
    """
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    squared = offsets[:, None].square() + offsets[None, :].square()
    return squared * (_MOTION_PRIOR * _RESIDUAL_CAP / (2 * radius * radius))


def _parabola_peak(cost: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """Sub-pixel (dy, dx) in [-0.5, 0.5] from a parabola through the minimum and its neighbours."""
    count, size, _ = cost.shape
    # The minimum, then its neighbours above, left, below and right (clamped into the volume).
    down, right = _stencil(cost.device)
    rows = (row[:, None] + down).clamp_(0, size - 1)
    cols = (col[:, None] + right).clamp_(0, size - 1)
    values = cost.view(count, -1).gather(1, rows * size + cols)
    centre, before, after = values[:, :1], values[:, 1:3], values[:, 3:]
    curvature = before + after - 2 * centre
    flat = curvature <= 1e-12  # a flat or edge minimum: keep the whole-pixel estimate
    step = 0.5 * (before - after) / torch.where(flat, torch.ones_like(curvature), curvature)
    return torch.where(flat, torch.zeros_like(step), step).clamp_(-0.5, 0.5)


@_geometry_constant
def _stencil(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column steps (5,) from a pixel to itself and its neighbours above, left, below and right."""
    return torch.tensor([0, -1, 0, 1, 0], device=device), torch.tensor([0, 0, -1, 0, 1], device=device)


@_geometry_constant
def _border_weight(rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(rows, cols) weights that grow from the frame's centre to its border (mean 1)."""
    y = (torch.arange(rows, dtype=dtype, device=device) + 0.5) / rows * 2 - 1
    x = (torch.arange(cols, dtype=dtype, device=device) + 0.5) / cols * 2 - 1
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
    gy, gx = (gradient.flatten(1) for gradient in _gradients_at(template, start, stride))
    values = template[:, start::stride, start::stride].flatten(1)
    # The Jacobian's rows are (gx, gy) times (ux, uy, 1): the normal equations need only the three
    # gradient products and the two gradients (times the residuals) against the six monomials of
    # the coordinates, contracted by one matrix product (``_NORMAL_ENTRIES``).
    terms = torch.stack([gx * gx, gx * gy, gy * gy, gx, gy], dim=1)  # (N, 5, P)
    monomials, to_grid, spatial = _refinement_points(rows, cols, stride, grey.dtype, grey.device)
    theta = pairs.reshape(count, 3, 3)[:, :2].reshape(count, 6)
    eye = torch.eye(6, dtype=grey.dtype, device=grey.device)
    one = torch.ones((), dtype=grey.dtype, device=grey.device)
    fit_cost = torch.zeros(count, dtype=grey.dtype, device=grey.device)
    for iteration in range(iterations):
        grid = (theta @ to_grid).view(count, 2, 1, -1).permute(0, 2, 3, 1)
        warped = F.grid_sample(moving, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        residual = warped.view(count, -1) - values
        support = spatial * _inside(grid).view(count, -1)
        if iteration == iterations - 1:
            fit_cost = _robust_cost(residual, support)
        weight = support / torch.addcmul(one, residual, residual, value=1 / _REFINE_SCALE**2)
        weighted = terms * weight[:, None]
        weighted[:, 3:] *= residual[:, None]
        # (6, P) @ (P, N * 5) rather than (N * 5, P) @ (P, 6): far faster for so few columns.
        sums = (monomials @ weighted.view(-1, weighted.shape[-1]).T).T.reshape(count, 30)[:, _NORMAL_ENTRIES]
        hessian, gradient = sums[:, :36].view(count, 6, 6), sums[:, 36:]
        damping = 1e-3 * hessian.diagonal(dim1=1, dim2=2).mean(dim=1) + 1e-9
        step = torch.linalg.solve_ex(hessian + damping[:, None, None] * eye, -gradient[:, :, None])[0]
        # A step at most a quarter of the frame or of a unit scale: a degenerate fit cannot run off.
        theta = theta + step.view(count, 6).nan_to_num(0.0, 0.0, 0.0).clamp_(-0.25, 0.25)
    unmoved = moving[:, 0, start::stride, start::stride].flatten(1)
    still_cost = _robust_cost(unmoved - values, spatial.expand(count, -1))
    identity_fits = still_cost <= _STILL_COST_RATIO * fit_cost + 1e-9
    out = pairs.reshape(count, 3, 3).clone()
    out[:, :2] = theta.view(count, 2, 3)
    return out.view_as(pairs), identity_fits.view(pairs.shape[:2])


@_geometry_constant
def _refinement_points(
    rows: int, cols: int, stride: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The points of ``_refine_affine`` on (rows, cols) frames: every ``stride``-th pixel from ``stride // 2``.

    Returns the (6, P) monomials of their normalised coordinates (x x, x y, x, y y, y, 1); the
    (6, 2 P) matrix that turns (N, 6) maps into the points' x (row x of the map against the
    coordinates), then their y; and their (P,) weights (``_border_weight``, 0 on the frame's border,
    where the central differences are not defined).
    """
    start = stride // 2
    rs = torch.arange(start, rows, stride, device=device)
    cs = torch.arange(start, cols, stride, device=device)
    y, x = _pixel_centres(rows, cols, dtype, device)
    uy = y[start::stride, None].expand(len(rs), len(cs)).flatten()
    ux = x[None, start::stride].expand(len(rs), len(cs)).flatten()
    ones = torch.ones_like(ux)
    coordinates = torch.stack([ux, uy, ones])  # (3, P)
    monomials = torch.stack([ux * ux, ux * uy, ux, uy * uy, uy, ones])
    nothing = torch.zeros_like(coordinates)
    to_grid = torch.cat([torch.cat([coordinates, nothing], dim=1), torch.cat([nothing, coordinates], dim=1)])
    inner = ((rs > 0) & (rs < rows - 1))[:, None] & ((cs > 0) & (cs < cols - 1))[None, :]
    spatial = _border_weight(rows, cols, dtype, device)[start::stride, start::stride].flatten() * inner.flatten()
    return monomials, to_grid, spatial


def _normal_entries() -> list[int]:
    """Where the affine Gauss-Newton system is in the (5 terms x 6 monomials) sums of ``_refine_affine``.

    The terms are the gradient products (x x, x y, y y) and the gradients (x, y) times the
    residuals; the monomials of the coordinates (x x, x y, x, y y, y, 1). Parameter k = 3a + i
    stands for gradient a (x, y) times coordinate i (x, y, 1): the matrix's entry (k, m) with
    m = 3b + j is the sum of gradient product (a, b) times monomial (i, j), and the right-hand
    side's entry k that of term 3 + a times coordinate i. Returns the 36 matrix entries row by
    row, then the 6 right-hand side entries.
    """
    product = [[0, 1], [1, 2]]
    monomial = [[0, 1, 2], [1, 3, 4], [2, 4, 5]]
    coordinate = [2, 4, 5]
    matrix = [product[k // 3][m // 3] * 6 + monomial[k % 3][m % 3] for k in range(6) for m in range(6)]
    return matrix + [(3 + k // 3) * 6 + coordinate[k % 3] for k in range(6)]


_NORMAL_ENTRIES = _normal_entries()


def _robust_cost(residual: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean Cauchy loss ``log(1 + (r / _REFINE_SCALE)^2)`` of (N, P) residuals, (N,)."""
    loss = torch.log1p((residual / _REFINE_SCALE).square())
    return (weight * loss).sum(dim=1) / weight.sum(dim=1).clamp_min(1e-12)


def _gradients_at(image: torch.Tensor, start: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (d/dy, d/dx) of (N, h, w) images, normalised units, every ``stride``-th pixel from ``start``.

    Returns two (N, h', w') maps. At the frame's border the missing neighbour reads 0 (the
    refinement gives those points no weight).
    """
    rows, cols = image.shape[-2:]
    padded = F.pad(image, (1, 1, 1, 1))
    taps_r, taps_c = len(range(start, rows, stride)), len(range(start, cols, stride))

    def at(row: int, col: int) -> torch.Tensor:  # the samples shifted by (row, col) - 1
        return padded[:, row : row + stride * (taps_r - 1) + 1 : stride, col : col + stride * (taps_c - 1) + 1 : stride]

    gy = (at(start + 2, start + 1) - at(start, start + 1)) * (rows / 4)
    gx = (at(start + 1, start + 2) - at(start + 1, start)) * (cols / 4)
    return gy, gx


def _affine_grid(theta: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``F.affine_grid(theta, (N, 1, rows, cols), align_corners=False)`` by broadcasting (faster on CPUs).

    The result is a (N, rows, cols, 2) view of a (N, 2, rows, cols) tensor; ``grid_sample`` reads it
    as fast as a contiguous grid.
    """
    y, x = _pixel_centres(rows, cols, theta.dtype, theta.device)
    t = theta[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    return (t[:, :, 0] * x + t[:, :, 1] * y[:, None] + t[:, :, 2]).permute(0, 2, 3, 1)


@_geometry_constant
def _pixel_centres(rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalised coordinates (``align_corners=False``) of (rows, cols) pixel centres: (rows,) y and (cols,) x."""
    y = (torch.arange(rows, dtype=dtype, device=device) * 2 + 1) / rows - 1
    x = (torch.arange(cols, dtype=dtype, device=device) * 2 + 1) / cols - 1
    return y, x


def _inside(grid: torch.Tensor) -> torch.Tensor:
    """Whether each sampling point of a (N, h, w, 2) grid lies inside the frame, (N, h, w) bool."""
    distance = grid.abs()
    return torch.maximum(distance[..., 0], distance[..., 1]) <= 1  # far faster than a reduction over 2


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
    to_next, next_inside = _warped_difference(video[:, 2::2], video[:, inner], pairs[:, inner])
    previous_maps = inverse[:, 0 : frames - 1 : 2]
    to_previous, previous_inside = _warped_difference(video[:, 0:-1:2], video[:, centres], previous_maps)
    raw = (video[:, 1:] - video[:, :-1]).abs_().sum(dim=2)  # (B, T-1, h, w): pair t without warping
    next_raw, previous_raw = raw[:, 1::2], raw[:, 0::2]
    border = _border_weight(video.shape[-2], video.shape[-1], video.dtype, video.device)
    next_weight = _pair_weights(to_next, next_inside, border)
    previous_weight = _pair_weights(to_previous, previous_inside, border)
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel-summed differences of (B, n, C, h, w) frames ``moving`` warped onto ``fixed``, (B, n, h, w).

    ``maps`` (B, n, 3, 3) from each fixed frame's coordinates to its moving one's. Differences
    are 0 where the source is outside the frame. Also (B, n, h, w) bool, where it is inside.
    """
    batch, count, channels, rows, cols = moving.shape
    grid = _affine_grid(maps.reshape(-1, 3, 3)[:, :2], rows, cols)
    flat = moving.reshape(-1, channels, rows, cols)
    warped = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = _inside(grid).view(batch, count, rows, cols)
    return warped.view_as(moving).sub_(fixed).abs_().sum(dim=2).mul_(inside), inside


def _pair_weights(aligned: torch.Tensor, inside: torch.Tensor, border: torch.Tensor) -> torch.Tensor:
    """(B, T-1) weights of each pair's squared differences: ``(mean residue / (residue + 1e-3))^_WEIGHT_POWER``.

    A pair's residue is the mean of its aligned difference weighted by ``border`` (``_border_weight``)
    over the pixels whose source is inside the frame, mostly background: large where the camera
    model does not fit the pair (a pan too fast to search, motion blur, a fit that followed the
    object), whose differences then say little about what moves. Scaled by the clip's mean
    residue, so that a clip whose pairs fit equally well keeps its unweighted differences.
    """
    spatial = border * inside
    residue = (aligned * spatial).sum(dim=(-2, -1)) / spatial.sum(dim=(-2, -1)).clamp_min(1e-6)
    return (residue.mean(dim=1, keepdim=True) / (residue + 1e-3)).pow(_WEIGHT_POWER)


def _inverse_affine(maps: torch.Tensor) -> torch.Tensor:
    """Inverses of (N, 3, 3) affine maps (last row 0, 0, 1); ``inv_ex`` does not check them (no synchronisation)."""
    return torch.linalg.inv_ex(maps)[0]


def _rms(differences: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted root mean square over dim 1 of (B, K, h, w) differences with (B, K) weights, (B, h, w)."""
    batch, count, rows, cols = differences.shape
    squares = differences.square().view(batch, count, rows * cols)
    return torch.bmm((weights / count)[:, None], squares).view(batch, rows, cols).sqrt_()


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
    level = torch.minimum(torch.minimum(from_top, from_bottom), torch.minimum(from_left, from_right))
    for _ in range(_FILL_STEPS):
        level = torch.maximum(_eroded(level), scores)
    return level


def _eroded(maps: torch.Tensor) -> torch.Tensor:
    """Minimum over each pixel's 3 x 3 neighbourhood inside the frame of (B, h, w) maps, row then column."""
    padded = F.pad(maps, (1, 1, 1, 1), value=float("inf"))
    across = torch.minimum(torch.minimum(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])
    return torch.minimum(torch.minimum(across[..., :-2, :], across[..., 1:-1, :]), across[..., 2:, :])


def _plain_differences(clips: torch.Tensor) -> torch.Tensor:
    """Root mean square over time of channel-summed differences of consecutive frames, (B, H, W) at full size.

    Batched; on the CPU outside ``torch.compile`` ``_working_frames_and_plain_differences`` computes
    the same clip by clip (``_plain_squares``).
    """
    squared = (clips[:, :, 1:] - clips[:, :, :-1]).abs_().sum(dim=1).square_()
    return torch.nan_to_num_(squared.mean(dim=1).sqrt_(), nan=0.0, posinf=0.0, neginf=0.0)


def _plain_squares(clip: torch.Tensor, diffs: torch.Tensor, summed: torch.Tensor, out: torch.Tensor) -> None:
    """Sum over time of squared channel-summed differences of a (C, T, H, W) clip's frames, into ``out`` (H, W).

    ``diffs`` (C, T-1, H, W) and ``summed`` (T-1, H, W) are buffers.
    """
    torch.sub(clip[:, 1:], clip[:, :-1], out=diffs)
    torch.sum(diffs.abs_(), dim=0, out=summed)
    torch.sum(summed.square_(), dim=0, out=out)


def _small_motion(pairs: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """(B, T-1) whether each pair's map moves every frame corner by less than ``_STILL_PIXELS`` of a 112 px frame.

    ``pairs`` (B, T-1, 3, 3) are maps of (rows, cols) working frames.
    """
    corners, to_pixels = _corners(rows, cols, pairs.dtype, pairs.device)
    moved = pairs[..., :2, :] @ corners - corners[:2]  # (B, T-1, 2, 4) in normalised units
    return (moved * to_pixels).abs().amax(dim=(-2, -1)) < _STILL_PIXELS


@_geometry_constant
def _corners(rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The frame's corners, (3, 4) homogeneous normalised coordinates, and (2, 1) pixels of a 112 px frame per unit."""
    corners = torch.tensor(
        [[-1.0, 1.0, -1.0, 1.0], [-1.0, -1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], dtype=dtype, device=device
    )
    to_pixels = torch.tensor([[cols / 2], [rows / 2]], dtype=dtype, device=device) * (112 / max(rows, cols))
    return corners, to_pixels


def _scaled_to_frame(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, h, w) maps scaled to maximum 1 and resized (bilinear) to (B, height, width)."""
    maps = maps / (maps.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None])
    if maps.shape[-2:] != (height, width):
        maps = F.interpolate(maps[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    return maps
