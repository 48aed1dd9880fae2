"""The background-bias experiment, as a benchmark script: ``fame-aug experiment background-bias``.

Run::

    python benchmarks/background_bias.py                       # the default experiment (< 30 min, 2 cores)
    python benchmarks/background_bias.py --seeds 0 1 2 3 4 --pretrain-epochs 40

Every option of ``fame-aug experiment background-bias --help`` is accepted.
"""

from __future__ import annotations

import sys

from fame_aug.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["experiment", "background-bias", *sys.argv[1:]]))
