"""Argument checks shared by the functional layer and the module.

Every check raises ``TypeError`` or ``ValueError`` naming the argument and the expected form,
so that bad input never surfaces as an ``IndexError`` or ``RuntimeError`` from inside torch.
The checks read shapes, dtypes and devices. The one that reads tensor values (the range of
``pairs``) does so only for CPU tensors outside ``torch.compile``, so none synchronises with a GPU.
"""

from __future__ import annotations

from numbers import Real

import torch

DATA_FORMATS = ("BCTHW", "BTCHW")
DATA_KEYS = (("input",), ("input", "class"))
MASK_MODES = ("official", "motion", "stabilized")


def data_format(value: object) -> str:
    """Normalise ``data_format`` ("BCTHW" or "BTCHW", any case) to upper case."""
    if not isinstance(value, str) or value.upper() not in DATA_FORMATS:
        raise ValueError(f"data_format must be 'BCTHW' or 'BTCHW' (any case), got {value!r}")
    return value.upper()


def mask_mode(value: object, name: str = "mode") -> str:
    """Check a mask mode name (the argument or config key ``name``)."""
    if not isinstance(value, str) or value not in MASK_MODES:
        raise ValueError(f"{name} must be one of {MASK_MODES}, got {value!r}")
    return value


# Kornia's spellings of the two keys FAME handles (its ``DataKey`` members and their aliases).
_KEY_NAMES = {"input": "input", "image": "input", "class": "class", "label": "class"}


def data_keys(value: object) -> tuple[str, ...]:
    """Check ``data_keys``: ``None`` or ``["input"]`` (clips only), or ``["input", "class"]`` (clips and labels).

    Kornia's ``DataKey`` members and aliases (``"image"``, ``"label"``, any case) name the same keys.
    """
    if value is None:
        return ("input",)
    if not isinstance(value, str) and isinstance(value, (list, tuple)):
        names = tuple(_KEY_NAMES.get(str(getattr(key, "name", key)).lower(), "") for key in value)
        if names in DATA_KEYS:
            return names
    raise ValueError(
        f'data_keys must be None, ["input"] or ["input", "class"], got {value!r}: FAME mixes clips and their '
        "class labels, and has no rule for masks, boxes or keypoints"
    )


def labels(value: object, name: str, count: int, device: torch.device) -> None:
    """Check (count,) integer class labels on ``device``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape ({count},) with class indices, got {type(value).__name__}"
        )
    if value.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{name} must hold integer class indices, got {value.dtype}")
    if tuple(value.shape) != (count,):
        raise ValueError(f"{name} must have shape ({count},), one class index per clip, got {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"{name} must be on the clips' device {device}, got {value.device}")


def generator(value: object) -> torch.Generator | None:
    """An optional ``torch.Generator``, returned as it is."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(value).__name__}")
    return value


def uniform(generator: torch.Generator | None, *size: int, device: torch.device) -> torch.Tensor:
    """``torch.rand(*size)`` on ``device``, from ``generator`` when given.

    No ``generator=None`` argument: torch.compile cannot trace it with a symbolic size.
    """
    if generator is None:
        return torch.rand(*size, device=device)
    return torch.rand(*size, generator=generator, device=device)


def flag(name: str, value: object) -> bool:
    """A setting that must be a bool (not 0/1 or a string), returned as it is."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def unit_interval(name: str, value: object, *, open_interval: bool) -> float:
    """Check a real number in [0, 1] (or (0, 1) when ``open_interval``)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    number = float(value)
    if open_interval and not 0.0 < number < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    if not open_interval and not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return number


def foreground_pixels(beta: float, height: int, width: int) -> int:
    """Number of foreground pixels ``int(beta * H * W)``; it must not round to zero."""
    count = int(beta * height * width)
    if count < 1:
        raise ValueError(
            f"beta={beta} keeps int(beta*H*W) = 0 pixels of a {height}x{width} frame; "
            f"use a larger beta or larger frames"
        )
    return count


_VIDEO_DTYPES = (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64)


def frames_not_clips(name: str, shape: tuple[int, ...], fmt: str) -> ValueError:
    """The error for 4-D input: what kornia's VideoSequential hands the modules inside it (frames, not clips)."""
    return ValueError(
        f"FAME got frames, not clips: {name} has shape {shape}, 4 dimensions where clips have 5 "
        f"({', '.join(fmt)}). Inside kornia's VideoSequential, which folds time into the batch, FAME cannot "
        f"see motion: put it before VideoSequential, not inside it"
    )


