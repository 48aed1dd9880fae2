"""The ``fame-aug`` command line.

- ``demo``: the main job on built-in data: make the background-bias dataset, train supervised
  and MoCo models without and with FAME, read them out, print one table (CPU, about 4 min).
- ``make-synthetic``: write the background-bias dataset.
- ``pretrain``, ``finetune``, ``probe``, ``retrieve``: the reference loops, configured by a
  preset, a YAML/JSON file and flags (``fame-aug pretrain --help`` lists them). They run under
  ``torchrun --nproc_per_node N -m fame_aug.cli pretrain ...`` as well.
- ``experiment background-bias``: the three-seed experiment behind the README's evidence.
- ``visualize``: FAME masks, class activation maps and retrieval results as PNG figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fame_aug import MASK_MODES, __version__
from fame_aug._paths import check_path
from fame_aug.data.background_bias import BackgroundBiasConfig, make_background_bias_dataset

__all__ = ["build_parser", "main"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def _from_args(cls: type[T], args: argparse.Namespace, **values: Any) -> T:
    """A dataclass built from the parsed flags named as its fields; ``values`` are given as they are."""
    names = [f.name for f in fields(cls)]
    flagged = {name: getattr(args, name) for name in names if name not in values and hasattr(args, name)}
    return cls(**flagged, **values)


def _hue_spread(text: str) -> float | None:
    """``--hue-spread``: a number, or ``none`` for colors independent of the background family."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 0.5] or 'none', got {text!r}") from None


def _make_synthetic(args: argparse.Namespace) -> int:
    """Write the background-bias dataset and say how to load it."""
    check_path(args.out, "out", "out")
    config = _from_args(BackgroundBiasConfig, args, object_size=tuple(args.object_size))
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


def _run_loop(args: argparse.Namespace) -> int:
    """One of the reference loops, configured from preset, file and flags."""
    from fame_aug.contrib.moco import finetune, pretrain, probe, retrieve
    from fame_aug.contrib.moco.arguments import config_from_args

    loops: dict[str, Callable[[Any], dict[str, Any]]] = {
        "pretrain": pretrain,
        "finetune": finetune,
        "probe": probe,
        "retrieve": retrieve,
    }
    config = config_from_args(args.command, args)
    result = loops[args.command](config)
    if _is_main_process():
        print(json.dumps(result, indent=2))
    return 0


def _is_main_process() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _demo(args: argparse.Namespace) -> int:
    from fame_aug.contrib.moco.demo import run_demo

    check_path(args.out, "--out", "out")
    run_demo(
        Path(args.out),
        epochs=args.epochs,
        probe_epochs=args.probe_epochs,
        supervised_epochs=args.supervised_epochs,
        quick=args.quick,
        jobs=args.jobs,
    )
    return 0


def _experiment(args: argparse.Namespace) -> int:
    """The background-bias experiment: pretrain with and without FAME, probe, retrieve, summarise."""
    from fame_aug.contrib.moco.experiment import QUICK_DATASET, QUICK_OVERRIDES, ExperimentPlan, run_experiment

    check_path(args.out, "--out", "out")
    plan = _from_args(
        ExperimentPlan,
        args,
        out=Path(args.out),
        dataset=QUICK_DATASET if args.quick else {},
        overrides=QUICK_OVERRIDES if args.quick else {},
    )
    begin = time.perf_counter()
    run_experiment(plan)
    print("\n" + (plan.out / "table.md").read_text())
    plots = ", ".join(str(plan.out / name) for name in ("probe_vs_bias.png", "learning_curves.png"))
    print(f"plots: {plots}; every run: {plan.out / 'runs.csv'}")
    print(f"{(time.perf_counter() - begin) / 60:.1f} minutes")
    return 0


