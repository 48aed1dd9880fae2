"""A run's folder: its config, its metrics (one row per epoch), its checkpoint, TensorBoard."""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no folder locks
    _FOLDER_LOCKS = False
else:
    _FOLDER_LOCKS = True

from fame_aug._paths import check_path
from fame_aug.contrib.moco.checkpoint import (
    NonFiniteState,
    capture_rng_state,
    load_checkpoint,
    save_checkpoint,
    write_atomically,
)
from fame_aug.contrib.moco.config import RunConfig
from fame_aug.contrib.moco.distributed import World

__all__ = ["RunFolder", "RunFolderInUse", "TrainingDiverged", "read_metrics"]

logger = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss or the training state became NaN or infinite; the last good checkpoint is kept."""


# Config keys that decide the shapes of a run's model and optimiser state: a checkpoint made with
# others cannot be resumed.
_MODEL_KEYS = ("backbone", "backbone_width", "moco_dim", "queue_size", "dataset", "optimizer")


def read_metrics(path: Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv``, epochs numbered from 1 (as the progress display shows them).

    Files written by fame-aug 0.1.0 numbered epochs from 0; their rows are renumbered.

    Raises:
        ValueError: naming the file, if it is damaged.
    """
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        shift = 1 if rows and int(rows[0]["epoch"]) == 0 else 0
        for row in rows:
            row["epoch"] = str(int(row["epoch"]) + shift)
    except (ValueError, KeyError, TypeError, csv.Error) as error:
        raise ValueError(f"{path} is damaged ({error}); repair or delete it to resume") from None
    return rows


class RunFolderInUse(ValueError):
    """Another live process holds the run folder (its lock); the folder is left as it is."""