def video(value: object, name: str, fmt: str, *, rgb: bool) -> None:
    """Check a float clip batch in layout ``fmt`` with at least two frames."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({', '.join(fmt)}), got {type(value).__name__}")
    if value.dim() == 4:
        raise frames_not_clips(name, tuple(value.shape), fmt)
    if value.dim() != 5:
        raise ValueError(
            f"{name} must have 5 dimensions ({', '.join(fmt)}) for data_format={fmt!r}, got shape {tuple(value.shape)}"
        )
    if value.dtype not in _VIDEO_DTYPES:
        raise TypeError(
            f"{name} must be a uint8 (0-255) or float16, bfloat16, float32 or float64 (0-1) tensor, got {value.dtype}"
        )
    channels = value.shape[fmt.index("C")]
    frames = value.shape[fmt.index("T")]
    if rgb and channels != 3:
        raise ValueError(
            f"{name} must have 3 (RGB) channels in mode='official', got C={channels} "
            f"(shape {tuple(value.shape)}, data_format={fmt!r}); use mode='motion' for other channel counts"
        )
    if frames < 2:
        raise ValueError(
            f"{name} must have at least 2 frames (T >= 2) to find motion, got T={frames} "
            f"(shape {tuple(value.shape)}, data_format={fmt!r})"
        )
    if value.shape[0] < 1 or value.shape[-1] < 1 or value.shape[-2] < 1:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")


def background(value: object, clips: torch.Tensor, fmt: str, still: bool = False) -> None:
    """Check an explicit background batch against the clips it will be merged into.

    With ``still``, a background of one frame (T = 1, broadcast over the clip's frames) is accepted too.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"background must be a torch.Tensor or None, got {type(value).__name__}")
    expected = list(clips.shape[1:])
    time = fmt[1:].index("T")
    if still and value.dim() == 5 and value.shape[1 + time] == 1:
        expected[time] = 1
    if value.dim() != 5 or value.shape[0] < 1 or list(value.shape[1:]) != expected:
        shape = ("N", *tuple(clips.shape[1:]))
        frames = ", or T = 1" if still else ""
        raise ValueError(
            f"background must have shape {shape} (any N >= 1, the same {fmt[1:]} as video{frames}), "
            f"got {tuple(value.shape)}"
        )
    if value.dtype != clips.dtype:
        raise TypeError(f"background must have the video's dtype {clips.dtype}, got {value.dtype}")
    if value.device != clips.device:
        raise ValueError(f"background must be on the video's device {clips.device}, got {value.device}")


def mask(value: object, batch: int, height: int, width: int, device: torch.device) -> None:
    """Check a (B, H, W) mask, bool or floating point."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor of shape (B, H, W), got {type(value).__name__}")
    if value.dtype != torch.bool and not value.is_floating_point():
        raise TypeError(f"mask must be bool (hard) or floating point (soft weights), got {value.dtype}")
    if tuple(value.shape) != (batch, height, width):
        raise ValueError(f"mask must have shape (B, H, W) = {(batch, height, width)}, got {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"mask must be on the video's device {device}, got {value.device}")


def pairs(value: object, batch: int, sources: int, device: torch.device) -> None:
    """Check (B,) integer pairing indices into a source batch of ``sources`` clips.

    The range is checked on the CPU only: on a GPU it would need a host-device synchronisation.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"pairs must be a torch.Tensor of shape (B,), got {type(value).__name__}")
    if value.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"pairs must be an int64 (long) or int32 tensor, got {value.dtype}")
    if tuple(value.shape) != (batch,):
        raise ValueError(f"pairs must have shape (B,) = ({batch},), got {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"pairs must be on the video's device {device}, got {value.device}")
    if value.device.type == "cpu" and batch > 0 and not torch.compiler.is_compiling():
        low, high = int(value.min()), int(value.max())
        if low < 0 or high >= sources:
            raise ValueError(
                f"pairs must index the {sources} source clips (0..{sources - 1}), got values in [{low}, {high}]"
            )


def drawn_for(params: dict[str, torch.Tensor], video: torch.Tensor) -> None:
    """Refuse replayed params drawn for a batch of another shape (their ``forward_input_shape``)."""
    shape = params.get("forward_input_shape")
    if shape is not None and tuple(shape.tolist()) != tuple(video.shape):
        raise ValueError(
            f"params were drawn for a batch of shape {tuple(shape.tolist())}, got video of shape {tuple(video.shape)}"
        )
