"""What FAME costs inside a real pretraining step.

One MoCo training step (GPU-side augmentation of two views, both encoders, symmetric loss,
backward, SGD) is timed with the pretraining preset with FAME on the query view and without
it, alternating step by step on the same model so that both see the same machine state; the
data are uint8 clips already on the device, so decoding is left out. Reported: ms per step,
steps/s, clips/s (two clips per video) and FAME's share of the step.

- CPU: the small backbone at the ``cpu-demo`` shape (batch 16, 8 frames, 48x48 -> 40);
- CUDA (when present): R(2+1)D-18 at the published shape (batch 64, 16 frames, 128x171 -> 112).

Run::

    python benchmarks/bench_train.py                 # CPU, and CUDA if present
    python benchmarks/bench_train.py --device cpu --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from fame_aug.contrib.moco.builder import build_moco
from fame_aug.contrib.moco.resolve import resolve_config
from fame_aug.data import presets


@dataclass
class Shape:
    """The model and batch shape timed on one kind of device."""

    backbone: str
    batch: int
    frames: int
    frame_size: tuple[int, int]
    crop: int
    width: int = 16


SHAPES = {
    "cpu": Shape("r3d_small", 16, 8, (48, 48), 40, width=8),
    "cuda": Shape("r2plus1d_18", 64, 16, (128, 171), 112),
}


def bench(device: torch.device, shape: Shape, steps: int, warmup: int) -> dict[str, float]:
    torch.manual_seed(0)
    overrides = {
        "backbone": shape.backbone,
        "backbone_width": shape.width,
        "batch_size": shape.batch,
        "queue_size": 2048,
        "crop_size": shape.crop,
        "frame_size": list(shape.frame_size),
        "num_frames": shape.frames,
    }
    config = resolve_config("pretrain", None, overrides=overrides, check_paths=False)
    model = build_moco(config).to(device).train()  # type: ignore[arg-type]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    pipelines = {
        "fame": presets.pretrain(shape.crop, fame=True).to(device),
        "plain": presets.pretrain(shape.crop, fame=False).to(device),
    }
    clips = torch.randint(
        0, 256, (shape.batch, 2, shape.frames, *shape.frame_size, 3), dtype=torch.uint8, device=device
    )
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    augment_times: dict[str, list[float]] = {name: [] for name in pipelines}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for step in range(warmup + steps):
        for name, augment in pipelines.items():
            sync()
            begin = time.perf_counter()
            query, key = augment(clips)
            sync()
            augmented = time.perf_counter()
            loss = model(query, key)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sync()
            end = time.perf_counter()
            if step >= warmup:
                times[name].append(end - begin)
                augment_times[name].append(augmented - begin)
    fame, plain = statistics.median(times["fame"]), statistics.median(times["plain"])
    return {
        "plain_ms": plain * 1e3,
        "fame_ms": fame * 1e3,
        "fame_share": (fame - plain) / fame,
        "fame_augment_ms": (statistics.median(augment_times["fame"]) - statistics.median(augment_times["plain"])) * 1e3,
        "steps_per_s": 1 / fame,
        "clips_per_s": 2 * shape.batch / fame,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", action="append", help="cpu or cuda (default: cpu, plus cuda if present)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant (default 10)")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; median of {args.steps} steps each\n")
    print(
        "| device | backbone | batch x frames, crop | step ms without FAME | step ms with FAME "
        "| FAME share of the step | FAME ms (augmentation) | steps/s | clips/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in devices:
        device = torch.device(name)
        shape = SHAPES[device.type]
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        r = bench(device, shape, args.steps, args.warmup)
        print(
            f"| {label} | {shape.backbone} | {shape.batch} x {shape.frames}, {shape.crop} | {r['plain_ms']:.1f} | "
            f"{r['fame_ms']:.1f} | {100 * r['fame_share']:.1f}% | {r['fame_augment_ms']:.1f} | "
            f"{r['steps_per_s']:.2f} | {r['clips_per_s']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
