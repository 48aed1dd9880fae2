"""Build the wheel and the sdist, check what they hold, and smoke-test the wheel from a clean environment.

Run from the repository root (``.ci/run`` does): ``python .ci/check_package.py``. It

1. builds both archives into ``dist/`` with ``python -m build``;
2. fails if either holds a video, a tensor or array file, anything from ``../shared``, or a file over
   2 MiB, if the sdist lacks a file the tests or the docstrings need, or if the wheel holds anything
   but the package and its metadata;
3. installs the wheel (not editable) with the pinned CPU torch into a fresh virtual environment, then,
   from an empty folder outside the checkout, checks that ``fame_aug`` is imported from that
   environment, runs the README's quick start and ``fame-aug --help``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # the CPU build this machine keeps on disk; a plain "torch" pulls a CUDA build
FORBIDDEN_SUFFIXES = {".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".flv", ".npy", ".npz", ".pt", ".pth"}
MAX_BYTES = 2 * 2**20
SDIST_NEEDS = [  # what `python -m pytest` inside the sdist and the docstrings' references need
    "tests/conftest.py",
    "tests/datatrees.py",
    "tests/tiny_runs.py",
    "docs/algorithm.md",
    "docs/conf.py",
    "pyproject.toml",
    "LICENSE",
    "CITATION.cff",
]


def run(*command: str | Path, cwd: Path = ROOT) -> str:
    """Run a command, echoing it; its stdout, or CalledProcessError with its output."""
    print("+", " ".join(map(str, command)), flush=True)
    return subprocess.run(list(map(str, command)), cwd=cwd, check=True, text=True, capture_output=True).stdout


def members(archive: Path) -> dict[str, int]:
    """Each member's path (without the sdist's top folder) and size."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return {info.filename: info.file_size for info in wheel.infolist() if not info.is_dir()}
    with tarfile.open(archive) as sdist:
        return {m.name.split("/", 1)[1]: m.size for m in sdist.getmembers() if m.isfile() and "/" in m.name}


def check_contents(archive: Path, files: dict[str, int]) -> list[str]:
    """What is wrong with an archive's members, one line each."""
    problems = []
    for name, size in files.items():
        if Path(name).suffix.lower() in FORBIDDEN_SUFFIXES:
            problems.append(f"{archive.name}: {name} is a video or data file")
        if "shared/" in name or name.startswith(("runs/", "build/", "dist/")):
            problems.append(f"{archive.name}: {name} is not source")
        if size > MAX_BYTES:
            problems.append(f"{archive.name}: {name} is {size / 2**20:.1f} MiB")
    if archive.suffix == ".whl":
        stray = [n for n in files if not n.startswith(("fame_aug/", "fame_aug-"))]
        problems += [f"{archive.name}: {name} is outside the package" for name in stray]
        if "fame_aug/py.typed" not in files:
            problems.append(f"{archive.name}: no fame_aug/py.typed")
    else:
        problems += [f"{archive.name}: lacks {name}" for name in SDIST_NEEDS if name not in files]
        tests = {n for n in files if re.fullmatch(r"tests/test_\w+\.py", n)}
        shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("test_*.py")}
        problems += [f"{archive.name}: lacks {name}" for name in sorted(shipped - tests)]
    return problems


def quick_start() -> str:
    """The python blocks of the README's quick start, in order."""
    section = ROOT.joinpath("README.md").read_text(encoding="utf-8").split("\n## Quick start\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return "\n".join(re.findall(r"^```python\n(.*?)^```", section, flags=re.MULTILINE | re.DOTALL))


def main() -> int:
    """Build, check and smoke-test; 0 when all of it passed."""
    dist = ROOT / "dist"
    for old in dist.glob("fame_aug-*"):
        old.unlink()
    run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
    wheel, sdist = next(dist.glob("fame_aug-*.whl")), next(dist.glob("fame_aug-*.tar.gz"))
    contents = {archive: members(archive) for archive in (wheel, sdist)}
    problems = [problem for archive, files in contents.items() for problem in check_contents(archive, files)]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"archives hold no footage or data: {wheel.name} ({len(contents[wheel])} files), "
          f"{sdist.name} ({len(contents[sdist])} files)")

    with tempfile.TemporaryDirectory() as tmp:
        venv, work = Path(tmp) / "venv", Path(tmp) / "work"
        work.mkdir()
        run(sys.executable, "-m", "venv", venv)
        python = venv / "bin" / "python"
        run(python, "-m", "pip", "install", "--quiet", TORCH)
        run(python, "-m", "pip", "install", "--quiet", wheel)
        where = run(python, "-c", "import fame_aug; print(fame_aug.__file__)", cwd=work).strip()
        if not where.startswith(str(venv)):
            print(f"fame_aug was imported from {where}, not from the wheel's environment", file=sys.stderr)
            return 1
        (work / "quick_start.py").write_text(quick_start(), encoding="utf-8")
        run(python, "quick_start.py", cwd=work)
        usage = run(venv / "bin" / "fame-aug", "--help", cwd=work)
        for command in ("demo", "experiment", "pretrain", "finetune", "probe", "retrieve", "visualize"):
            if command not in usage:
                print(f"fame-aug --help does not list {command}", file=sys.stderr)
                return 1
    print("wheel installed in a clean environment: quick start and fame-aug --help ran outside the checkout")
    return 0


if __name__ == "__main__":
    sys.exit(main())
