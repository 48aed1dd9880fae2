"""Figures: FAME masks (Figure 1), class activation maps (Figure 2), retrieval results (Figure 3).

``fame-aug visualize masks | cam | retrieval`` draws each with one command.
"""

from fame_aug.visualize.figures import (
    clip_rows_figure,
    heatmap_overlay,
    mask_figure,
    mask_overlay,
    stack_images,
    tile_row,
    write_png,
)
from fame_aug.visualize.masks import masks_figure, video_masks_figure

__all__ = [
    "clip_rows_figure",
    "heatmap_overlay",
    "mask_figure",
    "mask_overlay",
    "masks_figure",
    "stack_images",
    "tile_row",
    "video_masks_figure",
    "write_png",
]
