"""Background Erasing (Wang et al., CVPR 2021) as a Kornia augmentation, under FAME's conventions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from kornia.augmentation import MixAugmentationBaseV2
from kornia.constants import DataKey

from fame_aug import _checks
from fame_aug.functional import _as_bcthw, _background_erasing, _from_bcthw

__all__ = ["BackgroundErasing"]

Params = dict[str, torch.Tensor]


def _weight_range(value: object) -> tuple[float, float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise TypeError(f"weight must be a (low, high) pair of numbers in [0, 1], got {value!r}")
    low, high = (_checks.unit_interval("weight", float(v), open_interval=False) for v in value)
    if low > high:
        raise ValueError(f"weight must be (low, high) with low <= high, got {tuple(value)}")
    return (low, high)


_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "weight": _weight_range,
    "p": lambda value: _checks.unit_interval("p", value, open_interval=False),
    "data_format": _checks.data_format,
}


class BackgroundErasing(MixAugmentationBaseV2):
    r"""Background Erasing (BE): blend one of each clip's own frames, drawn at random, into all its frames.

    The still frame holds the clip's background and none of its motion, so a view that must match
    the untouched clip (the MoCo key) cannot be matched by its background alone (Wang et al.,
    *Removing the Background by Adding the Background*, CVPR 2021, the baseline FAME compares
    with). Each drawn clip gets a frame index uniform over its frames and a weight uniform in
    ``weight``; :func:`fame_aug.background_erasing` does the blend.

    Convention:
        - Probability: ``p`` is per clip; a clip not drawn comes out byte-identical.
          ``same_on_batch=True`` draws once for the batch: the decision, the frame and the weight.
        - Mixing: each clip with a frame of *itself* (no partner, unlike FAME), so a batch of
          one clip is augmented too.
        - Replay: the last draw is in ``self._params`` (``"batch_prob"`` (B,) bool, ``"frame"``
          (B,) long, ``"weight"`` (B,) float, and ``"forward_input_shape"``, CPU metadata that
          rejects params of another batch); ``forward(video, params=be._params)`` replays it.
        - Layout: ``data_format`` "BCTHW" or "BTCHW"; output in the input's layout, dtype and
          device; uint8 clips are blended in float32 and rounded back.
        - Randomness: every draw uses ``generator`` when given (on the clips' device), else
          torch's global generator on the clips' device. No host-device synchronisation.
        - Placement: after the crop and flip, with or after FAME, before the color
          augmentations; on the query view in contrastive pretraining.
        - Gradient: differentiable with respect to float clips.

    Args:
        weight: ``(low, high)`` range of the still frame's weight, in [0, 1].
        p: probability of erasing each clip.
        same_on_batch: one draw for the whole batch.
        data_format: ``"BCTHW"`` or ``"BTCHW"``.
        generator: optional ``torch.Generator`` for every draw.

    Shape:
        - Input: (B, C, T, H, W) or (B, T, C, H, W), float in [0, 1] or uint8, T >= 2.
        - Output: same as input.

    Example:
        >>> be = BackgroundErasing(weight=(0.1, 0.3), generator=torch.Generator().manual_seed(0))
        >>> video = torch.rand(4, 3, 8, 32, 32)
        >>> out = be(video)
        >>> out.shape, be._params["frame"].shape, bool((be._params["weight"] <= 0.3).all())
        (torch.Size([4, 3, 8, 32, 32]), torch.Size([4]), True)
        >>> torch.equal(be(video, params=be._params), out)  # replay
        True
    """

    def __init__(
        self,
        weight: tuple[float, float] = (0.0, 0.3),
        p: float = 1.0,
        same_on_batch: bool = False,
        data_format: str = "BCTHW",
        generator: torch.Generator | None = None,
    ) -> None:
        _checks.flag("same_on_batch", same_on_batch)
        super().__init__(p=p, p_batch=1.0, same_on_batch=same_on_batch)
        self.weight = weight
        self.data_format = data_format
        self.generator = _checks.generator(generator)
        self._params: Params = {}

    def __setattr__(self, name: str, value: Any) -> None:
        """Check ``weight``, ``p`` and ``data_format`` whenever they are set."""
        check = _SETTINGS.get(name)
        super().__setattr__(name, value if check is None else check(value))

    def __repr__(self) -> str:
        text = f"weight={self.weight}, p={self.p}, same_on_batch={self.same_on_batch}, data_format={self.data_format}"
        if self.generator is not None:
            text += f", generator={self.generator.device}"
        return f"{self.__class__.__name__}({text})"

    def _rand(self, *size: int, device: torch.device) -> torch.Tensor:
        return _checks.uniform(self.generator, *size, device=device)

    def forward_parameters(
        self, batch_shape: tuple[int, ...] | torch.Size, device: torch.device | str | None = None
    ) -> Params:
        """Draw which clips are erased, with which of their frames and which weight.

        Args:
            batch_shape: shape of the clip batch, in this module's ``data_format``.
            device: where to draw; defaults to the generator's device, else the module's.

        Returns:
            The params, a dict of ``"batch_prob"`` (B,) bool, ``"frame"`` (B,) long, ``"weight"``
            (B,) float and ``"forward_input_shape"`` (5,) long (CPU).
        """
        shape = tuple(int(s) for s in batch_shape)
        if len(shape) == 4:
            raise _checks.frames_not_clips("batch_shape", shape, self.data_format)
        if len(shape) != 5 or min(shape) < 1:
            raise ValueError(f"batch_shape must be 5 positive sizes ({', '.join(self.data_format)}), got {shape}")
        batch, frames = shape[0], shape[self.data_format.index("T")]
        draw_device = self.generator.device if self.generator is not None else torch.device(device or self.device)
        draws = 1 if self.same_on_batch else batch
        gate = self._rand(draws, device=draw_device) < self.p
        frame = (self._rand(draws, device=draw_device) * frames).long().clamp_(max=frames - 1)
        low, high = self.weight
        weight = low + (high - low) * self._rand(draws, device=draw_device)
        if self.same_on_batch:
            gate, frame, weight = gate.expand(batch).clone(), frame.expand(batch).clone(), weight.expand(batch).clone()
        return {
            "batch_prob": gate,
            "frame": frame,
            "weight": weight,
            "forward_input_shape": torch.tensor(shape, dtype=torch.long),
        }

    def forward(  # type: ignore[override]  # Kornia's base takes *inputs; a mix augmentation names them
        self,
        video: torch.Tensor,
        *,
        params: Params | None = None,
        data_keys: Sequence[str | DataKey] | None = None,
    ) -> torch.Tensor:
        """Erase the background of a clip batch (layout ``self.data_format``).

        Args:
            video: clips (B, C, T, H, W) or (B, T, C, H, W), float in [0, 1] or uint8.
            params: parameters to replay (``self._params`` or :meth:`forward_parameters`).
            data_keys: Kornia's containers pass ``[DataKey.INPUT]``; only the clips are augmented.

        Returns:
            The clips, same shape, layout, dtype and device as ``video``.
        """
        if data_keys is not None and _checks.data_keys(data_keys) != ("input",):
            raise ValueError('BackgroundErasing augments the clips only: data_keys must be ["input"]')
        fmt = self.data_format
        _checks.video(video, "video", fmt, rgb=False)
        if params is None:
            params = self.forward_parameters(video.shape, video.device)
        else:
            params = self._check_params(params, video)
        self._params = params
        clips = _as_bcthw(video, fmt)
        return _from_bcthw(_background_erasing(clips, params["frame"], params["weight"], params["batch_prob"]), fmt)

    def _check_params(self, params: Params, video: torch.Tensor) -> Params:
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of tensors (e.g. be._params), got {type(params).__name__}")
        missing = {"batch_prob", "frame", "weight"} - params.keys()
        if missing:
            raise ValueError(f"params lacks {sorted(missing)}; pass be._params or be.forward_parameters(...)")
        if not torch.compiler.is_compiling():
            _checks.drawn_for(params, video)
        batch = video.shape[0]
        params = {
            key: value.to(video.device) if isinstance(value, torch.Tensor) and key != "forward_input_shape" else value
            for key, value in params.items()
        }
        for key, dtype in (("batch_prob", torch.bool), ("frame", torch.long)):
            value = params[key]
            if not isinstance(value, torch.Tensor) or value.dtype != dtype or tuple(value.shape) != (batch,):
                raise TypeError(f"params[{key!r}] must be a ({batch},) {dtype} tensor for this batch")
        weight = params["weight"]
        if not isinstance(weight, torch.Tensor) or not weight.is_floating_point() or tuple(weight.shape) != (batch,):
            raise TypeError(f"params['weight'] must be a ({batch},) floating point tensor for this batch")
        return params

    def inverse(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """BE is not inverted: the blend is not undone."""
        raise NotImplementedError("BackgroundErasing is not invertible; apply it after what you need to invert")
