"""Every ```python block of README.md and of the manual's pages (docs/**/*.md) runs as written.

How the blocks run:

- In document order, one namespace per ``## `` section of each document: a section reads as a sequence
  (the quick start's functional-layer block uses the ``video`` of the block above it), and each section
  starts from nothing, as for a reader who jumps to it, so the first block of a section makes its own
  imports.
- Each section in its own empty temporary working directory, with the repository root importable.
- Nothing is left out silently. A block that needs what a machine may lack says so on the line right above
  its fence, in an HTML comment that the rendered page hides, e.g. ``<!-- docs-test: needs cuda -->``:

  - ``cuda``: a CUDA device; the block is skipped without one.
  - ``shared``: the third-party clips of ``../shared`` (or ``$FAME_AUG_SHARED``), reachable as ``../shared``
    from the block's working directory; the block is skipped when they are absent.
  - ``ucf101``: a dataset in UCF101's layout at ``UCF-101`` with its split files in ``ucfTrainTestlist``;
    this test writes a tiny one (a few short generated videos) into the working directory, so the block
    always runs.

  The declared needs must be exactly those the block visibly uses (``.cuda(`` or ``device="cuda"``,
  ``../shared``, ``UCF-101``): an undeclared use, a stale or unknown declaration, or a marker that stands
  above no python block fails. A block after a skipped one in the same section is skipped with its reason;
  a block after a failed one fails, naming it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import ROOT, SHARED
from datatrees import write_video

README = ROOT / "README.md"
DOCUMENTS = [README, *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts)]
MARKER = re.compile(r"^<!--\s*docs-test:\s*needs\s+(?P<needs>[\w\s,-]+?)\s*-->$")
USES = {
    "cuda": re.compile(r"\.cuda\(|device=[\"']cuda"),
    "shared": re.compile(r"\.\./shared"),
    "ucf101": re.compile(r"UCF-101"),
}


@dataclass(frozen=True)
class Block:
    document: Path
    section: str
    line: int  # the document's line of the block's first line of code
    source: str
    needs: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.document.relative_to(ROOT).as_posix()

    @property
    def where(self) -> str:
        return f"{self.name}:{self.line} ({self.section})"

    @property
    def key(self) -> tuple[Path, str]:
        """The namespace the block runs in: its document's ``## `` section."""
        return self.document, self.section


def markdown_blocks(document: Path) -> list[Block]:
    """The python blocks of a markdown file, with their section and declared needs."""
    lines = document.read_text(encoding="utf-8").splitlines()
    blocks, section, fence, start, indent = [], "", None, 0, 0
    for number, line in enumerate(lines, 1):
        stripped = line.lstrip(" ")
        if fence is None:
            if stripped.startswith("```"):  # indented fences too: a block inside a list item
                fence, start, indent = stripped[3:].strip(), number, len(line) - len(stripped)
            elif line.startswith("## "):
                section = line[3:].strip()
        elif stripped.rstrip() == "```":
            if fence == "python":
                above = lines[start - 2].strip() if start > 1 else ""
                marker = MARKER.match(above)
                needs = tuple(sorted(n.strip() for n in marker["needs"].split(","))) if marker else ()
                code = [re.sub(f"^ {{0,{indent}}}", "", code_line) for code_line in lines[start : number - 1]]
                blocks.append(Block(document, section, start + 1, "\n".join(code), needs))
            fence = None
    assert fence is None, f"{document}:{start}: a fence that never closes"
    return blocks


BLOCKS = [block for document in DOCUMENTS for block in markdown_blocks(document)]


def write_tiny_ucf101(workdir: Path) -> None:
    """UCF-101/<Class>/v_<Class>_gXX_c01.avi and ucfTrainTestlist/: two classes, three short videos each."""
    classes = ("Jump", "Wave")
    splits = workdir / "ucfTrainTestlist"
    splits.mkdir()
    (splits / "classInd.txt").write_text("".join(f"{i} {name}\n" for i, name in enumerate(classes, 1)))
    rng = np.random.default_rng(0)
    train, test = [], []
    for label, name in enumerate(classes, 1):
        for group in (1, 2, 3):
            frames = rng.integers(0, 120, (1, 36, 48, 3), dtype=np.uint8).repeat(10, axis=0)
            for t, frame in enumerate(frames):  # a bright square moving right
                frame[12:24, 3 * t : 3 * t + 12] = 255
            relative = f"{name}/v_{name}_g{group:02d}_c01.avi"
            write_video(workdir / "UCF-101" / relative, frames)
            (train if group < 3 else test).append(f"{relative} {label}" if group < 3 else relative)
    for split in (1, 2, 3):
        (splits / f"trainlist{split:02d}.txt").write_text("\n".join(train) + "\n")
        (splits / f"testlist{split:02d}.txt").write_text("\n".join(test) + "\n")


@dataclass
class Outcome:
    status: str  # "passed", "skipped" or "failed"
    reason: str = ""
    error: BaseException | None = None


