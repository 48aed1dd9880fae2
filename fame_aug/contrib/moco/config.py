"""Run configurations as data: one dataclass per command, its keys, their checks and choices.

The defaults are the published recipe for each command (docs/algorithm.md, section 5). Every
value is checked before any work: types, ranges (``_RANGES``), choices (``CHOICES``) and paths.
Presets are in :mod:`~fame_aug.contrib.moco.recipes`, resolution from presets, files and flags
in :mod:`~fame_aug.contrib.moco.resolve`, the command-line flags in
``fame_aug.contrib.moco.arguments``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import cast

from fame_aug import FAME, MASK_MODES, BackgroundErasing, _checks
from fame_aug._paths import check_path

__all__ = [
    "CHOICES",
    "COMMANDS",
    "EVALUATION_KEYS",
    "SYNTHETIC_ROOT",
    "TRAINING_KEYS",
    "AugmentOptions",
    "FameOptions",
    "FinetuneConfig",
    "FrozenBackboneConfig",
    "PretrainConfig",
    "ProbeConfig",
    "RetrieveConfig",
    "RunConfig",
    "command_keys",
    "needs_synthetic_dataset",
]


# Keys with a fixed set of values: validation refuses others, and --help lists them.
CHOICES: dict[str, tuple[str, ...]] = {
    "dataset": ("synthetic", "ucf101", "hmdb51", "kinetics", "list"),
    "backbone": ("r2plus1d_18", "r3d_18", "r3d_small", "i3d"),
    "cache": ("auto", "memory", "off"),
    "reader": ("opencv", "pyav"),
    "optimizer": ("sgd", "adamw"),
    "schedule": ("step", "cosine"),
    "bn": ("shuffle", "sync"),
    "fame_mode": MASK_MODES,
}


# Where the built-in dataset lives unless a run says otherwise (the default and the cpu-demo
# preset's data_root): the one folder in which a missing dataset is made on first use.
SYNTHETIC_ROOT = "runs/data/background-bias"


# Keys of the training epochs (optimisation, schedule, training clips, checkpoints): commands that
# train nothing (retrieve) neither list nor take them on the command line.
TRAINING_KEYS = (
    "crop_scale",
    "flip",
    "batch_size",
    "epochs",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "milestones",
    "gamma",
    "save_every",
    "resume",
)


# Keys of the evaluation (clips per test video and their batch): pretraining evaluates nothing.
EVALUATION_KEYS = ("eval_batch_size", "eval_clips")


@dataclass
class RunConfig:
    """What every command shares: data, model, optimisation, run folder.

    Attributes:
        dataset: ``synthetic`` (made by ``fame-aug make-synthetic``; made on first use only
            in the default data_root), ``ucf101``, ``hmdb51``, ``kinetics`` (class folders) or
            ``list``.
        data_root: videos folder (UCF101, HMDB51), dataset root (Kinetics, synthetic).
        split_dir: folder of the split files (UCF101, HMDB51; default ``data_root``).
        split: official split number (1-3).
        train_list: list file of the training videos (``dataset: list``).
        test_list: list file of the test videos (``dataset: list``).
        backbone: ``r2plus1d_18``, ``r3d_18``, ``r3d_small`` or ``i3d``.
        backbone_width: channels of ``r3d_small``.
        num_frames: frames per clip.
        stride: temporal stride between frames.
        frame_size: decoded frame size (H, W) before cropping.
        crop_size: crop side fed to the network.
        crop_scale: range of the random crop's share of the frame area (published: 0.2 to 1).
        flip: random horizontal flips (published: yes; off for the built-in dataset, whose
            classes include left-to-right against right-to-left).
        batch_size: clips per step over all processes.
        workers: DataLoader workers per process.
        reader: video decoder, ``opencv`` or ``pyav`` (``pip install fame-aug[pyav]``).
        cache: ``auto`` (decode the built-in dataset, and any other whose frames at
            ``frame_size`` come to under 1 GiB by the frame counts of a few of its videos, once
            into memory; read others from disk every epoch), ``memory`` (any dataset that fits
            in half the machine's memory) or ``off``.
        epochs: training epochs.
        optimizer: ``sgd`` (with ``momentum``; the published recipe) or ``adamw``.
        lr: learning rate at batch_size.
        momentum: SGD momentum.
        weight_decay: weight decay (decoupled for AdamW).
        schedule: ``step`` (x ``gamma`` at each milestone) or ``cosine``.
        warmup_epochs: epochs of linear warm-up to ``lr`` before the schedule starts (a run of
            no more epochs than this ends inside the warm-up).
        milestones: epochs at which a step schedule multiplies the rate by ``gamma``.
        gamma: the step factor.
        out: run folder (config.json, metrics.csv, checkpoint.pt, results).
        save_every: write a checkpoint every this many epochs (and at the end).
        resume: continue from ``out/checkpoint.pt``.
        seed: seed of every random generator.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        amp: bfloat16 autocast for the network on CUDA.
        deterministic: deterministic algorithms (for reproducible tests; slower on GPU).
        eval_batch_size: videos per evaluation step.
        eval_clips: clips per video at evaluation (the protocol uses 10).
    """

    dataset: str = "synthetic"
    data_root: str = SYNTHETIC_ROOT
    split_dir: str = ""
    split: int = 1
    train_list: str = ""
    test_list: str = ""
    backbone: str = "r2plus1d_18"
    backbone_width: int = 16
    num_frames: int = 16
    stride: int = 2
    frame_size: list[int] = field(default_factory=lambda: [128, 171])
    crop_size: int = 112
    crop_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])
    flip: bool = True
    batch_size: int = 64
    workers: int = 4
    cache: str = "auto"
    reader: str = "opencv"
    epochs: int = 200
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"
    warmup_epochs: int = 0
    milestones: list[int] = field(default_factory=lambda: [120, 180])
    gamma: float = 0.1
    out: str = "runs/run"
    save_every: int = 1
    resume: bool = False
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    deterministic: bool = False
    eval_batch_size: int = 8
    eval_clips: int = 10

    def validate(self) -> None:
        """Raise ``ValueError`` for values no run could use.

        Every number is checked before any work: each float must be finite, and each value with
        a range (``_RANGES``) must lie in it.
        """
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{item.name} must be a finite number, got {value}")
            if item.name in _RANGES and isinstance(value, int | float):
                _check_range(item.name, value, *_RANGES[item.name])
        for name in ("milestones", "ks"):
            values = getattr(self, name, None)
            if values is not None and any(v < 1 for v in values):
                raise ValueError(f"{name} must all be >= 1, got {values}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(self.device)):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        for name, allowed in CHOICES.items():  # the same table --help lists
            if hasattr(self, name) and getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        low, high = self.crop_scale if len(self.crop_scale) == 2 else (0.0, -1.0)
        if not 0 < low <= high <= 1:
            raise ValueError(
                f"crop_scale must be [min, max] crop areas with 0 < min <= max <= 1, got {self.crop_scale}"
            )
        if self.split not in (1, 2, 3):
            raise ValueError(f"split must be 1, 2 or 3, got {self.split}")
        if len(self.frame_size) != 2 or min(self.frame_size) < self.crop_size:
            raise ValueError(f"frame_size must be [H, W], each >= crop_size {self.crop_size}, got {self.frame_size}")
        names = (
            "batch_size",
            "epochs",
            "num_frames",
            "stride",
            "crop_size",
            "save_every",
            "eval_batch_size",
            "eval_clips",
        )
        for name in names:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")

    @property
    def crop_range(self) -> tuple[float, float]:
        """``crop_scale`` as the ``(min, max)`` pair the presets take (``validate`` checks it has two values)."""
        return self.crop_scale[0], self.crop_scale[1]

    def check_paths(self, out: bool = True) -> None:
        """Raise ``ValueError`` if the data the run needs is not where the configuration says.

        Every path goes through one check (``fame_aug._paths.check_path``): a missing path,
        a symbolic link loop, a name too long, a missing permission or a file where a folder is
        expected is one error naming the key and the path. ``out``: check the run folder too.
        """
        if out:
            check_path(self.out, "out", "out")
        if self.dataset == "synthetic":
            made = (Path(self.data_root) / "metadata.json").is_file()
            check_path(self.data_root, "data_root", "dir" if made else "out")  # else made on first use
            needs_synthetic_dataset(self.data_root)
            return
        if self.dataset == "list":
            for name in ("train_list", "test_list"):
                value = getattr(self, name)
                if value:
                    check_path(value, name, "file")
            if not self.train_list and not self.test_list:
                raise ValueError("dataset 'list' needs train_list and/or test_list")
            return
        check_path(self.data_root, "data_root", "dir")
        if self.split_dir:
            check_path(self.split_dir, "split_dir", "dir")


@dataclass
class AugmentOptions:
    """The training clips' augmentation beyond the crop and flip.

    Attributes:
        color_augment: grayscale, color jitter and blur on the training clips (published: on);
            off, a clip keeps its colors.
        background_erasing: Background Erasing (Wang et al., CVPR 2021) on the query view
            (pretraining) or the training clips (fine-tuning), after FAME: one of the clip's
            frames, drawn at random, blended into all its frames.
        background_erasing_weight: ``[low, high]`` range of that frame's weight, in [0, 1].
    """

    color_augment: bool = True
    background_erasing: bool = False
    background_erasing_weight: list[float] = field(default_factory=lambda: [0.0, 0.3])

    def check_erasing(self) -> None:
        """Raise ``ValueError`` for a weight range no run could use."""
        weight = self.background_erasing_weight
        if len(weight) != 2 or not 0 <= weight[0] <= weight[1] <= 1:
            raise ValueError(f"background_erasing_weight must be [low, high] with 0 <= low <= high <= 1, got {weight}")

    def build_erasing(self) -> BackgroundErasing | None:
        """The configured ``BackgroundErasing``, or None when it is off."""
        if not self.background_erasing:
            return None
        # A pair: validate() runs check_erasing (two values) first, and BackgroundErasing checks it again.
        weight = cast(tuple[float, float], tuple(self.background_erasing_weight))
        return BackgroundErasing(weight=weight)


@dataclass
class FameOptions:
    """FAME in a training pipeline, after the crop and flip, before the color augmentations.

    Attributes:
        fame: apply FAME (pretraining: to the query view; fine-tuning: to the training clips,
            which keep their own label, the foreground's).
        fame_mode: mask mode ("official", "motion" or "stabilized").
        fame_beta: foreground share.
        fame_p: probability per clip.
        fame_clean_background: paste the foreground onto the partner's still background (each
            pixel's median over its frames), without the partner's own moving object; off: the
            published merge, which keeps it.
    """

    fame: bool = False
    fame_mode: str = "official"
    fame_beta: float = 0.5
    fame_p: float = 1.0
    fame_clean_background: bool = False

    def check_fame(self) -> None:
        """Raise ``ValueError`` for FAME settings no run could use (the module's checks, naming the keys)."""
        _checks.mask_mode(self.fame_mode, name="fame_mode")
        _checks.unit_interval("fame_beta", self.fame_beta, open_interval=True)
        _checks.unit_interval("fame_p", self.fame_p, open_interval=False)
        if self.fame:  # the crop FAME sees must keep at least one pixel
            crop = getattr(self, "crop_size", 1)
            try:
                _checks.foreground_pixels(self.fame_beta, crop, crop)
            except ValueError as error:
                raise ValueError(f"fame_beta {self.fame_beta} at crop_size {crop}: {error}") from None

    def build_fame(self) -> FAME | None:
        """The configured ``FAME`` module, or None when ``fame`` is off."""
        if not self.fame:
            return None
        return FAME(
            beta=self.fame_beta, mode=self.fame_mode, p=self.fame_p, clean_background=self.fame_clean_background
        )


@dataclass
class PretrainConfig(RunConfig, AugmentOptions, FameOptions):
    """MoCo pretraining with FAME (docs/algorithm.md section 5: lr 0.01, 200 epochs, steps at 120 and 180).

    Attributes:
        moco_dim: embedding size.
        queue_size: negatives (2048 for UCF101, 65536 for Kinetics-400).
        moco_momentum: key encoder momentum.
        temperature: contrastive temperature.
        mlp: 2-layer MLP projection head.
        bn: ``shuffle`` (shuffle BN for the keys) or ``sync`` (SyncBatchNorm across processes).
        bn_splits: in one process, shuffled chunks for the key encoder's batch norm.
        disjoint_views: the two clips of a video share no frame when it is long enough (else
            they are as far apart as it allows); off: two different random starts (published),
            whose clips may overlap.
        fame: apply FAME to the query view (on by default; ``--no-fame`` for the baseline).
            ``fame_mode``, ``fame_beta`` and ``fame_p`` set it.
    """

    out: str = "runs/pretrain"
    moco_dim: int = 128
    queue_size: int = 2048
    moco_momentum: float = 0.999
    temperature: float = 0.1
    mlp: bool = True
    bn: str = "shuffle"
    bn_splits: int = 1
    disjoint_views: bool = False
    fame: bool = True

    def validate(self) -> None:  # noqa: D102 - documented on the base class
        super().validate()
        self.check_fame()
        self.check_erasing()
        if self.queue_size * self.moco_dim * 4 > _LARGEST_QUEUE_BYTES:
            raise ValueError(
                f"queue_size {self.queue_size} x moco_dim {self.moco_dim} would need "
                f"{self.queue_size * self.moco_dim * 4 / 2**30:.0f} GiB; the published queues are 2048 to 65536"
            )
        if self.queue_size < 2 * self.batch_size:
            raise ValueError(
                f"queue_size ({self.queue_size}) must be at least twice batch_size ({self.batch_size}): "
                f"both key batches are enqueued every step"
            )


@dataclass
class FinetuneConfig(RunConfig, AugmentOptions, FameOptions):
    """Supervised fine-tuning (docs/algorithm.md section 5: lr 0.025, 150 epochs, batch 128, steps at 60 and 120).

    Attributes:
        pretrained: checkpoint to start from (pretraining run or backbone weights); empty
            trains from scratch.
        dropout: before the classifier (0.7 for UCF101, 0.5 for HMDB51).
        fame: FAME on the training clips (off by default; ``--fame``), each keeping its own
            label: a background-debiasing augmentation (not in the paper). Evaluation never
            sees FAME. ``fame_mode``, ``fame_beta`` and ``fame_p`` set it.
    """

    out: str = "runs/finetune"
    pretrained: str = ""
    dropout: float = 0.7
    batch_size: int = 128
    epochs: int = 150
    lr: float = 0.025
    milestones: list[int] = field(default_factory=lambda: [60, 120])

    def validate(self) -> None:  # noqa: D102 - documented on the base class
        super().validate()
        self.check_fame()
        self.check_erasing()

    def check_paths(self, out: bool = True) -> None:  # noqa: D102 - documented on the base class
        super().check_paths(out)
        if self.pretrained:
            check_path(self.pretrained, "pretrained", "file")


@dataclass
class FrozenBackboneConfig(RunConfig):
    """What the commands that use a pretrained backbone as it is (probe, retrieval) share.

    Attributes:
        pretrained: checkpoint of the backbone (required): a pretraining run or backbone weights.
    """

    pretrained: str = ""

    def check_paths(self, out: bool = True) -> None:  # noqa: D102 - documented on the base class
        super().check_paths(out)
        if not self.pretrained:
            raise ValueError("pretrained must name an existing checkpoint, got ''")
        check_path(self.pretrained, "pretrained", "file")


@dataclass
class ProbeConfig(FrozenBackboneConfig):
    """Linear probe on a frozen backbone (docs/algorithm.md section 5: lr 5, no weight decay, 100 epochs).

    The lr is divided by 10 at epochs 60 and 80; batches of 128.

    Attributes:
        standardize: a batch norm without affine parameters between the L2-normalised features
            and the classifier (off: the published probe), so that gradient descent converges
            along every feature direction at the same pace.
    """

    out: str = "runs/probe"
    standardize: bool = False
    batch_size: int = 128
    epochs: int = 100
    lr: float = 5.0
    weight_decay: float = 0.0
    milestones: list[int] = field(default_factory=lambda: [60, 80])


@dataclass
class RetrieveConfig(FrozenBackboneConfig):
    """Video retrieval: test videos query the training videos (docs/algorithm.md section 5).

    Attributes:
        ks: recall levels.
    """

    out: str = "runs/retrieve"
    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20, 50])

    def validate(self) -> None:  # noqa: D102 - documented on the base class
        super().validate()
        if not self.ks:
            raise ValueError("ks must name at least one recall level")


# A queue of float32 embeddings above this size is a typo, not a recipe (65536 x 128 is 32 MiB).
_LARGEST_QUEUE_BYTES = 8 * 2**30


# Ranges of numeric config keys: (lowest, highest, lowest excluded); None: unbounded.
_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "lr": (0.0, None, True),
    "gamma": (0.0, None, True),
    "momentum": (0.0, 1.0, False),
    "weight_decay": (0.0, None, False),
    "backbone_width": (1, None, False),
    "moco_dim": (1, None, False),
    "bn_splits": (1, None, False),
    "temperature": (0.0, None, True),
    "moco_momentum": (0.0, 1.0, False),
    "dropout": (0.0, 1.0, False),
}


