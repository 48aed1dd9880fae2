"""The FAME augmentation as a Kornia mix augmentation (an ``nn.Module``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from kornia.augmentation import MixAugmentationBaseV2
from kornia.constants import DataKey

from fame_aug import _checks
from fame_aug.functional import _as_bcthw, _foreground_mask, _from_bcthw, _merge, _still_background

__all__ = ["FAME"]

Params = dict[str, torch.Tensor]


def _same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same, reading a missing index as the current one ("cuda" is "cuda:0")."""
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        current = torch.cuda.current_device() if a.type == "cuda" and torch.cuda.is_available() else 0
        return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)
    return a.index == b.index


# The settings a user may change after construction, each with the check that guards it.
_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "beta": lambda value: _checks.unit_interval("beta", value, open_interval=True),
    "mode": _checks.mask_mode,
    "p": lambda value: _checks.unit_interval("p", value, open_interval=False),
    "data_format": _checks.data_format,
    "clean_background": lambda value: _checks.flag("clean_background", value),
}


class FAME(MixAugmentationBaseV2):
    r"""Foreground-bAckground MErging: keep each clip's moving foreground, swap its background.

    For every clip drawn (probability ``p``), the ``int(beta * H * W)`` pixels that move the
    most (:func:`fame_aug.foreground_mask`) are kept and the rest is taken from a partner clip
    of the same batch, or of ``background`` when one is given (:func:`fame_aug.merge`).

    Convention:
        - Probability: ``p`` is per clip. A clip that is not drawn comes out byte-identical.
          ``same_on_batch=True`` draws once for the whole batch (all clips or none).
        - Pairing: partners follow a random permutation of the batch. ``self_pairs=True`` (the
          published behaviour) lets a clip draw itself, which leaves it unchanged (about 1/B of
          the clips); ``self_pairs=False`` draws a random cyclic permutation, so no clip is its
          own partner and each clip's partner is uniform among the others. With an explicit
          ``background`` of N clips, partners are drawn from it, each background used
          ``B // N`` or ``B // N + 1`` times; ``self_pairs=False`` then forbids clip ``i``
          taking ``background[i]`` if ``N == B`` (e.g. a second view of the same videos).
        - Background: by default (the published merge) a clip's partner is pasted whole behind
          its foreground, the partner's own moving object included, so most merged clips show two
          moving objects. With ``clean_background=True`` the background is the partner's still
          background instead (:func:`fame_aug.still_background`: every pixel's median over its
          frames), in which the partner's moving object is gone: the merged clip shows one
          moving object, the clip's own. A clip paired with itself then shows its own still
          background outside its mask. With a still camera the median is the scene behind the
          object; with a moving one it is a blurred still of it.
        - Replay: the last draw is kept in ``self._params`` (keys ``"batch_prob"`` (B,) bool,
          ``"mix_pairs"`` (B,) long, ``"mask"`` (B, H, W) bool, plus ``"forward_input_shape"``
          and ``"source_size"``, CPU metadata used to reject params of another batch), and
          ``forward(video, params=fame._params)`` replays it bit for bit, mask included.
        - Layout: ``data_format`` "BCTHW" or "BTCHW" (any case); the output keeps the input's
          layout, dtype and device.
        - Randomness: every draw uses ``generator`` when given (it must live on the clips'
          device), else torch's global generator on the clips' device.
        - Placement: after the per-clip crop and flip, before color jitter, grayscale, blur
          and normalisation (published recipe), and never inside ``VideoSequential``, which
          folds time into the batch: FAME needs the whole clip to see motion.
        - Containers: FAME is a Kornia ``MixAugmentationBaseV2``. In
          ``K.AugmentationSequential(FAME(...), K.VideoSequential(...))`` the container draws
          FAME's parameters (on the device it was moved to with ``.to()``; params drawn
          elsewhere are copied to the clips' device), records and replays them (the mask is
          computed again from the clips); ``inverse()`` raises. Kornia's containers take no
          class labels for mix augmentations: call FAME with labels itself.
        - Gradient: none through the mask; the output is differentiable with respect to the
          clips and ``background`` (``mask`` for the clip, ``1 - mask`` for its partner).
        - Labels: with ``data_keys=["input", "class"]`` (Kornia's convention for mix
          augmentations) ``fame(video, labels)`` returns ``[video, mixed]``, where ``mixed`` is
          (B, 3) float as in Kornia's ``RandomMixUpV2``: the clip's own (foreground) label,
          the partner's (background) label, and the share of the frame taken from the partner
          (``1 - int(beta*H*W) / (H*W)``; 0 for a clip left unchanged, whose two labels are
          equal). Train on ``mixed[:, 0]`` to keep the foreground's label (debiasing), or use
          :func:`fame_aug.mixed_cross_entropy` for the soft mix. With ``background``, pass its
          labels as ``background_labels``.
        - A batch of one clip (a ragged last batch) passes through unchanged, recorded in
          ``self._params`` as not merged, without drawing; with ``background=`` it merges.

    Args:
        beta: share of pixels kept as foreground, in (0, 1).
        mode: mask mode, ``"official"`` (published, RGB only), ``"motion"`` (no color model) or
            ``"stabilized"`` (the camera's motion removed first; see :func:`fame_aug.foreground_mask`).
        p: probability of merging each clip, in [0, 1].
        same_on_batch: draw the merge decision once for the whole batch.
        self_pairs: allow a clip to be paired with itself (published behaviour).
        data_format: ``"BCTHW"`` or ``"BTCHW"``.
        generator: optional ``torch.Generator`` for every random draw.
        data_keys: ``None`` or ``["input"]`` (clips in, clips out), or ``["input", "class"]``
            (clips and (B,) labels in, ``[clips, (B, 3) labels]`` out).
        clean_background: paste the foreground onto the partner's still background, without
            the partner's own moving object (see Convention); off by default (the published merge).

    Shape:
        - Input: (B, C, T, H, W) or (B, T, C, H, W), float in [0, 1] or uint8 in 0-255 (masks
          as for value / 255; the output keeps the dtype, pixels not replaced byte-identical;
          CPU floats above 1.5 warn once), T >= 2, any B (a lone clip without ``background``
          passes through); with labels, (B,) integer class indices.
        - Output: same as input; with labels, also (B, 3) float.

    Example:
        >>> fame = FAME(beta=0.5, mode="motion", generator=torch.Generator().manual_seed(0))
        >>> video = torch.rand(4, 3, 8, 32, 32)
        >>> out = fame(video)
        >>> out.shape, fame._params["mask"].shape, int(fame._params["mask"][0].sum())
        (torch.Size([4, 3, 8, 32, 32]), torch.Size([4, 32, 32]), 512)
        >>> torch.equal(fame(video, params=fame._params), out)  # replay
        True
        >>> mixing = FAME(beta=0.5, mode="motion", data_keys=["input", "class"])
        >>> out, mixed = mixing(video, torch.tensor([0, 1, 2, 3]))
        >>> mixed.shape, bool((mixed[:, 0] == torch.tensor([0.0, 1.0, 2.0, 3.0])).all())
        (torch.Size([4, 3]), True)
    """

    def __init__(
        self,
        beta: float = 0.5,
        mode: str = "official",
        p: float = 1.0,
        same_on_batch: bool = False,
        self_pairs: bool = True,
        data_format: str = "BCTHW",
        generator: torch.Generator | None = None,
        data_keys: Sequence[str] | None = None,
        clean_background: bool = False,
    ) -> None:
        _checks.flag("same_on_batch", same_on_batch)
        _checks.flag("self_pairs", self_pairs)
        # Kornia's mix base sets p (checked by __setattr__), same_on_batch and the draw device
        # that Kornia's ``.to()`` moves; p_batch and keepdim keep Kornia's meaning and are unused.
        super().__init__(p=p, p_batch=1.0, same_on_batch=same_on_batch)
        self.beta, self.mode = beta, mode  # checked by __setattr__, as later assignments are
        self.self_pairs = self_pairs
        self.data_format = data_format
        self.generator = _checks.generator(generator)
        # Kornia's base declares list[DataKey]; FAME keeps the checked names.
        self.data_keys = _checks.data_keys(data_keys)  # type: ignore[assignment]
        self.clean_background = clean_background
        self._params: Params = {}
        self._range_checked = False

    def __setattr__(self, name: str, value: Any) -> None:
        """Check ``beta``, ``mode``, ``p``, ``data_format`` and ``clean_background`` whenever they are set."""
        check = _SETTINGS.get(name)
        super().__setattr__(name, value if check is None else check(value))

    def __repr__(self) -> str:
        text = (
            f"beta={self.beta}, mode={self.mode}, p={self.p}, same_on_batch={self.same_on_batch}, "
            f"self_pairs={self.self_pairs}, data_format={self.data_format}"
        )
        if self.generator is not None:
            text += f", generator={self.generator.device}"
        if self.data_keys != ("input",):
            text += f", data_keys={list(self.data_keys)}"
        if self.clean_background:
            text += ", clean_background=True"
        return f"{self.__class__.__name__}({text})"

    # ----------------------------------------------------------------------------------------
    # Random parameters
    # ----------------------------------------------------------------------------------------

    def forward_parameters(
        self,
        batch_shape: tuple[int, ...] | torch.Size,
        source_size: int | None = None,
        device: torch.device | str | None = None,
    ) -> Params:
        """Draw the random part of one call: which clips merge, and with which partner.

        Args:
            batch_shape: shape of the clip batch, in this module's ``data_format``.
            source_size: number of clips partners are drawn from: the batch itself (default)
                or an explicit background batch.
            device: where to draw; defaults to the generator's device, else the device the
                module was moved to with ``.to()`` (the CPU by default), as Kornia's augmentations do.

        Returns:
            The params, a dict of ``"batch_prob"`` (B,) bool, ``"mix_pairs"`` (B,) long,
            ``"forward_input_shape"`` (5,) long (CPU) and ``"source_size"`` () long (CPU). The
            mask depends on the clips and is added by :meth:`forward`. A lone clip drawing from
            its own batch (a ragged last batch) has no partner: it is recorded as not merged, and
            nothing is drawn.
        """
        shape = tuple(int(s) for s in batch_shape)
        if len(shape) == 4:
            raise _checks.frames_not_clips("batch_shape", shape, self.data_format)
        if len(shape) != 5 or min(shape) < 1:
            raise ValueError(f"batch_shape must be 5 positive sizes ({', '.join(self.data_format)}), got {shape}")
        batch = shape[0]
        sources = batch if source_size is None else int(source_size)
        if sources < 1:
            raise ValueError(f"source_size must be >= 1, got {source_size}")
        if self.generator is not None:
            draw_device = self.generator.device
            if device is not None and not _same_device(torch.device(device), draw_device):
                raise ValueError(
                    f"generator lives on {draw_device} but the clips are on {torch.device(device)}; "
                    f"pass torch.Generator(device={str(torch.device(device))!r})"
                )
        else:  # the clips' device, else Kornia's draw device (the CPU until ``.to()`` moves the module)
            draw_device = self.device if device is None else torch.device(device)
        if source_size is None and batch < 2:  # a lone clip of its own batch: no partner, nothing drawn
            gate = torch.zeros(1, dtype=torch.bool, device=draw_device)
            pairs = torch.zeros(1, dtype=torch.long, device=draw_device)
        else:
            gate, pairs = self._draw_gate(batch, draw_device), self._draw_pairs(batch, sources, draw_device)
        return {
            "batch_prob": gate,
            "mix_pairs": pairs,
            "forward_input_shape": torch.tensor(shape, dtype=torch.long),
            "source_size": torch.tensor(sources, dtype=torch.long),
        }

    def _rand(self, *size: int, device: torch.device) -> torch.Tensor:
        return _checks.uniform(self.generator, *size, device=device)

    def _draw_gate(self, batch: int, device: torch.device) -> torch.Tensor:
        # p is a Python float, so these branches resolve at trace time under torch.compile.
        if self.p == 1.0:
            return torch.ones(batch, dtype=torch.bool, device=device)
        if self.p == 0.0:
            return torch.zeros(batch, dtype=torch.bool, device=device)
        if self.same_on_batch:
            return (self._rand(1, device=device) < self.p).expand(batch).clone()
        return self._rand(batch, device=device) < self.p

    def _draw_pairs(self, batch: int, sources: int, device: torch.device) -> torch.Tensor:
        if sources == batch and not self.self_pairs:
            if batch < 2:
                raise ValueError("self_pairs=False needs at least 2 clips to pair (got a batch of 1)")
            # A random single cycle visiting the clips in a random order: clip order[i] takes
            # clip order[i+1]. No fixed point, and each partner is uniform among the others.
            order = self._rand(batch, device=device).argsort()
            pairs = torch.empty_like(order)
            return pairs.scatter_(0, order, order.roll(-1))
        # ceil(B / N) independent permutations of the sources, cut to B: a permutation when
        # N == B, distinct partners when N > B, each source used B // N or B // N + 1 times else.
        rounds = -(-batch // sources)
        return self._rand(rounds, sources, device=device).argsort(dim=1).flatten()[:batch]

    # ----------------------------------------------------------------------------------------
    # Forward
    # ----------------------------------------------------------------------------------------

    def forward(  # type: ignore[override]  # Kornia's base takes *inputs; a mix augmentation names them
        self,
        video: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        params: Params | None = None,
        background: torch.Tensor | None = None,
        background_labels: torch.Tensor | None = None,
        data_keys: Sequence[str | DataKey] | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Apply FAME to a clip batch (layout ``self.data_format``).

        Args:
            video: float clips in [0, 1], (B, C, T, H, W) or (B, T, C, H, W).
            labels: (B,) integer class indices; required with ``data_keys=["input", "class"]``
                and not accepted otherwise.
            params: parameters of an earlier call to replay (``self._params``), or from
                :meth:`forward_parameters`; drawn afresh when None.
            background: optional source clips (N, ...) for the backgrounds, same layout, C, T,
                H, W, dtype and device as ``video``.
            background_labels: (N,) integer class indices of ``background`` (with labels).
            data_keys: overrides ``self.data_keys`` for this call (Kornia's containers pass
                ``[DataKey.INPUT]``).

        Returns:
            The augmented clips, same shape, layout, dtype and device as ``video``; with
            ``data_keys=["input", "class"]``, ``[clips, (B, 3) float labels]`` (see Convention).
        """
        keys = self.data_keys if data_keys is None else _checks.data_keys(data_keys)
        with_labels = "class" in keys
        self._check_labels(video, labels, background, background_labels, with_labels)
        fmt = self.data_format
        _checks.video(video, "video", fmt, rgb=self.mode == "official")
        if (
            not torch.compiler.is_compiling()  # first: a compiled graph then never guards on _range_checked
            and not self._range_checked
            and video.is_floating_point()
            and video.device.type == "cpu"  # reading a value would synchronise a GPU
        ):
            self._range_checked = True  # one look at the values, on the first call only
            if bool(video.detach().amax() > 1.5):
                warnings.warn(
                    "FAME got float clips with values above 1.5: it expects float clips in [0, 1] (or uint8 in "
                    "0-255); masks of 0-255 floats are wrong. Divide by 255 first.",
                    stacklevel=2,
                )
        if background is not None:
            _checks.background(background, video, fmt)
        clips = _as_bcthw(video, fmt)
        source = clips if background is None else _as_bcthw(background, fmt)
        _batch, _, _, height, width = clips.shape
        count = _checks.foreground_pixels(self.beta, height, width)

        if params is None:  # a lone clip of its own batch (ragged last batch) comes back not merged
            sources = None if background is None else source.shape[0]
            params = self.forward_parameters(video.shape, sources, video.device)
        else:
            params = self._check_params(params, video, source.shape[0])
        if "mask" not in params:
            with torch.no_grad():
                params["mask"] = _foreground_mask(clips.detach(), count, self.mode)
        self._params = params

        # A clip paired with itself is left as it is, unless it takes its own still background.
        self_source = background is None and not self.clean_background
        merged = _merge(
            clips,
            params["mask"],
            params["mix_pairs"],
            _still_background(source) if self.clean_background else source,
            apply=params["batch_prob"],
            self_source=self_source,
        )
        if not with_labels:
            return _from_bcthw(merged, fmt)
        assert labels is not None
        share = count / (height * width)
        source_labels = labels if background_labels is None else background_labels
        mixed = _mixed_labels(labels, source_labels, params, share, self_source=self_source)
        return [_from_bcthw(merged, fmt), mixed]

    def _check_labels(
        self,
        video: torch.Tensor,
        labels: torch.Tensor | None,
        background: torch.Tensor | None,
        background_labels: torch.Tensor | None,
        with_labels: bool,
    ) -> None:
        """Check the labels that ``data_keys`` asks for (and refuse those it does not)."""
        if isinstance(labels, dict):
            raise TypeError("the second argument is labels; pass replayed parameters as params=...")
        if not with_labels:
            if labels is not None or background_labels is not None:
                raise ValueError('labels were given, but data_keys is ["input"]; use data_keys=["input", "class"]')
            return
        if labels is None:
            raise ValueError('data_keys=["input", "class"] needs labels: call fame(video, labels)')
        if not isinstance(video, torch.Tensor):
            return  # the video check names the problem
        _checks.labels(labels, "labels", video.shape[0], video.device)
        if background is not None:
            if background_labels is None:
                raise ValueError("background_labels must be given with background when labels are mixed")
            if isinstance(background, torch.Tensor):
                _checks.labels(background_labels, "background_labels", background.shape[0], video.device)
        elif background_labels is not None:
            raise ValueError("background_labels were given without background")

    def _check_params(self, params: Params, video: torch.Tensor, sources: int) -> Params:
        """Check replayed params against the batch; returns a shallow copy (the caller's dict is kept)."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of tensors (e.g. fame._params), got {type(params).__name__}")
        missing = {"batch_prob", "mix_pairs"} - params.keys()
        if missing:
            raise ValueError(f"params lacks {sorted(missing)}; pass fame._params or fame.forward_parameters(...)")
        batch, height, width = video.shape[0], video.shape[-2], video.shape[-1]
        if not torch.compiler.is_compiling():
            _checks.drawn_for(params, video)
            drawn_sources = params.get("source_size")
            if drawn_sources is not None and int(drawn_sources) != sources:
                raise ValueError(
                    f"params pair clips with {int(drawn_sources)} source clips, but this call has {sources} "
                    f"({'background' if sources != batch else 'the batch itself'})"
                )
        params = dict(params)
        gate = params["batch_prob"]
        if not isinstance(gate, torch.Tensor) or gate.dtype != torch.bool or tuple(gate.shape) != (batch,):
            raise ValueError(f"params['batch_prob'] must be a ({batch},) bool tensor for this batch")
        if gate.device != video.device:  # drawn elsewhere, e.g. by a Kornia container not moved with .to()
            for key in ("batch_prob", "mix_pairs", "mask"):
                if isinstance(params.get(key), torch.Tensor):
                    params[key] = params[key].to(video.device, non_blocking=True)
            gate = params["batch_prob"]
        _checks.pairs(params["mix_pairs"], batch, sources, video.device)
        if "mask" in params:
            mask = params["mask"]
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
                raise TypeError(f"params['mask'] must be a bool tensor, got {got}")
            _checks.mask(mask, batch, height, width, video.device)
        return params

    def inverse(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """FAME cannot be inverted: the replaced background of each clip is discarded."""
        raise NotImplementedError(
            "FAME is not invertible: the background it replaces is discarded. "
            "Apply geometric augmentations you need to invert before FAME."
        )


def _mixed_labels(
    labels: torch.Tensor, source_labels: torch.Tensor, params: Params, share: float, self_source: bool
) -> torch.Tensor:
    """(B, 3) float, Kornia's mix convention: own label, partner's label, share taken from the partner.

    ``share`` is the foreground's share of the frame; a clip left unchanged takes nothing (0) and
    names its own label twice.
    """
    pairs, merged = params["mix_pairs"], params["batch_prob"]
    if self_source:  # a clip paired with itself is left as it is
        merged = merged & (pairs != torch.arange(pairs.shape[0], device=pairs.device))
    foreground = labels.float()
    background = torch.where(merged, source_labels.index_select(0, pairs).float(), foreground)
    taken = torch.where(merged, 1.0 - share, 0.0).to(foreground.dtype)
    return torch.stack([foreground, background, taken], dim=1)
