import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tinydiff import CheckpointError, Pipeline, preset
from tinydiff.checkpoint import load_checkpoint, model_from_checkpoint
from tinydiff.train import TrainConfig, learning_rate, train

ROOT = Path(__file__).resolve().parents[1]


def config(tmp_path, fake_mnist, **overrides) -> TrainConfig:
    settings = dict(out_dir=str(tmp_path / "run"), steps=4, batch_size=4, data_root=str(fake_mnist),
                    checkpoint_every=2, warmup_steps=2, threads=1)
    return TrainConfig(**{**settings, **overrides})


def test_checkpoint_round_trip(tmp_path, fake_mnist, tiny_config):
    result = train(tiny_config, config(tmp_path, fake_mnist, steps=2), progress=False)
    state = load_checkpoint(result.checkpoint)
    assert state["step"] == 2 and len(state["losses"]) == 2
    assert state["model_config"] == tiny_config.to_dict()
    assert TrainConfig.from_dict(state["train_config"]).steps == 2
    assert {"model", "ema", "optimizer", "rng", "elapsed_s"} <= set(state)
    pipe = Pipeline.from_checkpoint(result.checkpoint, device="cpu")
    for name, tensor in pipe.model.state_dict().items():
        assert torch.equal(tensor, result.ema.state_dict()[name]), name
    raw = model_from_checkpoint(state, use_ema=False)
    assert not all(torch.equal(a, b) for a, b in zip(raw.parameters(), pipe.model.parameters()))


def test_resume_is_exact(tmp_path, fake_mnist, tiny_config):
    straight = train(tiny_config, config(tmp_path / "a", fake_mnist), progress=False)
    paused = train(tiny_config, config(tmp_path / "b", fake_mnist), progress=False, until=2)
    assert load_checkpoint(paused.checkpoint)["step"] == 2
    resumed = train(tiny_config, config(tmp_path / "b", fake_mnist), progress=False)
    assert resumed.losses == straight.losses
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for part in ("model", "ema"):
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), (part, name)
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])


def test_resume_refuses_another_model(tmp_path, fake_mnist, tiny_config):
    train(tiny_config, config(tmp_path, fake_mnist, steps=1), progress=False)
    other = replace(tiny_config, prediction="eps")
    with pytest.raises(CheckpointError, match="different model configuration"):
        train(other, config(tmp_path, fake_mnist, steps=2), progress=False)
    train(other, config(tmp_path, fake_mnist, steps=1), progress=False, resume=False)


def test_one_batch_overfits(tmp_path, fake_mnist):
    cfg = preset("tiny", prediction="x0")
    result = train(cfg, config(tmp_path, fake_mnist, steps=120, batch_size=4, train_limit=4, lr=5e-3, warmup_steps=10,
                                 checkpoint_every=1000, cond_drop=0.0), progress=False)
    first, last = sum(result.losses[:15]) / 15, sum(result.losses[-15:]) / 15
    assert last < 0.25 * first, (first, last)


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=1100, lr=1.0, warmup_steps=100, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0) == pytest.approx(0.01)
    assert learning_rate(cfg, 99) == pytest.approx(1.0)
    assert learning_rate(cfg, 600) == pytest.approx(0.55)
    assert learning_rate(cfg, 1100) == pytest.approx(0.1)


def test_two_process_torchrun(tmp_path, fake_mnist):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "tinydiff", "train", "--preset", "tiny", "--steps", "3", "--batch-size", "2",
               "--checkpoint-every", "2", "--data-root", str(fake_mnist), "--out", str(out), "--quiet",
               "--device", "cpu"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained to step 3") == 1, "only rank 0 reports"
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 3 and len(state["losses"]) == 3
    assert all(torch.isfinite(torch.tensor(state["losses"])))
    # The checkpoint resumes on a single process.
    more = train(preset("tiny"), TrainConfig(out_dir=str(out), steps=4, batch_size=2, data_root=str(fake_mnist)),
                 progress=False)
    assert len(more.losses) == 4 and more.losses[:3] == state["losses"]


def test_export_keeps_the_ema_weights(tmp_path, fake_mnist, tiny_config):
    import hashlib

    from tinydiff.checkpoint import export_weights

    result = train(tiny_config, config(tmp_path, fake_mnist, steps=2), progress=False)
    digest = export_weights(result.checkpoint, tmp_path / "small.pt")
    assert digest == hashlib.sha256((tmp_path / "small.pt").read_bytes()).hexdigest()
    assert (tmp_path / "small.pt").stat().st_size < 0.7 * result.checkpoint.stat().st_size
    exported = Pipeline.from_checkpoint(tmp_path / "small.pt", device="cpu").model.state_dict()
    for name, tensor in result.ema.state_dict().items():
        assert torch.equal(exported[name], tensor), name


def test_min_snr_weights():
    from tinydiff import NoiseSchedule
    from tinydiff.train import loss_weights

    s = NoiseSchedule("cosine")
    t = torch.tensor([0, 300, 999])
    snr = s.alphas_cumprod[t] / (1 - s.alphas_cumprod[t])
    torch.testing.assert_close(loss_weights(s, "x0", "min-snr", t), snr.clamp(max=5).float())
    torch.testing.assert_close(loss_weights(s, "eps", "min-snr", t), (snr.clamp(max=5) / snr).float())
    assert loss_weights(s, "v", "uniform", t).tolist() == [1.0, 1.0, 1.0]
