"""The benchmark: the report keeps the GPU figures a CPU-only run cannot measure; generation is judged in full."""

import os

import pytest
import torch

from tinydiff import Cascade, Pipeline, VideoUNet, preset
from tinydiff.bench import GPU_HEADING, GUIDANCE_TABLE, STEPS_TABLE, generation_rows, gpu_section
from tinydiff.data import load_mnist
from tinydiff.report import markdown_table


def test_gpu_figures_survive_a_cpu_run(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\n| old | 1 |\n\n## On a GPU\n\n| videos/s | 375 |\n")
    assert gpu_section(report) == "## On a GPU\n\n| videos/s | 375 |\n"


@pytest.mark.parametrize("existing", [None, "# Benchmarks\n\n| old | 1 |\n"])
def test_without_gpu_figures_the_report_says_not_measured(tmp_path, existing):
    report = tmp_path / "BENCHMARKS.md"
    if existing is not None:
        report.write_text(existing)
    section = gpu_section(report)
    assert section.startswith(GPU_HEADING) and "Not measured" in section


@pytest.mark.skipif(not os.environ.get("TINYDIFF_DATA"), reason="needs the MNIST digits (TINYDIFF_DATA)")
def test_generation_rows_report_every_figure_and_both_tables():
    torch.manual_seed(0)
    pipe = Pipeline(VideoUNet(preset("tiny")), device="cpu")
    tiny = dict(channels=(4, 8), groups=2)
    prior = torch.full((10,), 0.1, dtype=torch.float64)
    cascade = Cascade(Pipeline(VideoUNet(preset("digits-labelled", **tiny)), device="cpu", label_prior=prior), pipe)
    heldout = load_mnist("heldout")[0][:8]
    lines = generation_rows(pipe, cascade, n_uncond=4, per_digit=1, n_table=10, heldout=heldout, data_root=None,
                            steps_table=(("ddim", 2), ("dpm++2m", 3)))
    tables, table = [], None
    for line in lines:
        if line.startswith("| ") and "---" not in line:
            cells = [cell.strip() for cell in line.strip("| ").split(" | ")]
            if table is None:
                table = {"header": cells, "rows": {}}
                tables.append(table)
            else:
                table["rows"][cells[0]] = dict(zip(table["header"], cells))
        elif not line.startswith("|"):
            table = None
    read, held, per_digit, samplers, guidance = tables
    rows = ["real writing videos", "writer, unconditional", "writer, unconditional, re-written", "cascade, unconditional",
            "writer, class-conditional", "cascade, class-conditional", "target"]
    assert list(read["rows"]) == rows and list(held["rows"]) == rows
    assert read["rows"]["writer, unconditional"]["n"] == "4" and read["rows"]["cascade, class-conditional"]["n"] == "10"
    # True writing videos are self-consistent and never lose ink by construction, and no held-out digit
    # is a training digit.
    real = held["rows"]["real writing videos"]
    assert (real["self-consistency"], real["vanishing ink"], real["memorised"]) == ("1.000", "0.00 %", "0.0 %")
    assert per_digit["header"] == ["model", *map(str, range(10)), "lowest"]
    assert list(per_digit["rows"]) == ["writer, class-conditional", "cascade, class-conditional", "target"]
    assert list(samplers["rows"]) == ["DDIM-2", "DPM-Solver++(2M)-3"]
    assert list(guidance["rows"]) == [f"{g:g}" for g in GUIDANCE_TABLE]
    assert STEPS_TABLE[0] == ("ddpm", None)


def test_markdown_tables_align_text_left_and_figures_right():
    assert markdown_table(["model", "MSE"], [["copy", "317.3"]]) == ["| model | MSE |", "| --- | ---: |",
                                                                      "| copy | 317.3 |"]
    with pytest.raises(ValueError):
        markdown_table(["model", "MSE"], [["copy"]])
