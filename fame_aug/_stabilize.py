"""Camera-motion compensation for ``mode="stabilized"``: align the frames, then find what moves.

Frame differences see the whole background change when the camera moves, and it outweighs the
object. This module estimates the background's motion between consecutive frames as an affine
map (pan, tilt, zoom, roll and shear) and scores each pixel by how much it differs once the
background is aligned, favouring pixels that the alignment makes *worse* (what the camera
follows):

1. Frames are averaged down by a whole factor to about 56 px (112 -> 56, 224 -> 56).
2. A coarse-to-fine exhaustive translation search per frame pair (radius 4 on 28 px thumbnails,
   2 at 56 px: up to 20 px of a 112 px frame) minimises a truncated absolute difference, so that
   pixels that do not follow the motion cost at most a constant. Pixels near the frame's border
   weigh more (the background surrounds the object, and a tracked object sits near the centre),
   and each pair's coarse costs are averaged with its neighbours' in time (the camera moves
   smoothly), so that a large object still in the image does not win the fit. Then, twice, every
   pair is searched again (radius 2 coarse px) around the offset found for the pair before it, and
   keeps the better fit: a pan that speeds up stays within reach one pair further each pass,
   while the radius, and with it the risk of locking onto the object, stays small.
3. Robust Gauss-Newton steps (Cauchy-weighted, same border weights) refine the translation to a
   full affine map on the 56 px frames.
4. Per frame pair, the channel-summed difference after warping the later frame onto the earlier
   one (``aligned``) and without warping (``raw``), each a root mean square over time in which a pair
   counts in inverse proportion to its background residue (``_pair_weights``). The score
   is ``aligned * (1 + 3 * aligned / (aligned + raw))``: where the camera follows the object, it
   is still in the image (small ``raw``) and moves against the aligned background (large
   ``aligned``), while the background's parallax moves in the image too (large ``raw``).
5. When the camera is still (in every pair the map moves no frame corner by 3 px of a 112 px frame,
   and leaving the frames unaligned fits them about as well), the plain frame differences at full
   size are scored instead: resampling blurs what it warps.

Everything is batched tensor code without host synchronisation. See docs/algorithm.md, section 3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Frames are reduced to about this side by a whole factor (112 -> 56, 224 -> 56) before the
# alignment and the aligned differences: enough to place the object, and averaging suppresses noise.
_WORKING_SIDE = 56
# Search levels from coarse to fine: (halvings of the working frame, search radius and
# comparison stride, both in that level's pixels). At 56 px the radii 4 and 2 reach 8 and 2 px of
# the working frame (16 + 4 px of a 112 px frame), comparing every 2nd pixel of each level.
_SEARCH_LEVELS = ((1, 4, 2), (0, 2, 2))
# Grey-level difference (of [0, 1] frames) above which a pixel no longer fits a candidate motion.
_RESIDUAL_CAP = 0.03
# Penalty on the coarse search's longest offset, as a share of a total misfit (see below).
_MOTION_PRIOR = 0.1
# Weight of the previous and the next pair's coarse search costs in each pair's (its own: 1).
_NEIGHBOUR_WEIGHT = 1.0
# Coarse searches around the previous pair's offset after the first (``_propagated``).
_PROPAGATION_PASSES = 2
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
# How much more the aligned difference counts where it exceeds the unaligned one (step 4 above).
_CONTRAST = 3.0
# The camera is still (the plain frame differences are scored, step 5 above) when in every pair
# the map moves no frame corner by ``_STILL_PIXELS`` (pixels of a 112 px frame) and the identity's
# robust cost is at most ``_STILL_COST_RATIO`` times the map's.
_STILL_PIXELS = 3.0
_STILL_COST_RATIO = 1.3
# Value around the frame in the search: sources outside the frame then cost ``_RESIDUAL_CAP``.
_OUTSIDE = 1e3


def stabilized_saliency(clips: torch.Tensor) -> torch.Tensor:
    """Motion map (B, H, W) of (B, C, T, H, W) clips with the camera's motion removed.

    Not normalised or blurred; larger means more likely foreground. Computed in the clips' dtype
    (float32 or float64), on their device. Non-finite values count as no motion.
    """
    height, width = clips.shape[-2:]
    color, pairs, identity_fits = _working_frames_and_camera(clips)
    aligned, raw = _pair_differences(color, pairs)
    moving = aligned * (1 + _CONTRAST * aligned / (aligned + raw + 1e-3))
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
        # Offsets are absolute at the coarsest level only: there the smaller motion is preferred.
        ranked = _pooled_over_time(cost, batch) + _smallest_motion_prior(radius, cost) if level == 0 else cost
        best = ranked.flatten(1).argmin(dim=1)
        row, col = best // (2 * radius + 1), best % (2 * radius + 1)
        offset = offset + torch.stack([row - radius, col - radius], dim=1).to(offset.dtype)
        reach = reach + radius
        if level == 0 and frames > 2:
            offset = _propagated(first, second, offset, ranked.flatten(1).amin(dim=1), batch, radius, stride)
            reach = reach + _PROPAGATION_PASSES * _PROPAGATION_RADIUS
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
    """Coarse offsets improved by searching each pair again around its previous pair's offset.

    The camera moves smoothly, so a pan that speeds up past the search's reach around no motion
    is still within reach around the previous pair's motion. Each of ``_PROPAGATION_PASSES`` passes
    searches every pair (batched) around the offset found so far for the pair before it (the
    first pair: the one after it), with its neighbours' costs pooled as in the first search and
    the motion prior measured from that centre, and keeps the better of the two fits.
    """
    count = offset.shape[0]
    frames = count // batch + 1
    full_radius, radius = radius, _PROPAGATION_RADIUS
    size = 2 * radius + 1
    t = torch.arange(frames - 1, device=offset.device)
    before = (t - 1).clamp(min=0)
    before[0] = min(1, frames - 2)
    previous_pair = (torch.arange(batch, device=offset.device)[:, None] * (frames - 1) + before).flatten()
    # Pairs t-1, t and t+1 (clamped into the clip), each searched around pair t's new centre.
    neighbours = torch.stack([(t - 1).clamp(min=0), t, (t + 1).clamp(max=frames - 2)])  # (3, T-1)
    has = torch.stack([t > 0, torch.ones_like(t, dtype=torch.bool), t < frames - 2]).to(first.dtype)
    share = torch.tensor([_NEIGHBOUR_WEIGHT, 1.0, _NEIGHBOUR_WEIGHT], dtype=first.dtype, device=first.device)
    weights = has * share[:, None]
    weights = weights / weights.sum(dim=0)
    flat = (torch.arange(batch, device=offset.device)[:, None, None] * (frames - 1) + neighbours).flatten()
    firsts, seconds = first[flat], second[flat]
    inner = slice(full_radius - radius, full_radius + radius + 1)
    prior = _smallest_motion_prior(full_radius, score)[inner, inner]
    for passes in range(1, _PROPAGATION_PASSES + 1):
        centre = offset[previous_pair]  # (N, 2)
        centres = centre.view(batch, 1, frames - 1, 2).expand(batch, 3, frames - 1, 2).reshape(-1, 2)
        cost = _alignment_cost(firsts, seconds, centres.long(), radius, stride, full_radius + passes * radius + 1)
        pooled = (cost.view(batch, 3, frames - 1, size * size) * weights[None, :, :, None]).sum(dim=1)
        ranked = pooled.view(count, size * size) + prior.flatten()
        value, best = ranked.min(dim=1)
        found = centre + torch.stack([best // size - radius, best % size - radius], dim=1).to(offset.dtype)
        better = value < score
        offset = torch.where(better[:, None], found, offset)
        score = torch.where(better, value, score)
    return offset


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
    source in ``second`` is outside the frame count as not fitting.
    """
    count, rows, cols = first.shape
    device = first.device
    centre = first[:, radius : rows - radius : stride, radius : cols - radius : stride].reshape(count, 1, -1)
    # A frame of far-off values around ``second``, wide enough for every candidate: sources outside
    # the frame then cost the cap, and each candidate's pixels sit at one fixed index from its pair's.
    margin = reach + radius
    padded = F.pad(second, (margin, margin, margin, margin), value=_OUTSIDE).view(count, -1)
    width = cols + 2 * margin
    steps = torch.arange(-radius, radius + 1, device=device)
    taps_r = torch.arange(radius, rows - radius, stride, device=device)
    taps_c = torch.arange(radius, cols - radius, stride, device=device)
    # (2r+1, 2r+1, th, tw) flat index of every candidate's compared pixels, for a pair at offset 0.
    relative = (margin + steps[:, None, None, None] + taps_r[None, None, :, None]) * width + (
        margin + steps[None, :, None, None] + taps_c[None, None, None, :]
    )
    shift = offset.clamp(-reach, reach)
    index = (shift[:, 0] * width + shift[:, 1])[:, None] + relative.view(1, -1)
    size = 2 * radius + 1
    residual = padded.gather(1, index).view(count, size * size, -1).sub_(centre).abs_().clamp_(max=_RESIDUAL_CAP)
    weight = _border_weight(rows, cols, first)[radius : rows - radius : stride, radius : cols - radius : stride]
    return (residual @ (weight / weight.sum()).flatten()).view(count, size, size)


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
    jac = torch.stack([gx * ux, gx * uy, gx, gy * ux, gy * uy, gy], dim=1)  # (N, 6, P)
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
        weighted = jac * weight[:, None]
        hessian = torch.einsum("nkp,nlp->nkl", weighted, jac)
        gradient = torch.einsum("nkp,np->nk", weighted, residual)
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


