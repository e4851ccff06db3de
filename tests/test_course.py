"""The course notebooks as files: what Colab installs, and which digits the figures are measured on.

Their outputs are checked by nbval (`make test`); these tests read the notebooks' sources only.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
import yaml

import tinydiff

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def code_cells(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5


def test_the_pinned_ref_is_this_version():
    """_config.yml pins the ref that Colab opens and installs: the tag of the package's version."""
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert version and version.group(1) == tinydiff.__version__
    assert repository["branch"] == f"v{tinydiff.__version__}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_installs_the_pinned_version(path):
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    first = nbformat.read(path, as_version=4).cells[0]
    assert "remove-cell" in first.metadata.get("tags", []), "the install cell is hidden in the book"
    assert f'"git+{repository["url"]}@{repository["branch"]}"' in first.source, \
        "run tools/pin_colab.py after changing _config.yml"
    assert "TINYDIFF_SOURCE" in first.source, "a fork can be installed instead"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_use_the_held_out_digits(path):
    """Every MNIST digit a chapter shows or measures is held out (the same digits offline and on Colab),
    moving digits included (`tinydiff.motion_eval.heldout_sequences` draws held-out ones by construction).
    The one exception is a cell that replays `train` (which reads the training split) to check it."""
    for source in code_cells(path):
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        calls = {getattr(n.func, "id", getattr(n.func, "attr", "")) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        if "train" in calls:
            continue
        for node in ast.walk(tree):
            name = getattr(node.func, "id", getattr(node.func, "attr", "")) if isinstance(node, ast.Call) else ""
            if name in ("load_mnist", "moving_digits"):  # their default splits: "train" and "heldout"
                split = node.args[0].value if node.args else next(
                    (k.value.value for k in node.keywords if k.arg == "split"), "train" if name == "load_mnist" else "heldout")
                assert split == "heldout", f"{path.name} loads the {split!r} split: {ast.unparse(node)}"


def markdown_cells(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "markdown"]


DETAILS = re.compile(r"<details>\n<summary>(Solution \d+)</summary>\n\n(.*?)\n\n</details>", re.DOTALL)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_are_collapsed_in_the_book_and_in_jupyterlab(path):
    """A solution is an HTML <details> block, which both MyST and JupyterLab (and Colab) show collapsed;
    a MyST dropdown admonition is raw text in JupyterLab. Blank lines after <summary> and before
    </details> let both parse the inside as markdown (maths included)."""
    for source in markdown_cells(path):
        assert ":class: dropdown" not in source and "{admonition}" not in source, \
            f"{path.name}: a MyST admonition left; write solutions as <details><summary>Solution N</summary>"
        inside = [match.span() for match in DETAILS.finditer(source)]
        assert source.count("<details>") == source.count("</details>") == len(inside), \
            f"{path.name}: a <details> block without '<summary>Solution N</summary>' and blank lines around its body"
        for word in re.finditer(r"\bSolution\b", source):
            assert any(start < word.start() < end for start, end in inside), \
                f"{path.name}: {source[word.start():word.start() + 40]!r} is not inside a <details> block"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_solutions_are_collapsed_in_the_book_and_in_jupyterlab(path):
    """A code cell that answers an exercise hides its source: the book's `hide-input` tag (a "show code"
    toggle) and JupyterLab's `jupyter.source_hidden` (a collapsed input)."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith("# Solution"):
            assert "hide-input" in cell.metadata.get("tags", []), f"{path.name}: {cell.source[:30]!r} is shown in the book"
            assert cell.metadata.get("jupyter", {}).get("source_hidden"), f"{path.name}: {cell.source[:30]!r} shows in JupyterLab"


def test_the_book_pages_use_no_dropdown_admonitions():
    for page in sorted((ROOT / "book").glob("*.md")):
        assert ":class: dropdown" not in page.read_text(encoding="utf-8"), page.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_has_a_solution(path):
    """Exercise N is answered by a collapsed markdown 'Solution N' or by a code cell starting '# Solution N'."""
    exercises = next(source for source in markdown_cells(path) if "## Exercises" in source)
    listed = exercises.split("## Exercises", 1)[1].split("<details>", 1)[0]
    asked = {int(n) for n in re.findall(r"^(\d+)\. ", listed, re.MULTILINE)}
    answered = {int(n) for source in markdown_cells(path) for n in re.findall(r"<summary>Solution (\d+)</summary>", source)}
    answered |= {int(n) for source in code_cells(path) for n in re.findall(r"\A# Solution (\d+)", source)}
    assert asked and asked == answered, f"{path.name}: exercises {sorted(asked)}, solutions {sorted(answered)}"


def test_the_intro_gives_each_chapter_its_own_run_time():
    """The intro's table and each chapter's "Runs in" line name the same measured seconds."""
    intro = (ROOT / "book" / "intro.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        row = next(line for line in intro.splitlines() if f"<../notebooks/{path.stem}>" in line)
        runs_in = next(line for source in markdown_cells(path) for line in source.splitlines() if "**Runs in**" in line)
        listed, stated = re.findall(r"(\d+) s\b", row.rsplit("|", 2)[-2]), re.findall(r"(\d+) s\b", runs_in)
        assert listed and listed[:1] == stated[:1], f"{path.name}: intro says {listed}, the chapter says {stated}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_prose_keeps_t_for_the_diffusion_steps(path):
    """T is the number of diffusion steps; the 15 frames are F in the prose (the code may differ)."""
    for source in markdown_cells(path):
        assert not re.search(r"\(N?,? ?T, H, W\)|T = 15|T\^2", source), f"{path.name}: T used for the frames"
