"""What a run shows: its messages through :mod:`logging`, and a progress bar per pass.

The loops' console messages (one line per epoch, "resumed from", evaluation results, unreadable
videos) go to the loggers under ``fame_aug``: the ``fame-aug`` command shows them on stderr
(:func:`log_to_stderr`); in your own program, configure logging (for example
``logging.basicConfig(level=logging.INFO)``) to see or redirect them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm import tqdm

from fame_aug.contrib.moco.distributed import World

__all__ = ["Progress", "log_to_stderr"]

logger = logging.getLogger(__name__)


class _Console(logging.StreamHandler):
    """A handler that writes to whatever ``sys.stderr`` is when a message comes (a redirect included)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _ConsoleFormat(logging.Formatter):
    """Messages as the loops would print them; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def log_to_stderr(level: int = logging.INFO) -> logging.Handler:
    """Show fame-aug's messages (``fame_aug`` loggers, ``level`` and above) on stderr, as the command line does.

    Calling it again changes the level and adds no second handler. The handler writes to the
    ``sys.stderr`` of the moment, so ``contextlib.redirect_stderr`` captures the messages too.

    Returns:
        The handler, to remove with ``logging.getLogger("fame_aug").removeHandler(handler)``.
    """
    package = logging.getLogger("fame_aug")
    package.setLevel(level)
    for handler in package.handlers:
        if isinstance(handler, _Console):
            return handler
    handler = _Console()
    handler.setFormatter(_ConsoleFormat("%(message)s"))
    package.addHandler(handler)
    return handler


class Progress:
    """The progress of one pass over a loader: a tqdm bar with elapsed time, ETA, loss, lr and clips/s.

    The bar is drawn by the main process only, and only when stderr is a terminal; it clears
    itself when the pass ends, leaving the epoch's one logged line (``RunFolder.log_epoch``).
    Off a terminal (a log file, a pipe) a long pass logs one progress line every
    ``HEARTBEAT_SECONDS`` instead, so that a log never stays silent for long. ``update`` takes
    numbers the loop already holds on the host: it never waits for the device. Use it as a
    context manager, or call ``close``.
    """

    HEARTBEAT_SECONDS = 60.0

    def __init__(self, total: int, label: str, world: World) -> None:
        self.total, self.label = total, label
        self.begin, self.clips = time.perf_counter(), 0
        shown = world.is_main and sys.stderr.isatty()
        self._heartbeat = world.is_main and not shown
        self._last_line = self.begin
        self.bar = tqdm(
            total=total, desc=label, unit="step", leave=False, dynamic_ncols=True, disable=not shown, file=sys.stderr
        )

    def update(self, index: int, clips: int, **values: float) -> None:
        """Count ``clips`` more after batch ``index`` (from 1) and show ``values`` (e.g. loss, lr)."""
        self.clips += clips
        if self.bar.disable:
            now = time.perf_counter()
            if self._heartbeat and now - self._last_line >= self.HEARTBEAT_SECONDS and index < self.total:
                self._last_line = now
                left = (now - self.begin) / index * (self.total - index)
                logger.info(
                    "%s: step %d/%d, %.1f clips/s, elapsed %s, ETA %s",
                    self.label,
                    index,
                    self.total,
                    self.clips_per_second,
                    tqdm.format_interval(now - self.begin),
                    tqdm.format_interval(left),
                )
            return
        shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        self.bar.set_postfix_str(f"{shown} {self.clips_per_second:.1f} clips/s".lstrip(), refresh=False)
        self.bar.update(index - self.bar.n)

    def close(self) -> None:
        """Clear the bar."""
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def seconds(self) -> float:
        """Seconds since the pass started."""
        return time.perf_counter() - self.begin

    @property
    def clips_per_second(self) -> float:
        """Clips per second since the pass started."""
        return self.clips / max(self.seconds, 1e-9)
