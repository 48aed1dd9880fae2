"""The experiment's tables and plots: mean and standard deviation over seeds, and line plots."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["line_plot", "markdown_table", "summarise", "table_notes"]


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of every metric, per (bias, variant)."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["bias"], row["variant"]), []).append(row)
    summary = []
    for (bias, variant), members in groups.items():
        entry: dict[str, Any] = {"bias": bias, "variant": variant, "seeds": len(members)}
        for key in members[0]:
            values = [m[key] for m in members if isinstance(m.get(key), int | float) and key not in ("bias", "seed")]
            if values and len(values) == len(members):
                entry[key] = statistics.mean(values)
                entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


_CONTROL_NOTE = " (control: backgrounds independent of the class)"


# The table's columns: (key of a run's row, heading).
_COLUMNS = (
    ("probe_top1", "test top-1"),
    ("train_top1", "training clips top-1"),
    ("knn_top1", "kNN"),
    ("R@1", "R@1"),
    ("R@5", "R@5"),
    ("nn_same_background", "nearest shares background"),
    ("nn_same_shape", "shape"),
    ("nn_color_distance", "color distance"),
)


def _cell(entry: dict[str, Any], key: str, spread: bool) -> str:
    if key not in entry:
        return ""
    return f"{100 * entry[key]:.1f} ± {100 * entry[f'{key}_std']:.1f}" if spread else f"{100 * entry[key]:.1f}"


def markdown_table(
    summary: Sequence[dict[str, Any]], bias: float, classes: int, name: Callable[[str], str] = str
) -> str:
    """The table of one bias level: accuracy, readouts and what the nearest neighbours share, in %.

    Mean ± standard deviation over seeds, or the one seed's value when each model has one.
    ``name`` turns a variant key into the model's name.
    """
    entries = [e for e in summary if e["bias"] == bias]
    spread = any(e["seeds"] > 1 for e in entries)
    seeds = "mean ± std over seeds" if spread else "one seed"
    lines = [
        f"Bias {bias:g}{_CONTROL_NOTE if math.isclose(bias, 1 / classes) else ''}, {classes} classes "
        f"(chance {100 / classes:.1f}%); {seeds}, in %.",
        "",
        "| model | " + ("seeds | " if spread else "") + " | ".join(heading for _, heading in _COLUMNS) + " |",
        "|---|" + ("---|" if spread else "") + "---|" * len(_COLUMNS),
    ]
    for entry in entries:
        cells = [name(entry["variant"]), *([str(entry["seeds"])] if spread else [])]
        cells += [_cell(entry, key, spread) for key, _ in _COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_notes(classes: int) -> str:
    """What the table's columns mean."""
    return (
        "test top-1: test videos (backgrounds drawn independently of the class) classified right; supervised "
        "models by their classifier, MoCo models by a linear probe trained on the training videos' frozen "
        "features. training clips top-1: the same classifier (or probe) on its (augmented) training clips "
        "in the last epoch. "
        f"kNN: the class most of a test video's 20 nearest training videos have (similarity-weighted vote; "
        f"nothing trained). R@k: test videos with a training video of their class among their k nearest "
        f"(R@1 is the nearest one's class). nearest shares background / shape: the nearest training video has the "
        f"test video's background family / object shape (chance {100 / classes:.1f}% / 16.7%). color distance: its "
        "object's color distance to the test video's, against an average training video's (100: colors ignored)."
    )


def line_plot(
    series: dict[str, list[tuple[float, float]]], title: str, path: Path, reference: float | None = None
) -> Path:
    """Lines of ``(x, y)`` points, y a fraction drawn in %, one color per series, with OpenCV.

    ``reference`` draws a grey horizontal line (chance). Series named ``supervised*`` are thin.
    """
    plot_width, height, margin, legend_width = 640, 420, 60, 230
    image = np.full((height, plot_width + legend_width, 3), 255, np.uint8)
    xs = [x for points in series.values() for x, _ in points]
    top = max([y for points in series.values() for _, y in points] + [reference or 0.0]) * 1.15 or 1.0
    low, high = min(xs), max(xs)

    def point(x: float, y: float) -> tuple[int, int]:
        across = margin + (x - low) / max(high - low, 1e-9) * (plot_width - 2 * margin)
        return int(across), int(height - margin - y / top * (height - 2 * margin))

    font, black = cv2.FONT_HERSHEY_SIMPLEX, (0, 0, 0)
    cv2.rectangle(image, (margin, margin), (plot_width - margin, height - margin), black, 1)
    for tick in np.linspace(0, top, 5):
        cv2.putText(image, f"{100 * tick:.0f}%", (5, point(low, tick)[1] + 4), font, 0.4, black, 1, cv2.LINE_AA)
    for tick in sorted(set(xs)) if len(set(xs)) <= 6 else np.linspace(low, high, 6):
        at = (point(tick, 0)[0] - 12, height - margin + 18)
        cv2.putText(image, f"{tick:g}", at, font, 0.45, black, 1, cv2.LINE_AA)
    if reference is not None:
        cv2.line(image, point(low, reference), point(high, reference), (150, 150, 150), 1, cv2.LINE_AA)
    palette = [(200, 60, 60), (40, 120, 220), (40, 160, 60), (160, 90, 200), (230, 140, 30), (20, 170, 170)]
    for n, (name, points) in enumerate(series.items()):
        color, thickness = palette[n % len(palette)], 1 if name.startswith("supervised") else 2
        drawn = [point(x, y) for x, y in sorted(points)]
        for a, b in itertools.pairwise(drawn):
            cv2.line(image, a, b, color, thickness, cv2.LINE_AA)
        if len(drawn) < 12:
            for p in drawn:
                cv2.circle(image, p, 4, color, -1, cv2.LINE_AA)
        cv2.putText(image, name, (plot_width - margin + 15, margin + 12 + 20 * n), font, 0.45, color, 1, cv2.LINE_AA)
    cv2.putText(image, title, (margin, 30), font, 0.5, black, 1, cv2.LINE_AA)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path
