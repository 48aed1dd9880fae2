"""fame-aug: the FAME video augmentation (Ding et al., CVPR 2022) as a Kornia-style module."""

from fame_aug.fame import FAME
from fame_aug.functional import foreground_mask, merge
from fame_aug.losses import mixed_cross_entropy

__version__ = "0.1.0"

__all__ = ["FAME", "__version__", "foreground_mask", "merge", "mixed_cross_entropy"]
