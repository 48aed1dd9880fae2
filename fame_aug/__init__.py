"""fame-aug: the FAME video augmentation (Ding et al., CVPR 2022) as a Kornia augmentation."""

from fame_aug.fame import FAME
from fame_aug.functional import MASK_MODES, blur_kernel_size, foreground_mask, merge, still_background
from fame_aug.losses import mixed_cross_entropy

__version__ = "0.1.0"

__all__ = [
    "FAME",
    "MASK_MODES",
    "__version__",
    "blur_kernel_size",
    "foreground_mask",
    "merge",
    "mixed_cross_entropy",
    "still_background",
]
