"""Figures quoted in the documents agree with the benchmark report they come from (BENCHMARKS.md)."""

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def benchmark(*leading: str, table: str | None = None) -> dict[str, str]:
    """The first BENCHMARKS.md table row whose first cells are `leading` (in a table whose first column is
    headed `table`, when given), as {column header: cell}."""
    header = None
    for line in (ROOT / "BENCHMARKS.md").read_text().splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif tuple(cells[:len(leading)]) == leading and table in (None, header[0]):
            return dict(zip(header, cells))
    raise AssertionError(f"no row starting {leading} in BENCHMARKS.md")


def results_headline(model: str) -> str:
    text = (ROOT / "RESULTS.md").read_text().split("Headline figures", 1)[1].split("\n\n", 2)[1]  # that table
    return next(line for line in text.splitlines() if line.startswith(f"| {model} "))


READ = "read (p >= 0.9)"


def test_the_headline_table_of_results_quotes_the_benchmark():
    cascade_any = benchmark("cascade, unconditional")[READ]
    cascade_asked = benchmark("cascade, class-conditional")[READ]
    animator = benchmark("animator", "DDIM-10")["frame IoU"]
    writer_i2v, writer_asked, writer_any = (benchmark("writer", "DDIM-10")["frame IoU"],
                                            benchmark("writer, class-conditional")[READ],
                                            benchmark("writer, unconditional")[READ])
    assert f"any digit read (p >= 0.9) {cascade_any}" in results_headline("cascade")
    assert f"asked digit {cascade_asked}" in results_headline("cascade")
    assert f"frame IoU {animator}" in results_headline("animator")
    assert f"image-to-video {writer_i2v}; asked digit {writer_asked}; any digit {writer_any}" in results_headline("writer")


def test_the_own_digit_page_quotes_the_benchmark():
    intro = nbformat.read(ROOT / "notebooks" / "06_your_own_digit.ipynb", as_version=4).cells[1].source
    animator, writer = benchmark("animator", "DDIM-10")["frame IoU"], benchmark("writer", "DDIM-10")["frame IoU"]
    assert f"frame IoU {animator} against {writer}" in intro


def test_the_motion_headline_quotes_the_benchmark():
    model, copy = benchmark("motion"), benchmark("copy the last frame")
    assert (f"MSE {model['MSE']}, SSIM {model['SSIM']} (copying the last frame: {copy['MSE']} / {copy['SSIM']})"
            in results_headline("motion"))


def test_benchmark_tables_have_short_labels_and_their_targets_beside_the_measures():
    text = (ROOT / "BENCHMARKS.md").read_text()
    for section in ("## Speed", "## Image-to-video", "## Generation from noise", "## Moving digits", "## On a GPU"):
        assert section in text
    assert text.count("| target |") >= 6  # image-to-video, generation (2), per digit, moving digits, extension
    labels = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert max(map(len, labels)) <= 60, max(labels, key=len)


def chapter(name: str) -> str:
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    return "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")


def test_chapter_3_quotes_the_benchmark():
    text = " ".join(chapter("03b_generation.ipynb").split())
    writer, cascade = ({**benchmark(row), **benchmark(row, table="the same videos")}
                       for row in ("writer, unconditional", "cascade, unconditional"))
    assert (f"the cascade reads {cascade[READ]} against the writer's {writer[READ]}, with frames 10-15 read like the "
            f"last in {cascade['identity stable']} of videos against {writer['identity stable']}, and self-consistency "
            f"{cascade['self-consistency']} against {writer['self-consistency']}") in text
    writer, cascade = ({**benchmark(row), **benchmark(row, table="the same videos")}
                       for row in ("writer, class-conditional", "cascade, class-conditional"))
    hardest = {name: benchmark(f"{name}, class-conditional", table="model")["lowest"] for name in ("writer", "cascade")}
    assert (f"the writer alone reads as the asked digit in {writer[READ]} of videos, and its hardest digit, the 9, in "
            f"{hardest['writer']}; the cascade reads as asked in {cascade[READ]}, and its hardest digit in "
            f"{hardest['cascade']}, with self-consistency {cascade['self-consistency']} against the writer's "
            f"{writer['self-consistency']}") in text


def test_the_intro_quotes_the_gpu_benchmark():
    row = benchmark("DDIM-50, 256 videos, writer: fp32 / bf16 (s)")
    fastest = min(float(value) for value in row["value"].split(" / "))
    assert f"DDIM in 50 steps for 256 videos: {fastest:.1f} s on an H200" in (ROOT / "book" / "intro.md").read_text()


def test_every_chapter_page_stays_readable_in_one_sitting():
    # About 2,500 words of prose per page: a chapter that needs more is split into pages (2 and 2b, 3 and 3b).
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        words = len(chapter(path.name).split())
        assert words <= 2500, f"{path.name}: {words} words of markdown"
