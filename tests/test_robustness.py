"""Crashes lose nothing, hostile files run nothing, broken data gets a clear message."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from tinydiff import CheckpointError, DataError, Pipeline, TrainingError, VideoUNet, preset
from tinydiff.checkpoint import load_checkpoint, save_checkpoint
from tinydiff.cli import main
from tinydiff.data import load_mnist
from tinydiff.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


# --- hostile checkpoints -------------------------------------------------------------------------

class Payload:
    """Unpickling this calls open(marker, "w"): a stand-in for any code an attacker wants run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_checkpoint_with_a_pickled_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    model = VideoUNet(preset("tiny"))
    evil = tmp_path / "evil.pt"
    torch.save({"format": "tinydiff-checkpoint-1", "model_config": model.cfg.to_dict(),
                "model": model.state_dict(), "ema": None, "extra": Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="refused"):
        Pipeline.from_checkpoint(evil, device="cpu")
    assert main(["generate", "--checkpoint", str(evil), "-o", str(tmp_path / "x.gif"), "--quiet",
                 "--device", "cpu"]) == 2
    assert not marker.exists(), "the pickled payload must never run"


# --- killed runs ---------------------------------------------------------------------------------

TRAIN = ["-m", "tinydiff", "train", "--preset", "tiny", "--batch-size", "4", "--threads", "1", "--quiet",
         "--device", "cpu"]


def _train_command(out: Path, data: Path, steps: int, every: int) -> list[str]:
    return [sys.executable, *TRAIN, "--steps", str(steps), "--checkpoint-every", str(every),
            "--data-root", str(data), "--out", str(out)]


def test_sigkill_mid_training_then_resume_continues_exactly(tmp_path, fake_mnist):
    steps, every = 24, 4
    out = tmp_path / "killed"
    process = subprocess.Popen(_train_command(out, fake_mnist, steps, every), env=_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = out / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = load_checkpoint(checkpoint)["step"]
    assert 0 < killed_at < steps and killed_at % every == 0

    resumed = subprocess.run(_train_command(out, fake_mnist, steps, every), env=_env(), capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = subprocess.run(_train_command(tmp_path / "straight", fake_mnist, steps, every), env=_env(),
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]
    a, b = load_checkpoint(checkpoint), load_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    assert a["step"] == b["step"] == steps and a["losses"] == b["losses"]
    for part in ("model", "ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), (part, name)


KILL_WHILE_SAVING = textwrap.dedent("""
    import os, signal, sys
    import torch
    calls = 0
    real_save = torch.save
    def dying_save(obj, f, *args, **kwargs):  # the second checkpoint: half written, then SIGKILL
        global calls
        calls += 1
        if calls == 2:
            f.write(b"half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(obj, f, *args, **kwargs)
    torch.save = dying_save
    from tinydiff.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_kill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, fake_mnist):
    out = tmp_path / "run"
    command = _train_command(out, fake_mnist, 4, 2)
    died = subprocess.run([sys.executable, "-c", KILL_WHILE_SAVING, *command[3:]], env=_env(),
                          capture_output=True, timeout=300)
    assert died.returncode == -signal.SIGKILL
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 2  # the first checkpoint, intact
    assert list(out.glob("checkpoint.pt.*.tmp")), "the half-written temporary file was left by the kill"
    resumed = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 4
    assert [p.name for p in out.iterdir()] == ["checkpoint.pt"], "stale temporary files are cleaned up"


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_good_state(tmp_path, fake_mnist, monkeypatch):
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), steps=6, batch_size=4, data_root=str(fake_mnist),
                      checkpoint_every=2, threads=1, device="cpu")
    model_cfg = preset("tiny")
    train(model_cfg, cfg, progress=False, until=2)  # the last periodic checkpoint: step 2
    forward, calls = VideoUNet.forward, []

    def poisoned(self, *args, **kwargs):  # step 3 is fine, step 4 gives NaN
        calls.append(1)
        output = forward(self, *args, **kwargs)
        return output if len(calls) == 1 else output * float("nan")

    monkeypatch.setattr(VideoUNet, "forward", poisoned)
    with pytest.raises(TrainingError, match="not finite at step 4") as info:
        train(model_cfg, cfg, progress=False)
    assert "holds the last good state (step 3)" in str(info.value)
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["model"].values())
    monkeypatch.setattr(VideoUNet, "forward", forward)
    assert len(train(model_cfg, cfg, progress=False).losses) == 6  # and training can go on from there


# --- broken data roots ---------------------------------------------------------------------------

@pytest.fixture
def mnist_copy(tmp_path, fake_mnist) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(fake_mnist, root)
    return root


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_mnist_file(mnist_copy, damage):
    images = mnist_copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    data = images.read_bytes()
    images.write_bytes({"truncated": data[:len(data) // 2], "garbage": b"not mnist" * 20, "empty": b""}[damage])
    with pytest.raises(DataError, match="is damaged") as info:
        load_mnist("test", root=mnist_copy)
    assert "\n" not in str(info.value) and "delete" in str(info.value)
    assert images.read_bytes() != data, "the damaged file is left for the user to inspect, not overwritten"


def test_data_root_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="not writable") as info:
        load_mnist(root=blocker / "data")
    assert "TINYDIFF_DATA" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_data_root(tmp_path):
    root = tmp_path / "locked"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(DataError, match="not writable"):
            load_mnist(root=root)
    finally:
        root.chmod(0o700)


def test_cli_reports_data_errors_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["train", "--preset", "tiny", "--steps", "1", "--data-root", str(blocker / "data"),
                 "--out", str(tmp_path / "run"), "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinydiff: error: MNIST") and err.count("\n") == 1
