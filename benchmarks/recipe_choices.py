"""The ``cpu-demo`` recipe's choices, each measured against the shipped recipe on validation data.

The validation dataset is the built-in generator with another seed (100) than the experiment's
(0), so no choice is made on the data the experiment reports. Each row is one training seed: a
difference of a few points is noise (one test video is 0.8 points). Every ablation changes one
config key of the ``cpu-demo`` preset and trains the models it concerns with the same seeds,
data and budget as the shipped recipe.

Run::

    python benchmarks/recipe_choices.py                     # every ablation (the first three: 17 min, 2 cores)
    python benchmarks/recipe_choices.py --only shipped      # one ablation
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fame_aug.contrib.moco.experiment import ExperimentPlan, run_experiment, variant_name

VALIDATION_SEED = 100

# name -> (config keys changed from the cpu-demo preset, MoCo variants, supervised variants, control).
# color-augment: the published grayscale, jitter and blur on the training clips of every model.
# overlapping-views: MoCo's two clips of a video may share frames (the published sampler).
# be-weight-LOW-HIGH: Background Erasing with the still frame's weight drawn in [LOW, HIGH].
ABLATIONS: dict[str, tuple[dict[str, Any], list[str], list[str], list[str]]] = {
    "shipped": (
        {},
        ["baseline", "fame-motion", "fame-motion-published-merge"],
        ["supervised", "supervised-fame-motion", "supervised-fame-motion-published-merge"],
        ["supervised"],
    ),
    "color-augment": ({"color_augment": True}, ["fame-motion"], ["supervised", "supervised-fame-motion"], []),
    "overlapping-views": ({"disjoint_views": False}, ["baseline", "fame-motion"], [], []),
    # Background Erasing's weight range: the default, and two larger ones.
    **{
        f"be-weight-{low:g}-{high:g}": ({"background_erasing_weight": [low, high]}, ["be"], ["supervised-be"], [])
        for low, high in ((0.0, 0.3), (0.2, 0.5), (0.4, 0.8))
    },
}


def _row(name: str, result: dict[str, Any]) -> str:
    cells = [name, variant_name(result["variant"]), f"{float(result['bias']):g}"]
    for key in ("probe_top1", "train_top1", "knn_top1", "nn_same_background"):
        value = result.get(key)
        cells.append("" if value in (None, "") else f"{100 * float(value):.1f}")
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/recipe-choices"))
    parser.add_argument("--only", nargs="+", choices=sorted(ABLATIONS), help="ablations to run (default: all)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    lines = [
        f"Validation data (generator seed {VALIDATION_SEED}), one training seed, in %.",
        "",
        "| recipe | model | bias | test top-1 | training clips top-1 | kNN | nearest shares background |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.only or ABLATIONS:
        overrides, variants, supervised, control = ABLATIONS[name]
        plan = ExperimentPlan(
            out=args.out / name,
            seeds=[0],
            variants=variants,
            supervised=supervised,
            control=control,
            dataset={"seed": VALIDATION_SEED},
            overrides=overrides,
            jobs=args.jobs,
        )
        lines += [_row(name, result) for result in run_experiment(plan, label=f"recipe choice '{name}'")]
    table = "\n".join(lines)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
