"""The ``fame-aug`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from fame_aug import FAME, __version__
from fame_aug.data import moving_object_clips, to_float_clips
from fame_aug.data.background_bias import BackgroundBiasConfig, make_background_bias_dataset
from fame_aug.visualize import mask_figure, write_png


def _demo(args: argparse.Namespace) -> int:
    """Make moving-object clips, apply FAME, report how much of each object the mask keeps, draw it."""
    clips, object_masks = moving_object_clips(args.clips, args.frames, args.size, seed=args.seed)
    video = to_float_clips(clips)
    fame = FAME(beta=args.beta, mode=args.mode, self_pairs=False, generator=torch.Generator().manual_seed(args.seed))
    begin = time.perf_counter()
    merged = fame(video)
    elapsed = time.perf_counter() - begin
    mask = fame._params["mask"].numpy()
    object_any = object_masks.any(axis=1)  # pixels the object covers in any frame
    print(
        f"FAME(mode={args.mode}, beta={args.beta}) on {args.clips} clips of {args.frames}x{args.size}x{args.size}: "
        f"{elapsed * 1e3:.1f} ms"
    )
    for n in range(args.clips):
        recall = (mask[n] & object_any[n]).sum() / object_any[n].sum()
        partner = int(fame._params["mix_pairs"][n])
        print(f"  clip {n}: mask keeps {recall:.1%} of the moving object's pixels; background from clip {partner}")
    merged_u8 = (merged.permute(0, 2, 3, 4, 1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    figure = mask_figure(clips, mask, merged_u8, num_frames=args.show_frames)
    print(f"wrote {write_png(args.out, figure)}")
    return 0


def _make_synthetic(args: argparse.Namespace) -> int:
    """Write the background-bias dataset and say how to load it."""
    config = BackgroundBiasConfig(
        classes=args.classes,
        train_per_class=args.train_per_class,
        test_per_class=args.test_per_class,
        frames=args.frames,
        size=args.size,
        bias=args.bias,
        pan=args.pan,
        seed=args.seed,
        codec=args.codec,
    )
    begin = time.perf_counter()
    metadata = make_background_bias_dataset(args.out, config, overwrite=args.overwrite)
    stats = metadata["stats"]
    print(
        f"wrote {stats['train']['videos']} training and {stats['test']['videos']} test videos "
        f"({config.classes} classes, {config.frames} frames of {config.size}x{config.size}) to {args.out} "
        f"in {time.perf_counter() - begin:.1f} s"
    )
    print(
        f"videos on their class's own background: {stats['train']['own_background_share']:.0%} of training, "
        f"{stats['test']['own_background_share']:.0%} of test (chance {1 / config.classes:.0%})"
    )
    print(f'load: UCF101("{args.out}/videos", "{args.out}/splits", split=1, train=True)')
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fame-aug", description="FAME video augmentation tools.")
    parser.add_argument("--version", action="version", version=f"fame-aug {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="apply FAME to generated moving-object clips and draw the masks")
    demo.add_argument("--out", type=Path, default=Path("fame_demo.png"), help="PNG to write (default fame_demo.png)")
    demo.add_argument("--mode", choices=("official", "motion"), default="official")
    demo.add_argument("--beta", type=float, default=0.5, help="share of pixels kept as foreground")
    demo.add_argument("--clips", type=int, default=3, help="number of clips (>= 2)")
    demo.add_argument("--frames", type=int, default=16)
    demo.add_argument("--size", type=int, default=112)
    demo.add_argument("--show-frames", type=int, default=8, help="frames per figure row")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    synth = commands.add_parser(
        "make-synthetic", help="write the background-bias dataset (UCF101 layout, real video files)"
    )
    synth.add_argument("out", type=Path, help="folder to create")
    defaults = BackgroundBiasConfig()
    synth.add_argument("--classes", type=int, default=defaults.classes, help="motion classes, 2-10")
    synth.add_argument("--train-per-class", type=int, default=defaults.train_per_class)
    synth.add_argument("--test-per-class", type=int, default=defaults.test_per_class)
    synth.add_argument("--frames", type=int, default=defaults.frames)
    synth.add_argument("--size", type=int, default=defaults.size, help="frame side in pixels")
    synth.add_argument(
        "--bias", type=float, default=defaults.bias, help="share of training videos on their class's background"
    )
    synth.add_argument("--pan", type=float, default=defaults.pan, help="share of videos with a slow camera pan")
    synth.add_argument("--seed", type=int, default=defaults.seed)
    synth.add_argument("--codec", choices=("ffv1", "mjpg"), default=defaults.codec)
    synth.add_argument("--overwrite", action="store_true", help="replace a dataset made here before")
    synth.set_defaults(run=_make_synthetic)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"fame-aug {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
