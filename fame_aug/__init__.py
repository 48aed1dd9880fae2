"""fame-aug: the FAME video augmentation (Ding et al., CVPR 2022) as a Kornia augmentation."""

from fame_aug.erasing import BackgroundErasing
from fame_aug.fame import FAME
from fame_aug.functional import (
    MASK_MODES,
    background_erasing,
    blur_kernel_size,
    foreground_mask,
    merge,
    still_background,
)
from fame_aug.losses import mixed_cross_entropy
from fame_aug.token_masks import TOKEN_STRATEGIES, motion_token_mask, token_saliency

__version__ = "0.1.0"

__all__ = [
    "FAME",
    "MASK_MODES",
    "TOKEN_STRATEGIES",
    "BackgroundErasing",
    "__version__",
    "background_erasing",
    "blur_kernel_size",
    "foreground_mask",
    "merge",
    "mixed_cross_entropy",
    "motion_token_mask",
    "still_background",
    "token_saliency",
]
