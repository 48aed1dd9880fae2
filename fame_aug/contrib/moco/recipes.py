"""The presets: the dataset and model of each published setup, and the cpu-demo recipe.

A preset maps ``"all"`` and each command to config keys; the optimisation recipe of the
published setups is each command's defaults (:mod:`fame_aug.contrib.moco.config`).
"""

from __future__ import annotations

from typing import Any

from fame_aug.contrib.moco.config import SYNTHETIC_ROOT

__all__ = ["PRESETS"]


# The published UCF101 and HMDB51 setups share their model, input size and queue.
_R2PLUS1D: dict[str, Any] = {"backbone": "r2plus1d_18", "crop_size": 112, "frame_size": [128, 171]}


_PRETRAIN_QUEUE_2048: dict[str, Any] = {"queue_size": 2048, "batch_size": 64}


# Dataset and model of each setup; the optimisation recipe is each command's defaults.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "ucf101": {
        "all": {"dataset": "ucf101", "data_root": "data/UCF-101", "split_dir": "data/ucfTrainTestlist", **_R2PLUS1D},
        "pretrain": _PRETRAIN_QUEUE_2048,
        "finetune": {"dropout": 0.7},
    },
    "hmdb51": {
        "all": {"dataset": "hmdb51", "data_root": "data/hmdb51", "split_dir": "data/hmdb51_splits", **_R2PLUS1D},
        "pretrain": _PRETRAIN_QUEUE_2048,
        "finetune": {"dropout": 0.5},
    },
    "k400": {
        "all": {
            "dataset": "kinetics",
            "data_root": "data/kinetics400",
            "backbone": "i3d",
            "crop_size": 224,
            "frame_size": [256, 341],
        },
        "pretrain": {"queue_size": 65536, "batch_size": 64},
    },
    "cpu-demo": {
        # The built-in background-bias dataset on 2 CPU cores: small frames, a small R3D, no
        # flips (its classes include left-to-right against right-to-left), gentler crops. The
        # dataset is decoded once into memory (cache "auto"), so no loader workers are needed.
        # AdamW with a short warm-up fitted fastest in measurements on a validation dataset
        # (another generator seed); beta 0.2 because the objects are small (README, "cpu-demo").
        "all": {
            "dataset": "synthetic",
            "data_root": SYNTHETIC_ROOT,
            "backbone": "r3d_small",
            "backbone_width": 8,
            "num_frames": 8,
            "stride": 4,
            "frame_size": [48, 48],
            "crop_size": 40,
            "crop_scale": [0.5, 1.0],
            "flip": False,
            "workers": 0,
            "eval_batch_size": 32,
            "eval_clips": 4,
            "device": "cpu",
        },
        "pretrain": {
            "batch_size": 32,
            # far fewer negatives than training videos: a queue near the dataset's size holds
            # keys of the query's own video (measured: the loss rises instead of falling)
            "queue_size": 256,
            "epochs": 36,
            "optimizer": "adamw",
            "lr": 0.003,
            "weight_decay": 0.05,
            "warmup_epochs": 2,
            "schedule": "cosine",
            "bn_splits": 2,
            "moco_momentum": 0.99,
            "fame_mode": "motion",
            "fame_beta": 0.2,
        },
        "finetune": {
            "batch_size": 32,
            "epochs": 30,
            "optimizer": "adamw",
            "lr": 0.01,
            "weight_decay": 0.05,
            "warmup_epochs": 3,
            "schedule": "cosine",
            "dropout": 0.5,
            "fame_mode": "motion",
            "fame_beta": 0.2,
        },
        "probe": {"batch_size": 16, "epochs": 20, "lr": 5.0, "schedule": "cosine"},
    },
}
