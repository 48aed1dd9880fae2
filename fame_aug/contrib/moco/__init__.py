"""Reference MoCo loops for FAME: pretraining, fine-tuning, linear probe and retrieval.

Each loop is a function taking a configuration (:mod:`fame_aug.contrib.moco.config`) and
runs as one process on CPU or GPU, or under ``torchrun --nproc_per_node N``. The command line
``fame-aug pretrain | finetune | probe | retrieve`` calls them.
"""

from fame_aug.contrib.moco.config import FinetuneConfig, PretrainConfig, ProbeConfig, RetrieveConfig
from fame_aug.contrib.moco.finetune import finetune
from fame_aug.contrib.moco.moco import MoCo
from fame_aug.contrib.moco.models import create_backbone
from fame_aug.contrib.moco.pretrain import pretrain
from fame_aug.contrib.moco.probe import probe
from fame_aug.contrib.moco.recipes import PRESETS
from fame_aug.contrib.moco.resolve import resolve_config
from fame_aug.contrib.moco.retrieve import retrieve
from fame_aug.contrib.moco.run_folder import TrainingDiverged

__all__ = [
    "PRESETS",
    "FinetuneConfig",
    "MoCo",
    "PretrainConfig",
    "ProbeConfig",
    "RetrieveConfig",
    "TrainingDiverged",
    "create_backbone",
    "finetune",
    "pretrain",
    "probe",
    "resolve_config",
    "retrieve",
]
