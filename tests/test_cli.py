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


@pytest.mark.parametrize("command, message", [
    (["generate", "--heldout-digits", "0"], "--heldout-digits must be 1..1000, got 0"),
    (["generate", "--heldout-digits", "1001"], "--heldout-digits must be 1..1000, got 1001"),
    (["generate", "-n", "0"], "-n must be a positive number of videos"),
    (["generate", "--device", "banana"], "unknown device 'banana'"),
    (["generate", "--digit", "10"], "every digit must be an integer from 0 to 9, got [10]"),
    (["generate", "-n", "3", "--digit", "1", "2"], "digit holds 2 labels for n=3 videos"),
    (["generate", "--digit", "3", "--heldout-digits", "2"], "choose one"),
    (["generate", "--guidance", "2", "--pretrained", "writer", "--device", "cpu", "--steps", "1", "-n", "1"],
     "needs something to guide toward"),
    (["generate", "--pretrained", "animator", "--device", "cpu", "--steps", "1", "-n", "1"],
     "trained only on videos of a finished digit (image-to-video), so it cannot be asked for a video from nothing"),
    (["generate", "--pretrained", "animator", "--device", "cpu", "--steps", "1", "--digit", "7"],
     "cannot be asked for a digit by its label; tinydiff.pretrained('cascade') generates from noise"),
    (["generate", "--device", "cpu", "--precision", "bf16"], "precision bf16 needs a CUDA GPU"),
    (["train", "--device", "cpu", "--precision", "fp16", "--steps", "1"], "precision fp16 needs a CUDA GPU"),
    (["bench", "--device", "banana"], "unknown device 'banana'"),
    (["bench", "--device", "cpu", "--precision", "bf16"], "precision bf16 needs a CUDA GPU"),
])
def test_bad_settings_end_in_one_line_before_any_work(command, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--quiet"] if command[0] != "bench" else command) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinydiff: error:") and message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_asking_a_model_without_labels_for_a_digit_ends_in_one_line(tmp_path_factory, tmp_path, capsys, monkeypatch):
    from tinydiff import VideoUNet
    from tinydiff.checkpoint import save_checkpoint
    from tinydiff.model import preset

    cfg = preset("tiny", labels=False)
    path = tmp_path_factory.mktemp("unlabelled") / "weights.pt"  # like `tinydiff export` writes
    save_checkpoint({"model_config": cfg.to_dict(), "train_config": None, "precision": None,
                     "model": VideoUNet(cfg).state_dict(), "ema": None, "step": 0}, path)
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--digit", "3", "--checkpoint", str(path), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinydiff: error:") and "without class labels" in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_bench_passes_its_own_options_through(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--skip-from-scratch" in capsys.readouterr().out
