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
    """Every MNIST digit a chapter shows or measures is held out (the same digits offline and on Colab)."""
    for source in code_cells(path):
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "load_mnist":
                split = node.args[0].value if node.args else next(
                    (k.value.value for k in node.keywords if k.arg == "split"), "train")
                assert split == "heldout", f"{path.name} loads the {split!r} split: {ast.unparse(node)}"
