"""The one check every path a user gives goes through: an OS problem becomes one clear ``ValueError``.

A symbolic link loop, a name too long for the file system, a missing permission, a missing
parent or a file where a folder is expected are reported with the argument's name and the path,
before any work, instead of surfacing later as a traceback from deep inside a loop.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["check_path"]

_KINDS = ("dir", "file", "input", "out", "out_file")


def check_path(path: str | Path, argument: str, kind: str) -> Path:
    """Check ``path`` for its use and return it.

    Args:
        path: the path as given.
        argument: its name in the user's words (``data_root``, ``--out``, ...), quoted in errors.
        kind: ``dir`` (an existing folder to read), ``file`` (an existing file to read),
            ``input`` (an existing file or folder to read, such as a video or a frame folder), ``out``
            (a folder to write: an existing one, or one that can be created) or ``out_file`` (a
            file to write, whose folder exists or can be created).

    Raises:
        ValueError: naming ``argument`` and ``path``, with the reason.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise ValueError(f"{argument} must be a path, got {path!r}")
    path = Path(path)
    shown = str(path) if len(str(path)) <= 100 else f"{str(path)[:60]}...{str(path)[-30:]}"
    text = f"{argument} {shown!r}"
    try:
        _check_names(path)
        path.resolve(strict=False)  # raises on a symbolic link loop
        exists = path.exists()
        if kind in ("dir", "file", "input"):
            if not exists:
                raise ValueError(f"{text} does not exist{_missing_part(path)}")
            if kind == "dir" and not path.is_dir():
                raise ValueError(f"{text} is not a folder")
            if kind == "file" and not path.is_file():
                raise ValueError(f"{text} is not a file")
            if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
                raise ValueError(f"{text}: permission denied (cannot read it)")
            return path
        folder = path if kind == "out" else path.parent
        if kind == "out_file" and path.is_dir():
            raise ValueError(f"{text} is a folder, not a file")
        existing = folder
        while not existing.exists():
            if existing.is_symlink():
                raise ValueError(f"{text}: {existing} is a broken symbolic link")
            existing = existing.parent
        if not existing.is_dir():
            raise ValueError(f"{text}: {existing} is not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"{text}: permission denied (cannot write in {existing})")
        return path
    except RuntimeError:  # pathlib's words for a symbolic link loop
        raise ValueError(f"{text}: a symbolic link loop") from None
    except OSError as error:
        reason = "a symbolic link loop" if error.errno == errno.ELOOP else (error.strerror or str(error))
        raise ValueError(f"{text}: {reason}") from None


def _check_names(path: Path) -> None:
    """Refuse a name longer than the file system allows (checked where a parent exists)."""
    existing = Path(path.anchor or ".")
    parts = path.parts[1:] if path.anchor else path.parts
    for part in parts:
        limit = _name_max(existing)
        if len(os.fsencode(part)) > limit:
            raise OSError(errno.ENAMETOOLONG, f"the name {part[:40]!r}... is longer than {limit} bytes")
        candidate = existing / part
        if not candidate.is_dir():
            break
        existing = candidate
    if len(os.fsencode(str(path))) >= _path_max(existing):
        raise OSError(errno.ENAMETOOLONG, "the path is too long")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _path_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        return 4096


def _missing_part(path: Path) -> str:
    """`` (no folder X)`` for the first missing parent, when the path's own parent is missing."""
    parent = path.parent
    if parent.exists() or parent == path:
        return ""
    while not parent.parent.exists() and parent.parent != parent:
        parent = parent.parent
    return f" (no folder {parent})"