def _visualize(args: argparse.Namespace) -> int:
    """Draw one of the three figures and write it as PNG."""
    check_path(args.out, "--out", "out_file")
    for video in getattr(args, "videos", None) or []:
        check_path(video, "video", "input")
    for name in ("checkpoint", "compare"):
        if getattr(args, name, None):
            check_path(getattr(args, name), name, "file")
    for name in ("gallery", "queries"):  # 'train', 'test' or a list file
        if getattr(args, name, None) not in (None, "train", "test"):
            check_path(getattr(args, name), f"--{name}", "file")
    from fame_aug.visualize import video_masks_figure, write_png

    if args.figure == "masks":
        image, masks = video_masks_figure(
            args.videos,
            size=args.size,
            start=args.start,
            mode=args.mode,
            beta=args.beta,
            num_frames=args.frames,
            clean_background=args.clean_background,
        )
        shares = ", ".join(f"{share:.3f}" for share in masks.mean(axis=(1, 2)))
        print(f"FAME masks ({args.mode}, beta {args.beta:g}): {shares} of each frame")
    elif args.figure == "cam":
        from fame_aug.contrib.moco.cam import cam_figure

        checkpoints = [args.checkpoint] + ([args.compare] if args.compare else [])
        image = cam_figure(checkpoints, args.videos, num_frames=args.frames, layer=args.layer)
    else:
        from fame_aug.contrib.moco.retrieval_figure import retrieval_config, retrieval_figure

        config = retrieval_config(
            args.checkpoint, data_root=args.data_root, dataset=args.dataset, split_dir=args.split_dir, device="cpu"
        )
        image, recall = retrieval_figure(config, args.gallery, args.queries, k=args.k, num_queries=args.num_queries)
        print(f"recall@{args.k} over the {args.num_queries} queries shown: {recall:.0%}")
    print(f"wrote {write_png(args.out, image)}")
    return 0


_LOOPS = ("pretrain", "finetune", "probe", "retrieve")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help layout, without breaking words or lines at hyphens (``cpu-demo``, paths)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_long_words=False, break_on_hyphens=False)


