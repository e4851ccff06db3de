"""Re-execute the course notebooks in place, so their committed outputs are current (nbval compares them).

    python tools/run_notebooks.py                      # every notebook in notebooks/
    python tools/run_notebooks.py notebooks/01_*.ipynb

Runs each notebook top to bottom in its own folder with a fresh kernel and stops at the first error.
Consecutive prints of a cell are kept as one output (the book would draw each as its own box).
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def merge_streams(outputs: list) -> list:
    """Join each run of consecutive stream outputs to the same stream (stdout or stderr) into one."""
    merged = []
    for output in outputs:
        if output.output_type == "stream" and merged and merged[-1].output_type == "stream" \
                and merged[-1].name == output.name:
            merged[-1].text += output.text
        else:
            merged.append(output)
    return merged


def run(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)
    nbformat.write(notebook, path)
    print(f"{path}: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    for name in sys.argv[1:] or sorted(str(p) for p in (root / "notebooks").glob("*.ipynb")):
        run(Path(name))
