"""Checkpoints that are written atomically, load safely and resume exactly.

A checkpoint holds the model, the optimiser, the epoch and step, the configuration, and every
random state a run draws from (torch, CUDA, numpy, Python, the dataset's clip sampler), so that
a run interrupted after some epochs and resumed ends with the same weights as one that was not.
It is written to a temporary file in the same folder and renamed over the old one, so a crash
mid-write leaves the previous checkpoint intact; it is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["capture_rng_state", "load_backbone_weights", "load_checkpoint", "restore_rng_state", "save_checkpoint"]


def capture_rng_state() -> dict[str, Any]:
    """Every global random state: torch, CUDA (all devices), numpy, Python."""
    numpy_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set the states :func:`capture_rng_state` captured."""
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code runs)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    return torch.load(path, map_location=device, weights_only=True)


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> list[str]:
    """Load a backbone's weights from a pretraining checkpoint or a plain state dict.

    Accepts this package's pretraining checkpoints (the query encoder's backbone is used), its
    fine-tuning checkpoints, and bare state dicts such as torchvision's ``r2plus1d_18`` weights.
    The classifier ``fc`` is loaded only if its shape fits.

    Returns:
        The names of the backbone's keys the file did not provide (the classifier, usually).

    Raises:
        ValueError: if the file holds no weights for this backbone or shapes disagree.
    """
    state = load_checkpoint(path)
    weights = state.get("model", state) if isinstance(state, dict) else state
    for prefix in ("module.encoder_q.backbone.", "encoder_q.backbone.", "module.backbone.", "backbone.", "module."):
        picked = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
        if picked:
            weights = picked
            break
    own = backbone.state_dict()
    usable = {k: v for k, v in weights.items() if k in own and not (k.startswith("fc.") and v.shape != own[k].shape)}
    mismatched = [k for k, v in usable.items() if v.shape != own[k].shape]
    if mismatched:
        raise ValueError(f"{path}: shapes differ for {mismatched[:5]}: a checkpoint of another backbone?")
    missing = [k for k in own if k not in usable]
    if len(usable) == 0 or any(not k.startswith("fc.") for k in missing):
        raise ValueError(f"{path} lacks backbone weights {[k for k in missing if not k.startswith('fc.')][:5]}")
    backbone.load_state_dict(usable, strict=False)
    return missing
