"""Write the Colab install cell of every course notebook from _config.yml, the one place the version lives.

    python tools/pin_colab.py

The cell installs `git+<repository.url>@<repository.branch>`: the same repository and ref that the
book's Colab buttons open, so a learner on Colab runs the code the book was built from. To publish a
version: set repository.branch to its tag (v + the package version), run this, commit, tag, build.
tests/test_course.py fails when a notebook's cell and _config.yml disagree.
"""

from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
TAG = "colab-install"  # marks the cell (besides remove-cell, which hides it in the book)

CELL = '''# On Colab only: install the tinydiff this book was built from. Anywhere else this cell does nothing.
# To run your fork instead, first run: %env TINYDIFF_SOURCE=git+https://github.com/YOU/tinydiff@BRANCH
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    source = os.environ.get("TINYDIFF_SOURCE", "git+{url}@{ref}")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", f"tinydiff[course] @ {{source}}"]
    if subprocess.run(pip, capture_output=True).returncode != 0:  # pip's own error runs to pages
        print(f"tinydiff could not be installed from {{source}}: set TINYDIFF_SOURCE to a repository and ref "
              "that exist, in a cell above this one: %env TINYDIFF_SOURCE=git+https://github.com/YOU/tinydiff@BRANCH")'''


def pinned_source() -> tuple[str, str]:
    """(repository URL, ref) from _config.yml."""
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return repository["url"], str(repository["branch"])


def main() -> None:
    url, ref = pinned_source()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        cell = notebook.cells[0]
        if cell.cell_type != "code" or "remove-cell" not in cell.metadata.get("tags", []):
            raise SystemExit(f"{path}: the first cell is not the (remove-cell) install cell")
        cell.source = CELL.format(url=url, ref=ref)
        cell.metadata["tags"] = sorted(set(cell.metadata["tags"]) | {TAG})
        nbformat.write(notebook, path)
        print(f"{path.name}: installs git+{url}@{ref}")


if __name__ == "__main__":
    main()
