"""Command-line flags for the config keys: one flag per key a command reads, with its help."""

from __future__ import annotations

import argparse
import inspect
import re
import typing
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fame_aug.contrib.moco.config import CHOICES, COMMANDS, RunConfig, command_keys
from fame_aug.contrib.moco.recipes import PRESETS
from fame_aug.contrib.moco.resolve import resolve_config

__all__ = ["add_config_arguments", "config_from_args"]


def add_config_arguments(
    parser: argparse.ArgumentParser,
    command: str,
    preset: str | None = None,
    config_file: str | Path | None = None,
    pretrained: str | None = None,
) -> None:
    """Add ``--config``, ``--preset`` and one flag per config key ``command`` reads to ``parser``.

    Each flag's help gives the key's description, its choices and its default. The defaults
    shown are those ``preset``, ``config_file`` and ``pretrained`` (the checkpoint's model) resolve
    to, when given (what ``--preset`` and the other flags on the same command line choose); the
    flags themselves default to None, so that only the flags a user gives override a preset or
    a file. Keys the command does not read (``command_keys``) get no flag: argparse refuses them.
    """
    parser.add_argument("--config", help="YAML or JSON file of config keys")
    parser.add_argument(
        "--preset",
        metavar="{" + ",".join(PRESETS) + "}",
        help="the dataset and model of a setup; with --help, the defaults below are the preset's",
    )
    hints = typing.get_type_hints(COMMANDS[command])
    described = _field_descriptions(COMMANDS[command])
    shown, source_of = _help_defaults(command, preset, config_file, pretrained)
    for name in command_keys(command):
        flag = "--" + name.replace("_", "-")
        hint = hints[name]
        if source_of is None:
            default = f"(default {shown[name]!r}; a --preset may set another)"
        elif name in source_of:
            default = f"(default {shown[name]!r}, from {source_of[name]})"
        else:
            default = f"(default {shown[name]!r})"
        help_text = f"{described.get(name, '')} {default}".lstrip().replace("%", "%%")
        if hint is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(hint) is list:
            (element,) = typing.get_args(hint)
            parser.add_argument(flag, dest=name, nargs="+", type=element, default=None, help=help_text)
        else:
            choices = CHOICES.get(name)
            parser.add_argument(flag, dest=name, type=hint, default=None, choices=choices, help=help_text)


def _help_defaults(
    command: str, preset: str | None, config_file: str | Path | None, pretrained: str | None
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The defaults ``--help`` shows, and which source set each key that differs from the built-in default.

    Returns:
        The pair ``(values, sources)``, where ``sources`` is None when nothing was given (or what was given
        cannot be resolved: the run itself reports why), the built-in defaults are shown then.
    """
    base = asdict(COMMANDS[command]())
    stages: list[tuple[str, dict[str, Any]]] = []
    if preset:
        stages.append((f"--preset {preset}", {"preset": preset}))
    if config_file:
        stages.append((f"--config {config_file}", {**(stages[-1][1] if stages else {}), "config_file": config_file}))
    if pretrained and "pretrained" in base:
        resolved = stages[-1][1] if stages else {}
        stages.append((f"the checkpoint {pretrained}", {**resolved, "overrides": {"pretrained": pretrained}}))
    if not stages:
        return base, None
    values, sources = base, {}
    try:
        for source, arguments in stages:
            now = asdict(resolve_config(command, check_paths=False, **arguments))
            sources.update({key: source for key, value in now.items() if value != values[key] and key != "pretrained"})
            values = now
    except (ValueError, TypeError, OSError):
        return base, None
    if "pretrained" in base:  # the flag's own value is no default
        values["pretrained"] = base["pretrained"]
    return values, sources


def _field_descriptions(cls: type) -> dict[str, str]:
    """One line per config key, from the ``Attributes:`` sections of the class and its bases."""
    described: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        doc = inspect.getdoc(klass) or ""
        if "Attributes:" not in doc:
            continue
        section = doc.split("Attributes:", 1)[1]
        for name, text in re.findall(r"^    (\w+): (.+(?:\n        .+)*)", section, flags=re.M):
            text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)  # Sphinx roles read as their target in a terminal
            described[name] = " ".join(text.replace("``", "").split())
    return described


def config_from_args(command: str, args: argparse.Namespace) -> RunConfig:
    """The configuration that parsed command-line ``args`` describe."""
    overrides = {name: getattr(args, name) for name in command_keys(command) if getattr(args, name, None) is not None}
    return resolve_config(command, args.preset, args.config, overrides)
