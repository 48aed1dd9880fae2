"""Tiny training configurations shared by the loop and figure tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fame_aug.contrib.moco import resolve_config
from fame_aug.contrib.moco.config import command_keys
from fame_aug.contrib.moco.experiment import QUICK_OVERRIDES
from fame_aug.data import BackgroundBiasConfig, make_background_bias_dataset

# The command line's --quick settings (pretraining's queue aside), with shorter clips, two epochs
# and deterministic kernels.
TINY: dict[str, Any] = {
    **{key: value for key, value in QUICK_OVERRIDES.items() if key != "queue_size"},
    "num_frames": 8,
    "stride": 2,
    "backbone_width": 8,
    "eval_batch_size": 4,
    "epochs": 2,
    "deterministic": True,
}


def make_tiny_dataset(root: Path) -> Path:
    """3 classes x (6 train + 3 test) videos of 20 frames at 32x32."""
    make_background_bias_dataset(
        root, BackgroundBiasConfig(classes=3, train_per_class=6, test_per_class=3, frames=20, size=32)
    )
    return root


def tiny_values(command: str, data_root: Path, out: Path, **values: Any) -> dict[str, Any]:
    """Config keys that shrink the ``cpu-demo`` preset to seconds, for ``command`` on the tiny dataset.

    Only keys ``command`` reads (its command-line flags); ``values`` are kept as given.
    """
    extra = {"queue_size": QUICK_OVERRIDES["queue_size"]} if command == "pretrain" else {}
    read = set(command_keys(command))
    shrunk = {key: value for key, value in {**TINY, **extra}.items() if key in read}
    return {**shrunk, "data_root": str(data_root), "out": str(out), **values}


def tiny_config(command: str, data_root: Path, out: Path, **values: Any) -> Any:
    """The ``cpu-demo`` preset shrunk to seconds, for ``command`` on the tiny dataset."""
    return resolve_config(command, "cpu-demo", overrides=tiny_values(command, data_root, out, **values))


def flags(values: dict[str, Any]) -> list[str]:
    """Command-line flags for config values."""
    args: list[str] = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        else:
            args += [flag, *(map(str, value) if isinstance(value, list) else [str(value)])]
    return args
