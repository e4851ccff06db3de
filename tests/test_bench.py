"""The benchmark report keeps the GPU figures that a CPU-only run cannot measure."""

import pytest

from tinydiff.bench import GPU_HEADING, gpu_section


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