def _pair_differences(clips: torch.Tensor, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted root mean square over time of channel-summed frame differences, with and without alignment.

    ``clips`` (B, C, T, h, w); ``pairs`` (B, T-1, 3, 3). Returns two (B, h, w) maps in each earlier
    frame's coordinates: frame t against frame t+1 warped onto it, and against frame t+1 as it is.
    Each pair counts in inverse proportion to its background residue, the ``_border_weight``-ed mean
    of its aligned difference (``_pair_weights``), in both maps.
    """
    batch, channels, frames, rows, cols = clips.shape
    count = batch * (frames - 1)
    later = clips[:, :, 1:].transpose(1, 2).reshape(count, channels, rows, cols)
    earlier = clips[:, :, :-1].transpose(1, 2).reshape(count, channels, rows, cols)
    grid = _affine_grid(pairs.reshape(count, 3, 3)[:, :2], rows, cols)
    warped = F.grid_sample(later, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = _inside(grid)
    aligned = warped.sub_(earlier).abs_().sum(dim=1).mul_(inside)
    weight = _pair_weights(aligned.view(batch, frames - 1, rows, cols), inside.view(batch, frames - 1, rows, cols))
    raw = (later - earlier).abs_().sum(dim=1).square_().view(batch, frames - 1, rows, cols)
    aligned = aligned.square_().view(batch, frames - 1, rows, cols)
    weight = (weight / (frames - 1))[..., None, None]
    return aligned.mul_(weight).sum(dim=1).sqrt_(), raw.mul_(weight).sum(dim=1).sqrt_()


def _pair_weights(aligned: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """(B, T-1) weights of each pair's squared differences: ``(mean residue / (residue + 1e-3))^2``.

    A pair's residue is the ``_border_weight``-ed mean of its aligned difference over the pixels
    whose source is inside the frame, mostly background: large where the camera model does not fit
    the pair (a pan too fast to search, motion blur, a fit that followed the object), whose
    differences then say little about what moves. Scaled by the clip's mean residue, so that a clip
    whose pairs fit equally well keeps its unweighted differences.
    """
    spatial = _border_weight(aligned.shape[-2], aligned.shape[-1], aligned) * inside
    residue = (aligned * spatial).sum(dim=(-2, -1)) / spatial.sum(dim=(-2, -1)).clamp_min(1e-6)
    scale = residue.mean(dim=1, keepdim=True) / (residue + 1e-3)
    return scale.square_()


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
