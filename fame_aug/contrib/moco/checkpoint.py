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
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import torch
from torch import nn

__all__ = [
    "NonFiniteState",
    "capture_rng_state",
    "load_backbone_weights",
    "load_checkpoint",
    "non_finite_entries",
    "restore_rng_state",
    "save_checkpoint",
    "write_atomically",
]


class NonFiniteState(ValueError):
    """A state to be saved holds NaN or infinite values; nothing was written."""


def non_finite_entries(state: Any, name: str = "") -> list[str]:
    """Names (``model.layer1.0.bn1.running_var``) of the floating tensors in ``state`` with NaN or inf."""
    if isinstance(state, torch.Tensor):
        finite = not (state.is_floating_point() or state.is_complex()) or bool(torch.isfinite(state).all())
        return [] if finite else [name]
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, list | tuple) else ()
    return [entry for key, value in items for entry in non_finite_entries(value, f"{name}.{key}" if name else str(key))]


def capture_rng_state() -> dict[str, Any]:
    """Every global random state: torch, CUDA (all devices), numpy, Python."""
    numpy_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))  # legacy=True: always the tuple form
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
    """Write ``state`` to ``path`` atomically (temporary file, fsync, rename).

    Raises:
        NonFiniteState: if any floating tensor in ``state`` holds NaN or inf: a poisoned state
            never replaces a good checkpoint.
    """
    path = Path(path)
    poisoned = non_finite_entries(state)
    if poisoned:
        raise NonFiniteState(f"not written: {len(poisoned)} tensors hold NaN or inf ({', '.join(poisoned[:3])})")

    def write(handle: BinaryIO) -> None:
        try:
            torch.save(state, handle)
        except RuntimeError as error:  # torch's words for a failed write (a full disk: "unexpected pos")
            raise OSError(f"could not write checkpoint {path} ({error}); is the disk full?") from None

    return write_atomically(path, write)


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write a file so that ``path`` holds either its old content or the whole new one, never part of it.

    ``write`` fills a temporary file beside ``path`` (flushed and synced to disk), which is then
    renamed over ``path``. Temporary files left by a writer that was killed are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a save that was killed
        if not _process_alive(stale.name.rsplit("-", 1)[-1]):
            stale.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _process_alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or a number we cannot check: leave the file
    return True


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code runs).

    ``mmap=True`` maps the tensors instead of reading them: cheap when only small entries (the
    stored config) are wanted.

    Raises:
        ValueError: naming the file, if it is missing, empty, truncated, not a checkpoint, or
            holds something other than a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises many types for damaged files: EOFError, UnpicklingError, ...
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        size = path.stat().st_size
        raise ValueError(f"{path} is not a readable checkpoint ({size} bytes; {reason})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a checkpoint or state dict")
    return state


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
