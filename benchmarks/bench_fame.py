"""Throughput of FAME against the memory floor and a straightforward baseline.

For each device (CPU, and CUDA when present), batch size B and frame size, one run times:

- ``floor``: ``torch.add(x, y)`` plus ``x.sum()`` on clip-sized tensors: the least any
  augmentation that reads a clip batch and writes a new one can cost;
- ``baseline``: ``benchmarks/reference_fame.py``, docs/algorithm.md section 1 written out directly
  (full-size temporaries, Kornia blur and HSV, three top-k calls), plus the published merge;
- ``official``, ``motion`` and ``stabilized``: ``fame_aug.FAME`` in each mask mode.

The candidates are timed in interleaved rounds (floor, baseline, official, motion, ..., floor, ...)
and each reports its median, so that a noisy shared machine slows all of them alike; the
ratios in the last columns come from the same run. Run::

    python benchmarks/bench_fame.py                # CPU, and CUDA if available
    python benchmarks/bench_fame.py --device cpu --rounds 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_fame import reference_fame

from fame_aug import FAME, MASK_MODES

FRAMES = 16
TARGETS = {  # checked and printed at the end for the (B, size) they name, when that configuration ran
    "official <= 2.0x floor at B=8, 224": ("official", "floor", 2.0, "<=", 224),
    "official >= 4x faster than baseline at B=8, 224": ("baseline", "official", 4.0, ">=", 224),
    "motion <= 1.3x floor at B=8, 224": ("motion", "floor", 1.3, "<=", 224),
    "stabilized <= 2x official at B=8, 224": ("stabilized", "official", 2.0, "<=", 224),
    "stabilized <= 3x official at B=8, 112": ("stabilized", "official", 3.0, "<=", 112),
}


def _timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """Seconds one call takes; on CUDA measured with events around a synchronised call."""
    if device.type == "cuda":

        def run_cuda(fn: Callable[[], object]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end) / 1e3

        return run_cuda

    def run_cpu(fn: Callable[[], object]) -> float:
        begin = time.perf_counter()
        fn()
        return time.perf_counter() - begin

    return run_cpu


def bench_config(
    device: torch.device, batch: int, size: int, rounds: int, warmup: int, compile_mode: str | None
) -> dict[str, float]:
    """Median seconds per call of each candidate for one (device, B, size)."""
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch, 3, FRAMES, size, size, device=device, generator=gen)
    y = torch.rand(batch, 3, FRAMES, size, size, device=device, generator=gen)
    candidates: dict[str, Callable[[], object]] = {
        "floor": lambda: (torch.add(x, y), x.sum()),
        "baseline": lambda: reference_fame(x),
    }
    for mode in MASK_MODES:
        candidates[mode] = partial(FAME(mode=mode), x)
    if compile_mode:  # torch.compile of the same modules (compiled once per shape, in the warm-up)
        torch._dynamo.reset()  # a fresh cache per shape: no recompilation limit, no dynamic shapes
        for mode in MASK_MODES:
            compiled = torch.compile(FAME(mode=mode), fullgraph=True, mode=compile_mode)
            candidates[f"{mode}_compiled"] = partial(compiled, x)
    timer = _timer(device)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for round_index in range(warmup + rounds):
        for name, fn in candidates.items():
            elapsed = timer(fn)
            if round_index >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--device", action="append", help="cpu or cuda (repeatable); default: cpu, plus cuda if present"
    )
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 8 and 32)")
    parser.add_argument("--size", type=int, action="append", help="frame sizes (default 112 and 224)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per configuration (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    parser.add_argument(
        "--compile",
        nargs="?",
        const="default",
        metavar="MODE",
        help="also time torch.compile(FAME(...), fullgraph=True, mode=MODE) (MODE default: 'default')",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    batches, sizes = args.batch or [8, 32], args.size or [112, 224]
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {cpu}")
    results = []
    for device_name in devices:
        device = torch.device(device_name)
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(f"\n## {label}: T={FRAMES}, median of {args.rounds} interleaved rounds")
        header = (
            f"{'B':>3} {'size':>4} | {'floor ms':>9} {'baseline ms':>11} {'official ms':>11} {'motion ms':>9} "
            f"{'stabilized ms':>13} | {'official clips/s':>16} {'motion clips/s':>14} | {'official/floor':>14} "
            f"{'motion/floor':>12} {'baseline/official':>17} {'stabilized/official':>19}"
        )
        print(header)
        print("-" * len(header))
        for batch in batches:
            for size in sizes:
                warmup = max(args.warmup, 3) if args.compile else args.warmup
                t = bench_config(device, batch, size, args.rounds, warmup, args.compile)
                row = {"device": label, "batch": batch, "size": size, **{f"{k}_ms": v * 1e3 for k, v in t.items()}}
                results.append(row)
                print(
                    f"{batch:>3} {size:>4} | {t['floor'] * 1e3:>9.2f} {t['baseline'] * 1e3:>11.2f} "
                    f"{t['official'] * 1e3:>11.2f} {t['motion'] * 1e3:>9.2f} {t['stabilized'] * 1e3:>13.2f} | "
                    f"{batch / t['official']:>16.0f} {batch / t['motion']:>14.0f} | "
                    f"{t['official'] / t['floor']:>13.2f}x {t['motion'] / t['floor']:>11.2f}x "
                    f"{t['baseline'] / t['official']:>16.2f}x {t['stabilized'] / t['official']:>18.2f}x"
                )
                if args.compile:
                    compiled = ", ".join(
                        f"{mode} {t[f'{mode}_compiled'] * 1e3:.2f} ms ({t[f'{mode}_compiled'] / t['floor']:.2f}x floor)"
                        for mode in MASK_MODES
                    )
                    print(f"{'':>8} | compiled ({args.compile}): {compiled}")
        checked = False
        for row in results:
            if row["device"] != label or row["batch"] != 8:
                continue
            for text, (num, den, bound, op, size) in TARGETS.items():
                if row["size"] == size:
                    print("" if checked else "\n", end="")
                    checked = True
                    ratio = row[f"{num}_ms"] / row[f"{den}_ms"]
                    met = ratio <= bound if op == "<=" else ratio >= bound
                    print(f"target {text}: {ratio:.2f}x -> {'met' if met else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
