"""Motion-guided token masks for masked video modelling (VideoMAE-style), from FAME's motion saliency."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fame_aug import _checks
from fame_aug.functional import _as_bcthw, _foreground_scores

__all__ = ["TOKEN_STRATEGIES", "motion_token_mask", "token_saliency"]

TOKEN_STRATEGIES = ("motion", "keep_motion", "random")


def token_saliency(
    video: torch.Tensor,
    tubelet: tuple[int, int, int] = (2, 16, 16),
    mode: str = "stabilized",
    data_format: str = "BCTHW",
) -> torch.Tensor:
    r"""How much each space-time tubelet moves: FAME's motion score pooled over VideoMAE's tokens.

    The clip is cut in time into chunks of ``tubelet[0]`` frames. Each chunk, with the first frame
    of the next one (so that every chunk holds a frame difference, the last one repeating its
    last frame), gets the normalised per-pixel score that :func:`fame_aug.foreground_mask` ranks
    in ``mode`` (``"stabilized"``: the camera's motion removed first); the score is averaged over
    each ``tubelet[1] x tubelet[2]`` patch.

    Args:
        video: clips (B, C, T, H, W) or (B, T, C, H, W), float in [0, 1] or uint8; T, H and W
            multiples of the tubelet's sides.
        tubelet: ``(t, h, w)`` frames and pixels per token (VideoMAE: (2, 16, 16)).
        mode: ``"official"`` (RGB only), ``"motion"`` or ``"stabilized"``.
        data_format: ``"BCTHW"`` or ``"BTCHW"``.

    Returns:
        Float scores (B, N) in VideoMAE's token order, with N = (T/t) (H/h) (W/w) (time-major, then
        rows, then columns), the order of ``Conv3d(kernel_size=tubelet, stride=tubelet)``
        followed by ``.flatten(2).transpose(1, 2)``.
    """
    fmt = _checks.data_format(data_format)
    mode = _checks.mask_mode(mode)
    _checks.video(video, "video", fmt, rgb=mode == "official")
    clips = _as_bcthw(video, fmt)
    t, h, w = _check_tubelet(tubelet, clips.shape)
    if not clips.is_floating_point():
        clips = clips.float() / 255
    batch, channels, frames, height, width = clips.shape
    chunks = frames // t
    # (B * chunks, C, t + 1, H, W) windows: each chunk and the next chunk's first frame.
    index = (torch.arange(chunks, device=clips.device)[:, None] * t + torch.arange(t + 1, device=clips.device)).clamp_(
        max=frames - 1
    )
    windows = clips[:, :, index.flatten()].view(batch, channels, chunks, t + 1, height, width)
    windows = windows.transpose(1, 2).reshape(batch * chunks, channels, t + 1, height, width)
    with torch.no_grad():
        scores = _foreground_scores(windows, mode)  # (B * chunks, H, W)
        pooled = F.avg_pool2d(scores[:, None].float(), kernel_size=(h, w))  # (B * chunks, 1, H/h, W/w)
    return pooled.view(batch, -1)


def motion_token_mask(
    video: torch.Tensor,
    tubelet: tuple[int, int, int] = (2, 16, 16),
    mask_ratio: float = 0.9,
    mode: str = "stabilized",
    strategy: str = "motion",
    motion_share: float = 0.5,
    generator: torch.Generator | None = None,
    data_format: str = "BCTHW",
) -> torch.Tensor:
    r"""Which VideoMAE tokens to mask, guided by where the clip moves.

    Exactly ``int(mask_ratio * N)`` tokens are masked in every clip, N the tokens per clip.

    Strategies:
        - ``"motion"``: mask the most moving tokens first (as motion-guided masking does: the
          encoder must reconstruct the motion from the still context).
        - ``"keep_motion"``: of the tokens left visible, a share ``motion_share`` are the most
          moving ones and the rest are drawn at random from the others; everything else is
          masked, so the encoder sees part of the motion and reconstructs the rest of it.
        - ``"random"``: VideoMAE's random tube-free masking, with the same exact count (the
          baseline; the saliency is not computed).

    Convention:
        - Token order: time-major tubelets, as ``Conv3d(kernel_size=tubelet, stride=tubelet)``
          then ``.flatten(2).transpose(1, 2)`` lay them out (see :func:`token_saliency`).
          ``tokens[~mask].view(B, -1, D)`` gives the visible tokens of a ViT's encoder, since
          every clip keeps the same number.
        - Ties (equal scores, e.g. a still clip) are broken at random, from ``generator`` when
          given (on the clips' device), else from torch's global generator.
        - No gradient; no host-device synchronisation.

    Args:
        video: clips (B, C, T, H, W) or (B, T, C, H, W), float in [0, 1] or uint8.
        tubelet: ``(t, h, w)`` of each token.
        mask_ratio: share of tokens masked, in [0, 1).
        mode: saliency mode (see :func:`fame_aug.foreground_mask`).
        strategy: one of ``TOKEN_STRATEGIES``.
        motion_share: ``"keep_motion"``: share of the visible tokens taken from the most moving.
        generator: optional ``torch.Generator`` for the random part.
        data_format: ``"BCTHW"`` or ``"BTCHW"``.

    Returns:
        (B, N) bool, True where a token is masked.

    Example:
        >>> video = torch.zeros(1, 3, 4, 32, 32)
        >>> for t in range(4):  # a bright square moving right along the top row of tokens
        ...     video[0, :, t, 2:10, 8 * t : 8 * t + 8] = 1.0
        >>> mask = motion_token_mask(video, tubelet=(2, 16, 16), mask_ratio=0.25, mode="motion")
        >>> mask.shape, int(mask.sum())  # 2 x 2 x 2 tokens, 2 of them masked
        (torch.Size([1, 8]), 2)
        >>> mask.view(2, 2, 2)[:, 0].tolist()  # the moving top row: chunk 0 and chunk 1
        [[True, False], [False, True]]
    """
    fmt = _checks.data_format(data_format)
    if strategy not in TOKEN_STRATEGIES:
        raise ValueError(f"strategy must be one of {TOKEN_STRATEGIES}, got {strategy!r}")
    if not isinstance(mask_ratio, float | int) or isinstance(mask_ratio, bool) or not 0 <= mask_ratio < 1:
        raise ValueError(f"mask_ratio must be a number in [0, 1), got {mask_ratio!r}")
    _checks.unit_interval("motion_share", motion_share, open_interval=False)
    _checks.generator(generator)
    _checks.video(video, "video", fmt, rgb=strategy != "random" and mode == "official")
    clips = _as_bcthw(video, fmt)
    t, h, w = _check_tubelet(tubelet, clips.shape)
    batch = clips.shape[0]
    tokens = (clips.shape[2] // t) * (clips.shape[3] // h) * (clips.shape[4] // w)
    masked = int(mask_ratio * tokens)
    noise = _checks.uniform(generator, batch, tokens, device=clips.device)
    if strategy == "random":
        chosen = noise.argsort(dim=1)[:, :masked]
    else:
        scores = token_saliency(video, tubelet, mode, fmt)
        # Most moving first; ties in a random order: sort a random permutation stably by score.
        shuffle = noise.argsort(dim=1)
        ranked = shuffle.gather(1, scores.gather(1, shuffle).argsort(dim=1, descending=True, stable=True))
        if strategy == "motion":
            chosen = ranked[:, :masked]
        else:  # visible: the ``kept`` most moving tokens, then the others in a random order
            visible = tokens - masked
            kept = round(motion_share * visible)
            rest = ranked[:, kept:]
            rest = rest.gather(1, _checks.uniform(generator, *rest.shape, device=clips.device).argsort(dim=1))
            chosen = rest[:, visible - kept :]
    mask = torch.zeros(batch, tokens, dtype=torch.bool, device=clips.device)
    return mask.scatter_(1, chosen, True)


def _check_tubelet(tubelet: object, shape: torch.Size) -> tuple[int, int, int]:
    if (
        not isinstance(tubelet, tuple | list)
        or len(tubelet) != 3
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in tubelet)
    ):
        raise ValueError(f"tubelet must be three positive integers (t, h, w), got {tubelet!r}")
    t, h, w = tubelet
    frames, height, width = shape[2], shape[3], shape[4]
    if frames % t or height % h or width % w:
        raise ValueError(
            f"the clips' T, H, W = {(frames, height, width)} must be multiples of the tubelet {tuple(tubelet)}"
        )
    return t, h, w
