import pytest

from tinydiff.cli import main

from .conftest import synthetic_digits, write_idx


@pytest.fixture(scope="module")
def mnist_with_heldout(tmp_path_factory):
    """A synthetic MNIST whose test file reaches the held-out digits (7000-7999): 64 + 8,000 digits."""
    root = tmp_path_factory.mktemp("heldout")
    write_idx(root / "MNIST" / "raw", "train", *synthetic_digits(64, seed=1))
    write_idx(root / "MNIST" / "raw", "t10k", *synthetic_digits(8000, seed=2))
    return root


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "generate" in out


def test_train_then_generate(tmp_path, mnist_with_heldout, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--steps", "2", "--batch-size", "2",
                 "--data-root", str(mnist_with_heldout), "--out", str(run), "--quiet", "--threads", "1",
                 "--device", "cpu"]) == 0
    assert "trained to step 2" in capsys.readouterr().out
    gif = tmp_path / "videos.gif"
    assert main(["generate", "--checkpoint", str(run / "checkpoint.pt"), "-n", "3", "--steps", "2", "-o", str(gif),
                 "--quiet", "--device", "cpu"]) == 0
    assert gif.read_bytes()[:6] == b"GIF89a"
    from PIL import Image
    with Image.open(gif) as image:
        assert image.n_frames == 15
    assert main(["generate", "--checkpoint", str(run / "checkpoint.pt"), "--heldout-digits", "2", "--steps", "2",
                 "--data-root", str(mnist_with_heldout), "-o", str(tmp_path / "v.npy"), "--quiet",
                 "--device", "cpu"]) == 0
    assert "mean frame IoU" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "nope.pt"), "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinydiff: error:") and "does not exist" in err and err.count("\n") == 1
    assert main(["train", "--steps", "0", "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert "steps must be a positive integer" in capsys.readouterr().err


def test_bench_passes_its_own_options_through(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--skip-from-scratch" in capsys.readouterr().out
