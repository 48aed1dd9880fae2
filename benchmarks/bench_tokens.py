"""Motion-guided token masks against random tubelet masking, on the CPU, as ratios in one run.

``random``: VideoMAE's random masking (``motion_token_mask(..., strategy="random")``, a sort of
random numbers); ``motion`` and ``keep_motion`` in each saliency mode compute FAME's motion score
per tubelet first. The candidates run in interleaved rounds and each reports its median. Run::

    python benchmarks/bench_tokens.py                     # B=8, 16 frames of 224x224, tubelet (2, 16, 16)
    python benchmarks/bench_tokens.py --batch 4 --size 112 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from fame_aug import motion_token_mask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    video = torch.rand(args.batch, 3, args.frames, args.size, args.size)
    candidates: dict[str, Callable[[], torch.Tensor]] = {
        "random": lambda: motion_token_mask(video, strategy="random"),
        **{
            f"{strategy} ({mode})": (lambda s=strategy, m=mode: motion_token_mask(video, mode=m, strategy=s))
            for mode in ("motion", "official", "stabilized")
            for strategy in ("motion", "keep_motion")
        },
    }
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for run in candidates.values():
        run()  # warm-up
    for _ in range(args.rounds):
        for name, run in candidates.items():
            begin = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - begin)
    base = statistics.median(times["random"])
    print(
        f"token masks, B={args.batch}, {args.frames} frames of {args.size}x{args.size}, tubelet (2, 16, 16), "
        f"mask ratio 0.9, {args.threads} thread(s), median of {args.rounds} rounds"
    )
    print("| masking | ms per batch | ms per clip | / random |\n|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {1000 * median:.2f} | {1000 * median / args.batch:.2f} | {median / base:.0f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
