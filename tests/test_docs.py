"""Figures quoted in the documents agree with the benchmark report they come from (BENCHMARKS.md)."""

import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def benchmark(label_start: str, index: int = 0) -> str:
    """The index-th number of the value of the first BENCHMARKS.md table row whose label starts so."""
    for line in (ROOT / "BENCHMARKS.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith(label_start):
            return re.findall(r"\d+\.\d+", cells[1])[index]
    raise AssertionError(f"no row {label_start!r} in BENCHMARKS.md")


def results_headline(model: str) -> str:
    text = (ROOT / "RESULTS.md").read_text().split("Headline figures", 1)[1].split("\n\n", 2)[1]  # that table
    return next(line for line in text.splitlines() if line.startswith(f"| {model} "))


def test_the_headline_table_of_results_quotes_the_benchmark():
    cascade_any = benchmark("unconditional by the cascade")
    cascade_asked = benchmark("class-conditional by the cascade, ")
    animator = benchmark("animator (the cascade's writing stage) DDIM-10")
    writer_i2v, writer_asked, writer_any = (benchmark("writer DDIM-10"), benchmark("class-conditional, "),
                                            benchmark("unconditional, 500 videos"))
    assert f"any digit read (p >= 0.9) {cascade_any}" in results_headline("cascade")
    assert f"asked digit {cascade_asked}" in results_headline("cascade")
    assert f"frame IoU {animator}" in results_headline("animator")
    assert f"image-to-video {writer_i2v}; asked digit {writer_asked}; any digit {writer_any}" in results_headline("writer")


def test_the_own_digit_page_quotes_the_benchmark():
    intro = nbformat.read(ROOT / "notebooks" / "06_your_own_digit.ipynb", as_version=4).cells[1].source
    animator, writer = benchmark("animator (the cascade's writing stage) DDIM-10"), benchmark("writer DDIM-10")
    assert f"frame IoU {animator} against {writer}" in intro


def test_the_motion_headline_quotes_the_benchmark():
    row = next(line for line in (ROOT / "BENCHMARKS.md").read_text().splitlines() if line.startswith("| motion (DDIM"))
    copy = next(line for line in (ROOT / "BENCHMARKS.md").read_text().splitlines()
                if line.startswith("| copy the last given frame"))
    mse, ssim = (cell.strip() for cell in (row.split("|")[3], row.split("|")[5]))
    copy_mse, copy_ssim = (cell.strip() for cell in (copy.split("|")[3], copy.split("|")[5]))
    assert f"MSE {mse}, SSIM {ssim} (copying the last frame: {copy_mse} / {copy_ssim})" in results_headline("motion")
