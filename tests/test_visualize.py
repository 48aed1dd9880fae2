"""The mask figure and the drawing blocks every figure uses."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fame_aug.data import moving_object_clips
from fame_aug.visualize import heatmap_overlay, masks_figure, stack_images, tile_row

LABEL, GAP = 14, 2


def read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_masks_figure_overlay_differs_where_the_mask_is(tmp_path: Path) -> None:
    clips, _ = moving_object_clips(2, 16, 48, seed=3)
    image, masks = masks_figure(clips, mode="motion", num_frames=4, min_side=0)
    assert image.shape == (2 * 3 * (48 + LABEL), 4 * 48 + 3 * GAP, 3)
    frame = clips[0, 0].astype(int)
    overlay = image[(48 + LABEL) + LABEL : 2 * (48 + LABEL), :48].astype(int)
    changed = np.abs(overlay - frame).sum(axis=-1) > 10
    kernel = np.ones((3, 3), np.uint8)  # the outline is drawn on the mask's edge pixels, frame border included
    interior = cv2.erode(masks[0].astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    assert changed[~masks[0]].mean() > 0.9  # the background is greyed
    assert not changed[interior].any()  # the foreground keeps its colors


def test_masks_figure_clean_background_hides_the_partners_object() -> None:
    clips, _ = moving_object_clips(2, 16, 48, seed=3)
    published, masks = masks_figure(clips, mode="motion", num_frames=4, min_side=0)
    clean, clean_masks = masks_figure(clips, mode="motion", num_frames=4, min_side=0, clean_background=True)
    np.testing.assert_array_equal(masks, clean_masks)
    top = 2 * (48 + LABEL) + LABEL  # the merged row: clip 0's foreground on clip 1's background
    merged_published, merged_clean = (image[top : top + 48, :48].astype(int) for image in (published, clean))
    background = ~masks[0]
    partner_still = np.median(clips[1].astype(float), axis=0)  # (H, W, 3): clip 1 without its moving object
    assert np.array_equal(merged_clean[~background], merged_published[~background])  # the foreground is the same
    assert np.abs(merged_clean[background] - partner_still[background]).max() <= 1
    assert np.abs(merged_published[background] - partner_still[background]).max() > 30  # the object shows


def test_building_blocks() -> None:
    frames = np.full((2, 8, 8, 3), 100, np.uint8)
    heat = np.zeros((2, 8, 8))
    heat[:, :4] = 1.0
    blended = heatmap_overlay(frames, heat)
    assert not np.array_equal(blended[:, :4], frames[:, :4]) and blended.shape == frames.shape
    row = tile_row([("a", frames[0], None), ("b", frames[1], (255, 0, 0))])
    assert row.shape == (LABEL + 14, 2 * 14 + GAP, 3) and tuple(row[LABEL, 14 + GAP]) == (255, 0, 0)
    assert stack_images([row, row], title="t").shape == (LABEL + 2 * (row.shape[0] + GAP), row.shape[1], 3)
    with pytest.raises(ValueError, match="heat must have shape"):
        heatmap_overlay(frames, heat[0])