class RunFolder:
    """The run's folder: config.json, metrics.csv (one row per epoch), checkpoint.pt, TensorBoard.

    Creating a ``RunFolder`` writes nothing: it checks ``out`` and, with ``resume``, that the
    checkpoint exists, and fails at once if another run holds the folder. The loop then builds
    and validates everything else (data, augmentation, model, the checkpoint it resumes) and
    calls :meth:`open`, which creates the folder, takes its lock and writes ``config.json``: a
    run refused for bad input leaves ``out`` exactly as it found it.

    One run per folder: :meth:`open` holds an OS lock (``fcntl.flock``) on ``out/.lock`` until
    :meth:`close` or the process's end; the kernel releases it when the process dies, so a killed
    run never leaves a stale lock. A second run on a held folder is refused with the holder's PID.

    Only the main process writes. Epochs are numbered from 1 in metrics.csv, TensorBoard and the
    console alike: row N is the Nth epoch, and a checkpoint whose ``epoch`` is N holds rows 1 to
    N. Checkpoints are atomic; on resume, metrics rows of epochs the checkpoint does not cover
    are dropped, so the CSV matches the state. Use it as a context manager (or call ``close``).
    """

    LOCK = ".lock"

    def __init__(self, config: RunConfig, world: World, checkpoints: bool = True) -> None:
        self.path, self.world, self.config = Path(config.out), world, config
        self.checkpoint = self.path / "checkpoint.pt"
        self.metrics = self.path / "metrics.csv"
        self.writer: Any = None
        self.opened = False
        self._lock: int | None = None
        self._resumed_epoch: int | None = None
        self._resumed_step = 0
        self._epoch_seconds: list[float] = []  # the epochs of this session, for the ETA
        if world.is_main:
            check_path(self.path, "out", "out")
            if checkpoints and not config.resume and self.checkpoint.exists():
                raise ValueError(f"{self.checkpoint} exists: pass --resume to continue it, or choose another --out")
            if config.resume and not self.checkpoint.is_file():
                raise ValueError(f"--resume: no checkpoint at {self.checkpoint}")
            if (self.path / self.LOCK).is_file():  # fail at once, before any work, if a run holds it
                _release(_hold(self.path / self.LOCK, create=False))

    def open(self) -> None:
        """Create the folder, hold its lock and write ``config.json``; call once everything is validated.

        Raises:
            RunFolderInUse: naming the folder and the PID of the run that holds it.
        """
        if self.opened:
            return
        self.opened = True
        if not self.world.is_main:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = _hold(self.path / self.LOCK, create=True)
        _write_atomically(self.path / "config.json", json.dumps(asdict(self.config), indent=2))
        if self._resumed_epoch is not None:  # the checkpoint is loaded into the model: say so, trim the rows
            epoch, total = self._resumed_epoch, self.config.epochs
            left = f"{total - epoch} more to train" if epoch < total else "nothing left to train"
            logger.info(
                "resumed from %s at epoch %d of %d (step %d); %s",
                self.checkpoint,
                epoch,
                total,
                self._resumed_step,
                left,
            )
            if self.metrics.is_file():
                self._write_rows([r for r in read_metrics(self.metrics) if int(r["epoch"]) <= epoch])
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.path / "tensorboard"))
        except Exception:  # tensorboard is optional
            self.writer = None

    def close(self) -> None:
        """Flush TensorBoard and release the folder's lock."""
        close = getattr(self.writer, "close", None)
        if close is not None:
            close()
        self.writer = None
        if self._lock is not None:
            _release(self._lock)
            self._lock = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def resume(self) -> dict[str, Any] | None:
        """The checkpoint to continue from, if ``resume`` is set; reads and checks it, writes nothing.

        Raises:
            ValueError: naming the file, if the checkpoint is not this run's (another model, a
                damaged or foreign file) or ``metrics.csv`` is damaged.
        """
        if not self.config.resume:
            return None
        state = load_checkpoint(self.checkpoint, self.world.device)
        missing = sorted({"model", "optimizer", "epoch", "step", "rng", "config"} - set(state))
        if missing:
            raise ValueError(f"{self.checkpoint} is not a fame-aug training checkpoint (it lacks {missing})")
        epoch, step = state["epoch"], state["step"]
        if not (isinstance(epoch, int) and isinstance(step, int) and 0 <= epoch <= self.config.epochs and step >= 0):
            raise ValueError(
                f"{self.checkpoint}: epoch {epoch!r} and step {step!r} cannot be resumed to {self.config.epochs} epochs"
            )
        stored = state["config"] if isinstance(state["config"], dict) else {}
        now = asdict(self.config)
        changed = [k for k in _MODEL_KEYS if k in now and k in stored and stored[k] != now[k]]
        if changed:
            details = ", ".join(f"{k} {stored[k]!r} -> {now[k]!r}" for k in changed)
            raise ValueError(f"{self.checkpoint} was trained with other model settings ({details}); use another --out")
        if self.world.is_main and self.metrics.is_file():
            read_metrics(self.metrics)  # a damaged file is refused now, not after the first epoch
        self._resumed_epoch, self._resumed_step = epoch, step
        return state

    def kept(self) -> str:
        """What the run leaves behind when it stops early: the last good checkpoint, if there is one."""
        if self.checkpoint.is_file():
            return f"The last good checkpoint is kept at {self.checkpoint}"
        return "No checkpoint had been written yet"

    def _write_rows(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            self.metrics.unlink(missing_ok=True)
            return
        with self.metrics.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def log_epoch(self, epoch: int, values: dict[str, float], label: str = "epoch") -> None:
        """Record the epoch of index ``epoch`` (from 0): row ``epoch + 1`` of metrics.csv, TensorBoard, one logged line.

        The line reads ``{label} {epoch + 1}/{epochs}: {values}, {clips/s}, {seconds}, elapsed, ETA``
        (elapsed and the ETA of the run's end count this session's epochs; ``values`` may hold
        ``clips_per_s`` and ``seconds``, shown in their own words).
        """
        if not self.world.is_main:
            return
        self.open()
        number = epoch + 1
        row = {"epoch": number, **values}
        new = not self.metrics.is_file()
        with self.metrics.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.log_scalars(values, number)
        self._epoch_seconds.append(float(values.get("seconds", 0.0)))
        elapsed = sum(self._epoch_seconds)
        remaining = elapsed / len(self._epoch_seconds) * (self.config.epochs - number)
        shown = " ".join(f"{k} {v:.4g}" for k, v in values.items() if k not in ("clips_per_s", "seconds", "bad_videos"))
        timing = [f"{values['clips_per_s']:.1f} clips/s"] if "clips_per_s" in values else []
        timing += [f"{self._epoch_seconds[-1]:.1f} s"] if "seconds" in values else []
        timing += [f"elapsed {tqdm.format_interval(elapsed)}", f"ETA {tqdm.format_interval(remaining)}"]
        logger.info("%s %d/%d: %s | %s", label, number, self.config.epochs, shown, ", ".join(timing))

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        """Write ``values`` to TensorBoard at ``step`` (main process, when tensorboard is installed)."""
        if self.writer is None or not self.world.is_main:
            return
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def save(self, state: dict[str, Any]) -> None:
        """Write the checkpoint (main process), with the random states of this process."""
        if self.world.is_main:
            self.open()
            try:
                save_checkpoint(self.checkpoint, {**state, "rng": capture_rng_state(), "config": asdict(self.config)})
            except NonFiniteState as error:
                raise TrainingDiverged(
                    f"the training state became non-finite; checkpoint {error}. {self.kept()}"
                ) from None

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        """Write ``data`` as ``name`` in the run folder (main process)."""
        path = self.path / name
        if self.world.is_main:
            self.open()
            _write_atomically(path, json.dumps(data, indent=2))
        return path


def _write_atomically(path: Path, text: str) -> None:
    def write(handle: BinaryIO) -> None:
        handle.write(text.encode())

    write_atomically(path, write)


def _hold(lock: Path, create: bool) -> int:
    """Take the exclusive lock of ``lock`` (creating the file if ``create``) and return its descriptor.

    Raises:
        RunFolderInUse: if another process holds it.
    """
    descriptor = os.open(lock, (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY, 0o644)
    if not _FOLDER_LOCKS:  # pragma: no cover
        return descriptor
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(descriptor)
        os.close(descriptor)
        who = f"PID {holder}" if holder else "another process"
        raise RunFolderInUse(
            f"run folder {lock.parent} is in use by another fame-aug run ({who}); wait for it, or choose another --out"
        ) from None
    if create:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
    return descriptor


def _read_pid(descriptor: int) -> str:
    try:
        text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


def _release(descriptor: int) -> None:
    if _FOLDER_LOCKS:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
    os.close(descriptor)
