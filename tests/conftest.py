"""Shared fixtures: devices, third-party fixtures from ../shared (skipped when absent)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FAME_AUG_SHARED", ROOT.parent / "shared"))
GOLDEN = SHARED / "golden" / "official_masks_112.npz"
VIDEOS = SHARED / "videos"
SEGVIDEOS = SHARED / "segvideos"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.param)


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def load_benchmark(name: str) -> ModuleType:
    """A script of ``benchmarks/`` as a module (the folder is not a package, nor on ``sys.path``)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require(path: Path) -> Path:
    """Skip the test when a third-party fixture from ../shared is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (third-party fixtures live in ../shared)")
    return path


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    with np.load(require(GOLDEN)) as data:
        return {key: data[key] for key in data.files}


def moving_square_clips(batch: int = 4, frames: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(B, 3, T, H, W) noise backgrounds with a bright square moving right: a clear foreground."""
    gen = torch.Generator().manual_seed(seed)
    video = 0.3 * torch.rand(batch, 3, 1, size, size, generator=gen).expand(-1, -1, frames, -1, -1).clone()
    side = size // 4
    for t in range(frames):
        x0 = t * (size - side) // max(frames - 1, 1)
        video[:, :, t, size // 2 - side // 2 : size // 2 + side // 2, x0 : x0 + side] = 1.0
    return video
