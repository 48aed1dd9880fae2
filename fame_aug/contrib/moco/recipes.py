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
        # The built-in background-bias dataset on 2 CPU cores, every choice measured on a
        # validation dataset (another generator seed; README, "How the cpu-demo recipe was
        # chosen"): 32-pixel frames, clips of 6 frames at stride 3 (half of a 32-frame video, so
        # that MoCo's two views can come from its two halves), the small R3D (width 8, half of
        # its stem's filters starting as temporal derivatives), no flips (its classes include
        # left-to-right against right-to-left), no color augmentation (it hides the moving
        # object's colors, the only thing a FAME view shares with its key at the start), and
        # FAME's clean-background merge (one moving object per merged clip). The dataset is
        # decoded once into memory (cache "auto"), so no loader workers are needed.
        "all": {
            "dataset": "synthetic",
            "data_root": SYNTHETIC_ROOT,
            "backbone": "r3d_small",
            "backbone_width": 8,
            "num_frames": 6,
            "stride": 3,
            "frame_size": [32, 32],
            "crop_size": 28,
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
            "epochs": 30,
            "optimizer": "adamw",
            "lr": 0.003,
            "weight_decay": 0.05,
            "warmup_epochs": 2,
            "schedule": "cosine",
            "bn_splits": 2,
            "moco_momentum": 0.99,
            "disjoint_views": True,
            "color_augment": False,
            "fame_mode": "motion",
            "fame_beta": 0.2,
            "fame_clean_background": True,
        },
        "finetune": {
            "batch_size": 32,
            "epochs": 30,
            "optimizer": "adamw",
            "lr": 0.001,
            "weight_decay": 0.05,
            "warmup_epochs": 1,
            "schedule": "cosine",
            "dropout": 0.0,
            "color_augment": False,
            "fame_mode": "motion",
            "fame_beta": 0.2,
            "fame_clean_background": True,
        },
        # Standardised features take lr 0.03 from the first epoch on (lr 5 without: a loss of
        # 1.9-2.4 for epochs; unstandardised at lr 1, 36.7% against 43.0% with, on validation data).
        "probe": {"batch_size": 16, "epochs": 20, "lr": 0.03, "standardize": True, "schedule": "cosine"},
    },
}