def _help_sources(argv: Sequence[str] | None) -> dict[str, str | None]:
    """``--preset``, ``--config`` and ``--pretrained`` of a loop command's ``--help`` request.

    ``fame-aug pretrain --preset cpu-demo --help`` shows the preset's defaults: the parser must
    know them before it parses. Only a help request is looked at; a run resolves its
    configuration from the parsed flags as usual.
    """
    argv = list(argv or [])
    wants_help = any(a == "-h" or (len(a) > 2 and "--help".startswith(a)) for a in argv[1:])
    if not argv or argv[0] not in _LOOPS or not wants_help:
        return {}
    peek = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    for flag in ("--preset", "--config", "--pretrained"):
        peek.add_argument(flag)
    try:
        known, _ = peek.parse_known_args(argv[1:])
    except argparse.ArgumentError:  # e.g. --preset without a value: the real parser says so
        return {}
    return {"command": argv[0], **vars(known)}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every ``fame-aug`` command.

    Args:
        argv: the arguments it will parse, if known: in a loop command's ``--help`` request, the
            ``--preset``, ``--config`` and ``--pretrained`` given choose the defaults shown.
    """
    from fame_aug.contrib.moco.arguments import add_config_arguments

    sources = _help_sources(argv)

    parser = argparse.ArgumentParser(
        prog="fame-aug",
        description=(__doc__ or "").replace("``", ""),  # no reStructuredText marks in a terminal
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fame-aug {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo_help = "supervised and MoCo models without and with FAME on built-in data, one table (CPU, ~4 min)"
    demo = commands.add_parser("demo", help=demo_help, description=demo_help)
    demo.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    demo.add_argument("--epochs", type=int, default=None, help="MoCo epochs (default: the cpu-demo preset's)")
    demo.add_argument("--probe-epochs", type=int, default=None, help="linear probe epochs (default: the preset's)")
    demo.add_argument("--supervised-epochs", type=int, default=None, help="supervised epochs (default: the preset's)")
    demo.add_argument("--quick", action="store_true", help="a tiny run that only checks everything works")
    demo.add_argument("--jobs", type=int, default=2, help="models trained at the same time (default 2)")
    demo.set_defaults(run=_demo)

    synth = commands.add_parser(
        "make-synthetic",
        help="write the background-bias dataset (UCF101 layout)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    synth.add_argument("out", type=Path, help="folder to create")
    defaults = BackgroundBiasConfig()
    synth.add_argument("--classes", type=int, default=defaults.classes, help="motion classes, 2-10")
    synth.add_argument("--train-per-class", type=int, default=defaults.train_per_class, help="training videos a class")
    synth.add_argument("--test-per-class", type=int, default=defaults.test_per_class, help="test videos per class")
    synth.add_argument("--frames", type=int, default=defaults.frames, help="frames per video")
    synth.add_argument("--size", type=int, default=defaults.size, help="frame side in pixels")
    synth.add_argument(
        "--bias", type=float, default=defaults.bias, help="share of training videos on their own background"
    )
    synth.add_argument("--pan", type=float, default=defaults.pan, help="share of videos with a slow camera pan")
    synth.add_argument(
        "--object-size",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=list(defaults.object_size),
        help="range of the object's radius, in units of the frame side",
    )
    synth.add_argument(
        "--hue-spread",
        type=_hue_spread,
        default=defaults.hue_spread,
        help="each background family has its own hue, its colors within this share of the hue circle of it; "
        "'none': random colors, independent of the family",
    )
    synth.add_argument("--seed", type=int, default=defaults.seed, help="everything is deterministic given the seed")
    synth.add_argument("--codec", choices=("ffv1", "mjpg"), default=defaults.codec, help="video codec of the files")
    synth.add_argument("--overwrite", action="store_true", help="replace a dataset made here before")
    synth.set_defaults(run=_make_synthetic)

    experiment = commands.add_parser("experiment", help="reproducible experiments on built-in data")
    experiments = experiment.add_subparsers(dest="experiment", required=True)
    bias_help = "does FAME make models follow motion rather than background? three seeds (CPU, ~25 min)"
    bias = experiments.add_parser("background-bias", help=bias_help, description=bias_help)
    from fame_aug.contrib.moco.experiment import SUPERVISED_VARIANTS, VARIANTS, ExperimentPlan

    plan = ExperimentPlan()
    bias.add_argument("--out", default=str(plan.out), help=f"run folder (default {plan.out})")
    bias.add_argument(
        "--biases", type=float, nargs="+", default=plan.biases, help=f"bias levels (default {plan.biases})"
    )
    bias.add_argument(
        "--control",
        nargs="*",
        choices=sorted({**VARIANTS, **SUPERVISED_VARIANTS}),
        default=plan.control,
        help="models also trained where backgrounds are independent of the class (none: give the flag alone)",
    )
    bias.add_argument("--seeds", type=int, nargs="+", default=plan.seeds, help=f"training seeds (default {plan.seeds})")
    bias.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=plan.variants)
    bias.add_argument(
        "--supervised",
        nargs="*",
        choices=sorted(SUPERVISED_VARIANTS),
        default=plan.supervised,
        help="supervised models from scratch, without and with FAME (none: give the flag alone)",
    )
    bias.add_argument("--pretrain-epochs", type=int, default=None, help="default: the cpu-demo preset's")
    bias.add_argument("--probe-epochs", type=int, default=None, help="default: the cpu-demo preset's")
    bias.add_argument("--supervised-epochs", type=int, default=None, help="default: the cpu-demo preset's")
    bias.add_argument("--quick", action="store_true", help="a tiny run that only checks everything works")
    bias.add_argument("--jobs", type=int, default=2, help="models trained at the same time, in processes (default 2)")
    bias.add_argument(
        "--threads", type=int, default=plan.threads, help="CPU threads of each run, whatever --jobs is (default 1)"
    )
    bias.set_defaults(run=_experiment)

    visualize = commands.add_parser("visualize", help="draw FAME masks, class activation maps or retrieval results")
    figures = visualize.add_subparsers(dest="figure", required=True)
    masks = figures.add_parser("masks", help="frames, FAME masks and merged clips of video files (Figure 1)")
    masks.add_argument("videos", nargs="+", type=Path)
    masks.add_argument("--mode", choices=MASK_MODES, default="official")
    masks.add_argument("--beta", type=float, default=0.5)
    masks.add_argument("--size", type=int, default=112, help="clip side after the centre crop")
    masks.add_argument("--start", type=int, default=0, help="first frame of each clip (16 frames at stride 2)")
    masks.add_argument(
        "--clean-background",
        action="store_true",
        help="merge onto the partner's still background (FAME(clean_background=True)), not the whole partner clip",
    )
    cam = figures.add_parser("cam", help="class activation maps of a fine-tuned model (Figure 2)")
    cam.add_argument("checkpoint", type=Path, help="a fame-aug finetune checkpoint")
    cam.add_argument("videos", nargs="+", type=Path)
    cam.add_argument("--compare", type=Path, help="a second checkpoint, drawn in the row below")
    cam.add_argument(
        "--layer",
        help="Grad-CAM on this stage's feature map (e.g. layer2: finer than the last map of a small model); "
        "default: CAM on the last one",
    )
    retrieval = figures.add_parser("retrieval", help="queries and their nearest training videos (Figure 3)")
    retrieval.add_argument("checkpoint", type=Path, help="a fame-aug pretrain (or any backbone) checkpoint")
    retrieval.add_argument("--gallery", default="train", help="'train', 'test' or a list file (default train)")
    retrieval.add_argument("--queries", default="test", help="'train', 'test' or a list file (default test)")
    retrieval.add_argument("-k", type=int, default=3, help="neighbours per query")
    retrieval.add_argument("--num-queries", type=int, default=6)
    retrieval.add_argument("--data-root", help="dataset root (default: the checkpoint's)")
    retrieval.add_argument("--dataset", help="dataset kind (default: the checkpoint's)")
    retrieval.add_argument("--split-dir", help="split files folder (default: the checkpoint's)")
    for sub in (masks, cam, retrieval):
        sub.add_argument("--out", type=Path, required=True, help="PNG to write")
        sub.add_argument("--frames", type=int, default=8, help="frames per row")
        sub.set_defaults(run=_visualize)

    helps = {
        "pretrain": "MoCo pretraining with FAME on the query view",
        "finetune": "supervised fine-tuning, tested on 10 clips per video",
        "probe": "linear probe on a frozen backbone",
        "retrieve": "video retrieval (test queries, training gallery), R@1/5/10/20/50",
    }
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)
        if sources.get("command") == name:
            add_config_arguments(sub, name, sources["preset"], sources["config"], sources["pretrained"])
        else:
            add_config_arguments(sub, name)
        sub.set_defaults(run=_run_loop)
    return parser


def _raised_by_fame_aug(error: BaseException) -> bool:
    """Whether ``error`` was raised by this package's own checks (the innermost frame is ours)."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is None:
        return True
    return Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(Path(__file__).resolve().parent)


def main(argv: list[str] | None = None) -> int:
    """Run ``fame-aug``; returns the exit status.

    0 done; 2 bad input, a bad file or a failed read or write (one line naming it); 3 training
    diverged (the last good checkpoint is kept); 130 interrupted (Ctrl-C; checkpoints already
    written are kept, a save in progress never replaces one).
    """
    from fame_aug.contrib.moco.console import log_to_stderr
    from fame_aug.contrib.moco.run_folder import TrainingDiverged

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    log_to_stderr()
    try:
        return args.run(args)
    except (ValueError, TypeError) as error:
        if not _raised_by_fame_aug(error):
            raise  # a bug surfacing in a library below, not a bad input: keep its traceback
        print(f"fame-aug {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a missing file, no permission, a full disk: the OS's words and the path
        path = getattr(error, "filename", None) or getattr(args, "out", None)
        where = f" ({path})" if path else ""
        print(f"fame-aug {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"fame-aug {args.command}: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"fame-aug {args.command}: interrupted; checkpoints written so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