def _check_range(name: str, value: float, low: float | None, high: float | None, low_excluded: bool) -> None:
    if (low is not None and (value < low or (low_excluded and value == low))) or (high is not None and value > high):
        lowest, highest = "-inf" if low is None else low, "inf" if high is None else high
        raise ValueError(f"{name} must lie in {'(' if low_excluded else '['}{lowest}, {highest}], got {value}")


COMMANDS: dict[str, type[RunConfig]] = {
    "pretrain": PretrainConfig,
    "finetune": FinetuneConfig,
    "probe": ProbeConfig,
    "retrieve": RetrieveConfig,
}


def command_keys(command: str) -> list[str]:
    """The config keys ``command`` reads: its command-line flags and its ``--help``.

    ``retrieve`` trains nothing, so it takes no training key (``TRAINING_KEYS``); ``pretrain``
    evaluates nothing, so it takes no evaluation key (``EVALUATION_KEYS``). Config files and
    presets may still set those keys (one file may serve several commands); the command ignores
    them.
    """
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {sorted(COMMANDS)}, got {command!r}")
    ignored = {"retrieve": TRAINING_KEYS, "pretrain": EVALUATION_KEYS}.get(command, ())
    return [item.name for item in fields(COMMANDS[command]) if item.name not in ignored]


