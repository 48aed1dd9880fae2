"""Losses for clips mixed with labels (``FAME(data_keys=["input", "class"])``, Kornia's mixes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["mixed_cross_entropy"]


def mixed_cross_entropy(logits: torch.Tensor, mixed: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Cross-entropy against two labels weighted by the share taken from the partner.

    ``loss = (1 - lam) * CE(logits, y) + lam * CE(logits, y_partner)`` per clip, for ``mixed``
    rows ``(y, y_partner, lam)`` as :class:`fame_aug.FAME` and Kornia's ``RandomMixUpV2``
    return them (``lam`` is 0 for a clip left unchanged).

    Args:
        logits: (B, K) unnormalised class scores.
        mixed: (B, 3) float labels ``(y, y_partner, lam)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per clip, (B,)).

    Returns:
        The loss, a scalar or (B,).

    Example:
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> mixed = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.5]])
        >>> mixed_cross_entropy(logits, mixed, reduction="none")
        tensor([0.1269, 1.1269])
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be a (B, K) tensor, got {getattr(logits, 'shape', type(logits).__name__)}")
    if not isinstance(mixed, torch.Tensor) or tuple(mixed.shape) != (logits.shape[0], 3):
        raise ValueError(f"mixed must be a ({logits.shape[0]}, 3) tensor, got {getattr(mixed, 'shape', mixed)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    own = F.cross_entropy(logits, mixed[:, 0].long(), reduction="none")
    partner = F.cross_entropy(logits, mixed[:, 1].long(), reduction="none")
    taken = mixed[:, 2].to(own.dtype)
    loss = (1 - taken) * own + taken * partner
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss
