"""Resolving a command's configuration: defaults, then preset, then file, then overrides.

Later sources win: 1. the dataclass defaults (the published recipe, docs/algorithm.md section 5);
2. a preset (``ucf101``, ``hmdb51``, ``k400``, ``cpu-demo``); 3. a YAML or JSON file
(``preset:`` may be one of its keys); 4. command-line flags. A ``pretrained`` checkpoint's model
settings win over a preset's; for ``probe`` and ``retrieve`` so do the clips it was trained on
(and its data, when no preset is given). Unknown keys, unknown presets and missing dataset paths are errors
before any work starts.
"""

from __future__ import annotations

import json
import logging
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, overload

from fame_aug._paths import check_path
from fame_aug.contrib.moco.checkpoint import load_checkpoint
from fame_aug.contrib.moco.config import (
    COMMANDS,
    FinetuneConfig,
    FrozenBackboneConfig,
    PretrainConfig,
    ProbeConfig,
    RetrieveConfig,
    RunConfig,
)
from fame_aug.contrib.moco.recipes import PRESETS

__all__ = ["resolve_config"]

logger = logging.getLogger(__name__)


# What a checkpoint's stored config says about the model that later stages must rebuild.
_MODEL_SETTINGS = ("backbone", "backbone_width")
# The clips the model was trained on: a frozen backbone is evaluated on the same kind of clips.
_CLIP_SETTINGS = ("num_frames", "stride", "frame_size", "crop_size")
# The data it was trained on: what a frozen backbone is evaluated on when no preset names other data.
_DATA_SETTINGS = ("dataset", "data_root", "split_dir", "split", "train_list", "test_list")


def _stored_config(path: str) -> dict[str, Any]:
    """The config stored in a fame-aug checkpoint (empty for other or unreadable files).

    A damaged file is reported, with its name, where its weights are loaded.
    """
    if not path:
        return {}
    try:
        if not Path(path).is_file():
            return {}
        state = load_checkpoint(path, mmap=True)
    except (ValueError, OSError, RuntimeError):
        return {}
    stored = state.get("config")
    return stored if isinstance(stored, dict) else {}


def _implied_by_checkpoint(config: RunConfig, explicit: set[str], preset: str | None) -> None:
    """Set what a ``pretrained`` checkpoint implies, unless a file or flag sets it; warn where they disagree.

    Every command takes the checkpoint's model (backbone, width) over a preset's. ``probe`` and
    ``retrieve``, which use the backbone as it is, also take the clips it was trained on (frames,
    stride, frame size, crop) and, when no preset names a dataset, its data.
    """
    pretrained = str(getattr(config, "pretrained", ""))
    stored = _stored_config(pretrained)
    if not stored:
        return
    frozen = isinstance(config, FrozenBackboneConfig)
    keys = [*_MODEL_SETTINGS, *(_CLIP_SETTINGS if frozen else ()), *(_DATA_SETTINGS if frozen and not preset else ())]
    for key in keys:
        if key not in stored or not hasattr(config, key):
            continue
        value = _coerce(key, stored[key], typing.get_type_hints(type(config))[key], pretrained)
        if key not in explicit:
            setattr(config, key, value)
        elif key in _CLIP_SETTINGS and getattr(config, key) != value:
            logger.warning(
                "%s %r differs from the %r that %s was trained with: the backbone sees clips unlike its training clips",
                key,
                getattr(config, key),
                value,
                pretrained,
            )


def _load_file(path: str | Path) -> dict[str, Any]:
    path = check_path(path, "config file", "file")
    text = path.read_text(encoding="utf-8-sig")  # a byte-order mark from a Windows editor is fine
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as error:  # pragma: no cover - pyyaml is a dependency
            raise ValueError("reading YAML configs needs pyyaml: pip install pyyaml") from error
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"config file {path} is not valid YAML: {' '.join(str(error).split())}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"config file {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of keys to values")
    return data


def _apply(config: RunConfig, values: dict[str, Any], source: str) -> None:
    known = {f.name: f for f in fields(config)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown config key(s) {unknown}; valid keys: {sorted(known)}")
    hints = typing.get_type_hints(type(config))
    for name, value in values.items():
        setattr(config, name, _coerce(name, value, hints[name], source))


def _coerce(name: str, value: Any, hint: Any, source: str) -> Any:
    origin = typing.get_origin(hint)
    try:
        if origin is list:
            (item,) = typing.get_args(hint)
            if not isinstance(value, list | tuple):
                raise TypeError
            return [item(v) for v in value]
        if hint is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if hint is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if hint is str and isinstance(value, str):
            return value
        raise TypeError
    except (TypeError, ValueError):
        raise ValueError(f"{source}: {name} must be {getattr(hint, '__name__', hint)}, got {value!r}") from None


# A command named literally gives its own configuration class (COMMANDS[command]).
@overload
def resolve_config(
    command: Literal["pretrain"],
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    check_paths: bool = True,
) -> PretrainConfig: ...


@overload
def resolve_config(
    command: Literal["finetune"],
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    check_paths: bool = True,
) -> FinetuneConfig: ...


@overload
def resolve_config(
    command: Literal["probe"],
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    check_paths: bool = True,
) -> ProbeConfig: ...


@overload
def resolve_config(
    command: Literal["retrieve"],
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    check_paths: bool = True,
) -> RetrieveConfig: ...


@overload
def resolve_config(
    command: str,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    check_paths: bool = True,
) -> RunConfig: ...


def resolve_config(
    command: str,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    check_paths: bool = True,
) -> RunConfig:
    """Build a command's configuration: defaults, then preset, then file, then overrides.

    Args:
        command: ``pretrain``, ``finetune``, ``probe`` or ``retrieve``.
        preset: one of ``PRESETS`` (a file may name one with ``preset:``; the argument wins).
        config_file: a YAML or JSON mapping of config keys.
        overrides: keys set last (e.g. from command-line flags).
        check_paths: also check that the data (and checkpoint) paths exist.
    """
    if command not in COMMANDS:
        raise ValueError(f"command must be one of {sorted(COMMANDS)}, got {command!r}")
    from_file = _load_file(config_file) if config_file else {}
    preset = preset or from_file.pop("preset", None)
    from_file.pop("preset", None)
    config = COMMANDS[command]()
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; presets: {sorted(PRESETS)}")
        values = {**PRESETS[preset].get("all", {}), **PRESETS[preset].get(command, {})}
        _apply(config, values, f"preset {preset!r}")
    if from_file:
        _apply(config, from_file, str(config_file))
    if overrides:
        _apply(config, overrides, "command line")
    _implied_by_checkpoint(config, {*from_file, *(overrides or {})}, preset)  # explicit keys win over it
    config.validate()
    if check_paths:
        config.check_paths()
    return config