def needs_synthetic_dataset(data_root: str | Path) -> bool:
    """Whether the built-in dataset must be made in ``data_root`` before a run can read it.

    The dataset is made on first use only in the default folder (``SYNTHETIC_ROOT``, relative
    to the working directory), and only while that folder is missing or empty: a mistyped
    ``--data-root`` must not become a new dataset that a run then trains on.

    Returns:
        False if ``data_root`` holds a dataset (its ``metadata.json``); True if it is the
        default folder, missing or empty.

    Raises:
        ValueError: naming the folder and how to make the dataset, in any other case.
    """
    root = Path(data_root)
    if (root / "metadata.json").is_file():
        return False
    if root.resolve() == Path(SYNTHETIC_ROOT).resolve():
        if not root.exists() or (root.is_dir() and not any(root.iterdir())):
            return True
        raise ValueError(
            f"data_root {str(root)!r} holds files but no background-bias dataset (no metadata.json); "
            f"make one elsewhere with `fame-aug make-synthetic DIR` and pass --data-root DIR"
        )
    raise ValueError(
        f"data_root {str(root)!r} holds no background-bias dataset (no metadata.json); make it with "
        f"`fame-aug make-synthetic {root}`, or leave data_root at its default {SYNTHETIC_ROOT!r}, "
        f"where it is made on first use"
    )
