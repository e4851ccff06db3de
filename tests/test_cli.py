import pytest

from tinydiff.cli import main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "train" in out and "generate" in out


def test_train_then_generate(tmp_path, fake_mnist, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--steps", "2", "--batch-size", "2", "--data-root", str(fake_mnist),
                 "--out", str(run), "--quiet", "--threads", "1"]) == 0
    assert "trained to step 2" in capsys.readouterr().out
    gif = tmp_path / "videos.gif"
    assert main(["generate", "--checkpoint", str(run / "checkpoint.pt"), "-n", "3", "--steps", "2", "-o", str(gif),
                 "--quiet"]) == 0
    assert gif.read_bytes()[:6] == b"GIF89a"
    from PIL import Image
    with Image.open(gif) as image:
        assert image.n_frames == 15
    assert main(["generate", "--checkpoint", str(run / "checkpoint.pt"), "--test-digits", "2", "--steps", "2",
                 "--data-root", str(fake_mnist), "-o", str(tmp_path / "v.npy"), "--quiet"]) == 0
    assert "mean frame IoU" in capsys.readouterr().out


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path / "nope.pt"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinydiff: error:") and "does not exist" in err and err.count("\n") == 1
    assert main(["train", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "steps must be a positive integer" in capsys.readouterr().err


def test_bench_passes_its_own_options_through(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--skip-from-scratch" in capsys.readouterr().out
