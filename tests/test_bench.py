"""The benchmark: the report keeps the GPU figures a CPU-only run cannot measure; generation is judged in full."""

import os

import pytest
import torch

from tinydiff import Cascade, Pipeline, VideoUNet, preset
from tinydiff.bench import GPU_HEADING, GUIDANCE_TABLE, STEPS_TABLE, generation_rows, gpu_section
from tinydiff.data import load_mnist


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
    rows, tables = generation_rows(pipe, cascade, n_uncond=4, per_digit=1, n_table=10, heldout=heldout, data_root=None,
                                   steps_table=(("ddim", 2), ("dpm++2m", 3)))
    figures = dict(rows)
    for figure in ("real writing videos", "unconditional, 4 videos", "re-written", "by the cascade, 4 videos", "class-conditional, 1 per digit",
                   "class-conditional by the cascade, 1 per digit", "digits 0-9", "memorised", "self-consistency"):
        assert any(figure in name for name in figures)
    real = next(value for name, value in figures.items() if name.startswith("real") and "identity" in name)
    # True writing videos are self-consistent and never lose ink by construction, and no held-out digit
    # is a training digit.
    stable, consistent, vanishing, memorised = real.split(" / ")
    assert (consistent, vanishing, memorised) == ("1.000", "0.00 %", "0.0 %")
    names = [line.split(" | ")[0] for line in tables if line.startswith("| ") and "---" not in line]
    assert names == ["| sampler", "| DDIM-2", "| DPM-Solver++(2M)-3", "| guidance"] + [f"| {g:g}" for g in GUIDANCE_TABLE]
    assert STEPS_TABLE[0] == ("ddpm", None)
