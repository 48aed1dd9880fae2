"""MoCo v2 for video (He et al. 2020; Chen et al. 2020), as FAME's paper trains it.

A query encoder (backbone + 2-layer MLP head) learns by matching each clip's embedding with a
momentum-updated key encoder's embedding of another clip of the same video, against a queue
of negatives (keys of earlier batches). The loss is symmetric: each view is once the query and
once the key, and both key batches are enqueued.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from fame_aug.contrib.moco.distributed import all_gather_no_grad, shuffled_forward
from fame_aug.contrib.moco.models import VideoBackbone

__all__ = ["MoCo", "ProjectionEncoder"]


class ProjectionEncoder(nn.Module):
    """A backbone's pooled features through a projection head, L2-normalised.

    Args:
        backbone: feature extractor (``num_classes=0``) with ``num_features``.
        dim: embedding size (128).
        mlp: a 2-layer MLP head (hidden size = feature size) instead of one linear layer.
    """

    def __init__(self, backbone: VideoBackbone, dim: int = 128, mlp: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        features = backbone.num_features
        self.head = (
            nn.Sequential(nn.Linear(features, features), nn.ReLU(inplace=True), nn.Linear(features, dim))
            if mlp
            else nn.Linear(features, dim)
        )

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) clips to unit-length (B, dim) embeddings."""
        return F.normalize(self.head(self.backbone(clips)), dim=1)


class MoCo(nn.Module):
    """Momentum contrast with a negative queue.

    Args:
        backbone: the query backbone (``num_classes=0``); the key encoder is a copy.
        dim: embedding size.
        queue_size: negatives kept (2048 for UCF101, 65536 for Kinetics-400 in the paper). Any
            size at least twice the global batch (both key batches are enqueued each step);
            writes wrap around.
        momentum: key encoder momentum (0.999).
        temperature: softmax temperature (0.1).
        mlp: 2-layer MLP projection head.
        bn_splits: in one process, encode keys in this many shuffled chunks (shuffle BN);
            across processes the batch is shuffled between processes instead.
    """

    queue: torch.Tensor  # (dim, queue_size) buffer of normalised keys
    queue_ptr: torch.Tensor  # () long buffer: where the next keys go

    def __init__(
        self,
        backbone: VideoBackbone,
        dim: int = 128,
        queue_size: int = 2048,
        momentum: float = 0.999,
        temperature: float = 0.1,
        mlp: bool = True,
        bn_splits: int = 1,
    ) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.momentum, self.temperature, self.bn_splits = momentum, temperature, bn_splits
        self.encoder_q = ProjectionEncoder(backbone, dim, mlp)
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for parameter in self.encoder_k.parameters():
            parameter.requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @property
    def queue_size(self) -> int:
        """Number of negatives in the queue."""
        return self.queue.shape[1]

    @torch.no_grad()
    def momentum_update(self) -> None:
        """Move every key parameter towards its query twin: ``k = m * k + (1 - m) * q``."""
        keys: list[torch.Tensor] = list(self.encoder_k.parameters())
        queries = [p.detach() for p in self.encoder_q.parameters()]
        torch._foreach_mul_(keys, self.momentum)
        torch._foreach_add_(keys, queries, alpha=1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write (N, dim) keys into the queue after the last ones, wrapping around."""
        count = keys.shape[0]
        if count > self.queue_size:
            raise ValueError(
                f"{count} keys arrived at once but the queue holds {self.queue_size}; "
                f"queue_size must be at least twice the global batch size"
            )
        slots = (self.queue_ptr + torch.arange(count, device=keys.device)) % self.queue_size
        self.queue[:, slots] = keys.T.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + count) % self.queue_size)

    def contrastive_loss(self, query: torch.Tensor, key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """InfoNCE of (B, dim) queries against their keys and the queue; also top-1 accuracy."""
        positive = (query * key).sum(dim=1, keepdim=True)
        negative = query @ self.queue.clone().detach()  # the queue changes in place after the step
        logits = torch.cat([positive, negative], dim=1) / self.temperature
        targets = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
        accuracy = (logits.argmax(dim=1) == 0).float().mean()
        return F.cross_entropy(logits, targets), accuracy

    def forward(self, view_a: torch.Tensor, view_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """One step's loss for two views (B, 3, T, H, W) of the same videos.

        Returns:
            ``{"loss", "accuracy"}``; the loss is the mean of (a as query, b as key) and
            (b as query, a as key). Both key batches are enqueued.
        """
        query_a, query_b = self.encoder_q(view_a), self.encoder_q(view_b)
        with torch.no_grad():
            self.momentum_update()
            key_a = shuffled_forward(self.encoder_k, view_a, self.bn_splits)
            key_b = shuffled_forward(self.encoder_k, view_b, self.bn_splits)
        loss_ab, accuracy_ab = self.contrastive_loss(query_a, key_b)
        loss_ba, accuracy_ba = self.contrastive_loss(query_b, key_a)
        self.enqueue(all_gather_no_grad(torch.cat([key_a, key_b])))
        return {"loss": (loss_ab + loss_ba) / 2, "accuracy": (accuracy_ab + accuracy_ba) / 2}
