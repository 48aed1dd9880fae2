"""A straightforward implementation of docs/algorithm.md section 1, kept as the benchmark baseline.

It follows the published description line by line: full-size temporaries for the frame
differences, Kornia's Gaussian blur and HSV conversion, and three separate top-k calls
(foreground seeds, background seeds, final mask). ``fame_aug.foreground_mask`` must agree
with it (see ``tests/test_golden.py``); ``benchmarks/bench_fame.py`` times both.
"""

from __future__ import annotations

import math

import kornia
import torch


def _blur_and_normalise(saliency: torch.Tensor, kernel_size: int) -> torch.Tensor:
    sigma = kernel_size / 3.0
    blurred = kornia.filters.gaussian_blur2d(
        saliency[:, None], (kernel_size, kernel_size), (sigma, sigma), border_type="reflect"
    )[:, 0]
    flat = blurred.flatten(1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    flat = flat / (flat.max(dim=1, keepdim=True).values + 1e-8)
    return flat.view_as(saliency)


def reference_foreground_mask(video: torch.Tensor, beta: float = 0.5, refine: bool = True) -> torch.Tensor:
    """Foreground mask of a (B, 3, T, H, W) float clip batch in [0, 1], as docs/algorithm.md section 1 states it.

    Args:
        video: (B, C, T, H, W) float clips.
        beta: share of pixels kept as foreground.
        refine: apply the color refinement (step 3 and 4); ``False`` gives the motion-only mask.

    Returns:
        (B, H, W) bool mask with ``int(beta * H * W)`` True per clip.
    """
    batch, _, _, height, width = video.shape
    num_pixels = height * width
    kernel_size = int(0.1 * min(height, width)) // 2 * 2 + 1

    # Step 1: mean over the T-1 consecutive pairs of the channel-summed absolute difference.
    saliency = (video[:, :, 1:] - video[:, :, :-1]).abs().sum(dim=1).mean(dim=1)
    # Step 2: blur and min-max normalise.
    saliency = _blur_and_normalise(saliency, kernel_size)

    if refine:
        # Step 3: a per-clip color model of the mean frame, in quantised HSV.
        hsv = kornia.color.rgb_to_hsv(video.mean(dim=2))
        hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
        angle = 2 * math.pi * hue  # the published hue detail: hue is already in radians
        qh = torch.round(9 * (sat * torch.cos(angle) + 1) / 2 + 1)
        qs = torch.round(9 * (sat * torch.sin(angle) + 1) / 2 + 1)
        qv = torch.round(9 * val + 1)
        bins = (qh + 10 * (qs - 1) + 100 * (qv - 1)).long().flatten(1) - 1  # 0..999

        flat = saliency.flatten(1)
        fg_seeds = torch.topk(flat, int(0.5 * num_pixels), dim=1).indices
        bg_seeds = torch.topk(flat, int(0.1 * num_pixels), dim=1, largest=False).indices

        fg_hist = torch.zeros(batch, 1000, dtype=flat.dtype, device=flat.device)
        fg_hist.scatter_add_(1, bins.gather(1, fg_seeds), torch.ones_like(fg_seeds, dtype=flat.dtype))
        bg_hist = torch.zeros(batch, 1000, dtype=flat.dtype, device=flat.device)
        bg_hist.scatter_add_(1, bins.gather(1, bg_seeds), torch.ones_like(bg_seeds, dtype=flat.dtype))
        bg_hist = bg_hist + 1
        fg_hist = fg_hist / (fg_hist.sum(dim=1, keepdim=True) + 1e-8)
        bg_hist = bg_hist / (bg_hist.sum(dim=1, keepdim=True) + 1e-8)

        pf = fg_hist.gather(1, bins)
        pb = bg_hist.gather(1, bins)
        refined = (pf / (pf + pb)).view(batch, height, width)
        # Step 4: blur and normalise again.
        saliency = _blur_and_normalise(refined, kernel_size)

    # Step 5: the top int(beta*H*W) pixels.
    top = torch.topk(saliency.flatten(1), int(beta * num_pixels), dim=1).indices
    mask = torch.zeros(batch, num_pixels, dtype=torch.bool, device=video.device)
    mask.scatter_(1, top, True)
    return mask.view(batch, height, width)


def reference_fame(video: torch.Tensor, beta: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """The published merge: ``x * mask + x[randperm(B)] * (1 - mask)``, full-size temporaries."""
    mask = reference_foreground_mask(video, beta)[:, None, None].to(video.dtype)
    perm = torch.randperm(video.shape[0], generator=generator, device=video.device)
    return video * mask + video[perm] * (1 - mask)