@dataclass
class Section:
    workdir: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "docs"})
    outcomes: dict[int, Outcome] = field(default_factory=dict)


class Runner:
    """Runs the blocks of each section once, in order, and keeps their outcomes."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sections: dict[tuple[Path, str], Section] = {}

    def outcome(self, block: Block) -> Outcome:
        if block.key not in self.sections:
            slug = re.sub(r"\W+", "-", f"{block.name}-{block.section}").strip("-").lower()
            (self.base / slug / "work").mkdir(parents=True)
            self.sections[block.key] = Section(self.base / slug / "work")
            torch.manual_seed(0)
        section = self.sections[block.key]
        for earlier in BLOCKS:
            if earlier.key == block.key and earlier.line <= block.line and earlier.line not in section.outcomes:
                section.outcomes[earlier.line] = self.run(earlier, section)
        return section.outcomes[block.line]

    def run(self, block: Block, section: Section) -> Outcome:
        for line, earlier in section.outcomes.items():
            if earlier.status == "skipped":
                return Outcome("skipped", f"{block.name}:{line} above it was skipped ({earlier.reason})")
            if earlier.status == "failed":
                return Outcome("failed", f"{block.name}:{line} above it failed")
        if "cuda" in block.needs and not torch.cuda.is_available():
            return Outcome("skipped", "needs a CUDA device")
        if "shared" in block.needs:
            if not SHARED.exists():
                return Outcome("skipped", f"needs the third-party clips of {SHARED}, absent")
            link = section.workdir.parent / "shared"
            if not link.exists():
                link.symlink_to(SHARED, target_is_directory=True)
        if "ucf101" in block.needs and not (section.workdir / "UCF-101").exists():
            write_tiny_ucf101(section.workdir)
        code = compile("\n" * (block.line - 1) + block.source, str(block.document), "exec")  # tracebacks: its lines
        try:
            with working_directory(section.workdir), importable(ROOT):
                exec(code, section.namespace)
        except Exception as error:
            return Outcome("failed", f"{block.where} raised {type(error).__name__}", error)
        return Outcome("passed")


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def importable(path: Path) -> Iterator[None]:
    added = str(path) not in sys.path
    if added:
        sys.path.insert(0, str(path))
    try:
        yield
    finally:
        if added:
            sys.path.remove(str(path))


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    return Runner(tmp_path_factory.mktemp("docs"))


def test_the_parser_finds_the_blocks() -> None:
    """A parser that found none would make every other test vacuous."""
    readme = {block.section for block in BLOCKS if block.document == README}
    assert "Quick start" in readme
    pages = {block.document.name for block in BLOCKS}
    assert {"conventions.md", "data.md", "siblings.md"} <= pages


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.relative_to(ROOT).as_posix() for d in DOCUMENTS])
def test_every_python_fence_is_a_block(document: Path) -> None:
    fences = re.findall(r"^ *```(\w*)", document.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert fences.count("python") == sum(block.document == document for block in BLOCKS)
    assert not {"py", "python3", "pycon", "ipython"} & set(fences), "spell python blocks ```python so they are run"


@pytest.mark.parametrize("document", DOCUMENTS, ids=[d.relative_to(ROOT).as_posix() for d in DOCUMENTS])
def test_every_marker_stands_above_a_python_block(document: Path) -> None:
    lines = document.read_text(encoding="utf-8").splitlines()
    markers = [number for number, line in enumerate(lines, 1) if "docs-test" in line or "readme-test" in line]
    expected = [block.line - 2 for block in BLOCKS if block.needs and block.document == document]
    assert markers == expected, (
        "a docs-test marker must be the line right above a ```python fence, in the form "
        "<!-- docs-test: needs NAME[, NAME] -->"
    )


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{block.name}:{block.line}" for block in BLOCKS])
def test_declared_needs_are_the_used_ones(block: Block) -> None:
    unknown = set(block.needs) - set(USES)
    assert not unknown, f"{block.where}: unknown needs {sorted(unknown)}; known: {sorted(USES)}"
    used = {name for name, pattern in USES.items() if pattern.search(block.source)}
    assert set(block.needs) == used, (
        f"{block.where} uses {sorted(used) or 'nothing a machine may lack'} but declares {list(block.needs)}: "
        f"put <!-- docs-test: needs {', '.join(sorted(used))} --> on the line above its fence"
        if used
        else f"{block.where} declares {list(block.needs)} but uses none of it: remove the marker"
    )


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # num_workers=8 on a small machine
@pytest.mark.parametrize("block", BLOCKS, ids=[f"{block.name}:{block.line}" for block in BLOCKS])
def test_block_runs(block: Block, runner: Runner) -> None:
    outcome = runner.outcome(block)
    if outcome.status == "skipped":
        pytest.skip(f"{block.where}: {outcome.reason}")
    if outcome.error is not None:
        raise outcome.error
    if outcome.status == "failed":
        pytest.fail(f"{block.where}: {outcome.reason}")
