import copy
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tinydiff import CheckpointError, ConfigError, NoiseSchedule, Pipeline, VideoUNet, preset
from tinydiff.checkpoint import export_weights, load_checkpoint, model_from_checkpoint
from tinydiff.train import TrainConfig, draw_timesteps, learning_rate, loss_weights, train, update_ema

from .conftest import synthetic_digits

ROOT = Path(__file__).resolve().parents[1]


def config(tmp_path, fake_mnist, **overrides) -> TrainConfig:
    settings = dict(out_dir=str(tmp_path / "run"), steps=4, batch_size=4, data_root=str(fake_mnist),
                    checkpoint_every=2, warmup_steps=2, threads=1, device="cpu")
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


def test_resume_refuses_another_recipe_naming_what_differs(tmp_path, fake_mnist, tiny_config):
    train(tiny_config, config(tmp_path, fake_mnist, steps=2), progress=False)
    with pytest.raises(CheckpointError, match=r"lr 0\.002 -> 0\.001; cond_drop 0\.2 -> 0\.5") as refused:
        train(tiny_config, config(tmp_path, fake_mnist, steps=4, lr=1e-3, cond_drop=0.5), progress=False)
    assert len(str(refused.value).splitlines()) == 1 and "--force-resume" in str(refused.value)
    # More steps, and where or how it runs, are not a change of recipe.
    train(tiny_config, config(tmp_path, fake_mnist, steps=3, threads=2, checkpoint_every=1), progress=False)
    forced = train(tiny_config, config(tmp_path, fake_mnist, steps=4, lr=1e-3), progress=False, force_resume=True)
    state = load_checkpoint(forced.checkpoint)
    assert state["step"] == 4 and state["train_config"]["lr"] == 1e-3


def test_train_config_from_dict_refuses_unknown_settings():
    assert TrainConfig.from_dict({"steps": 3}).steps == 3
    with pytest.raises(ConfigError, match="unknown training settings: learning_rat"):
        TrainConfig.from_dict({"steps": 3, "learning_rat": 0.1})


def test_one_batch_overfits(tmp_path, fake_mnist, tiny_config):
    result = train(tiny_config, config(tmp_path, fake_mnist, steps=120, batch_size=4, train_limit=4, lr=5e-3,
                                       warmup_steps=10, checkpoint_every=1000, cond_drop=0.0), progress=False)
    first, last = sum(result.losses[:15]) / 15, sum(result.losses[-15:]) / 15
    assert last < 0.25 * first, (first, last)


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=1100, lr=1.0, warmup_steps=100, min_lr_ratio=0.1, device="cpu")
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
    more = train(preset("tiny"), TrainConfig(out_dir=str(out), steps=4, batch_size=2, data_root=str(fake_mnist),
                                             device="cpu"), progress=False)
    assert len(more.losses) == 4 and more.losses[:3] == state["losses"]


def test_export_keeps_the_ema_weights(tmp_path, fake_mnist, tiny_config):
    import hashlib

    result = train(tiny_config, config(tmp_path, fake_mnist, steps=2), progress=False)
    digest = export_weights(result.checkpoint, tmp_path / "small.pt")
    assert digest == hashlib.sha256((tmp_path / "small.pt").read_bytes()).hexdigest()
    assert (tmp_path / "small.pt").stat().st_size < 0.7 * result.checkpoint.stat().st_size
    exported = Pipeline.from_checkpoint(tmp_path / "small.pt", device="cpu").model.state_dict()
    for name, tensor in result.ema.state_dict().items():
        assert torch.equal(exported[name], tensor), name


def test_a_labelled_model_records_its_training_label_frequencies(tmp_path, fake_mnist, tiny_config):
    result = train(tiny_config, config(tmp_path, fake_mnist, steps=1, train_limit=40), progress=False)
    # fake_mnist's training file holds synthetic_digits(64, seed=1); the run trained on its first 40
    counts = np.bincount(synthetic_digits(64, seed=1)[1][:40], minlength=10)
    assert load_checkpoint(result.checkpoint)["label_counts"] == counts.tolist()
    export_weights(result.checkpoint, tmp_path / "small.pt")
    prior = Pipeline.from_checkpoint(tmp_path / "small.pt", device="cpu").label_prior
    np.testing.assert_allclose(prior.numpy(), counts / 40, rtol=0, atol=1e-15)

    unlabelled = train(replace(tiny_config, labels=False), config(tmp_path / "b", fake_mnist, steps=1), progress=False)
    assert load_checkpoint(unlabelled.checkpoint)["label_counts"] is None
    assert Pipeline.from_checkpoint(unlabelled.checkpoint, device="cpu").label_prior is None


def alpha_bar(schedule_name: str, num_timesteps: int = 1000) -> np.ndarray:
    """alpha_bar_t, float64, from the betas' formulas: DDPM's linear 1e-4 .. 0.02, or the cosine schedule
    (Nichol & Dhariwal 2021, eq. 17) with betas clipped at 0.999."""
    if schedule_name == "linear":
        betas = np.linspace(1e-4, 0.02, num_timesteps)
    else:
        f = np.cos((np.arange(num_timesteps + 1) / num_timesteps + 0.008) / 1.008 * np.pi / 2) ** 2
        betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
    return np.cumprod(1 - betas)


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
def test_min_snr_weights(schedule_name):
    # Min-SNR-gamma (Hang et al. 2023), gamma = 5, for each prediction target: eps min(snr, 5) / snr,
    # v min(snr, 5) / (snr + 1), x0 min(snr, 5).
    t = np.array([0, 1, 50, 150, 250, 300, 500, 700, 998, 999])
    ab = alpha_bar(schedule_name)[t]
    snr = ab / (1 - ab)
    assert (snr > 5).any() and (snr < 5).any(), "both sides of the clip"
    expected = {"eps": np.minimum(snr, 5) / snr, "v": np.minimum(snr, 5) / (snr + 1), "x0": np.minimum(snr, 5)}
    s = NoiseSchedule(schedule_name)
    for prediction, weights in expected.items():
        got = loss_weights(s, prediction, "min-snr", torch.from_numpy(t))
        assert got.dtype == torch.float32 and got.shape == (len(t),)
        np.testing.assert_allclose(got.numpy(), weights, rtol=1e-6, err_msg=prediction)
        assert loss_weights(s, prediction, "uniform", torch.from_numpy(t)).tolist() == [1.0] * len(t)


def test_update_ema_is_the_exponential_moving_average():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    model.train()(torch.randn(8, 3))  # moves the batch norm's running statistics (buffers, not averaged)
    before = [e.detach().double().clone() for e in ema.parameters()]
    update_ema(ema, model, 0.9)
    for e, e0, p in zip(ema.parameters(), before, model.parameters()):  # ema <- 0.9 ema + 0.1 model
        torch.testing.assert_close(e.detach().double(), 0.9 * e0 + 0.1 * p.detach().double(), rtol=1e-6, atol=1e-7)
    buffers = dict(ema.named_buffers())
    for name, b in model.named_buffers():
        assert torch.equal(buffers[name], b), name


def test_training_ema_follows_the_warmed_up_decay(tmp_path, fake_mnist, tiny_config, monkeypatch):
    import tinydiff.train as training

    seen = []  # (decay, the model's weights) at every EMA update
    real_update = training.update_ema

    def recording(ema, model, decay):
        seen.append((decay, [p.detach().double().clone() for p in model.parameters()]))
        real_update(ema, model, decay)

    monkeypatch.setattr(training, "update_ema", recording)
    cfg = config(tmp_path, fake_mnist, steps=4, ema_decay=0.25)
    train(tiny_config, cfg, progress=False, until=2)
    result = train(tiny_config, cfg, progress=False)  # resumed: the warm-up counts the steps of the whole run
    # min(0.25, (1 + step) / (10 + step)) at steps 0..3: 1/10, 2/11, 3/12 = 0.25, then 0.25 (not 4/13).
    assert [decay for decay, _ in seen] == [1 / 10, 2 / 11, 0.25, 0.25]
    torch.manual_seed(cfg.seed)
    ema = [p.detach().double() for p in VideoUNet(tiny_config).parameters()]  # the initial weights
    for decay, weights in seen:
        ema = [decay * e + (1 - decay) * w for e, w in zip(ema, weights)]
    for expected, got in zip(ema, result.ema.parameters()):
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_conditioning_modes_are_exclusive_and_drawn_at_their_shares(tmp_path, fake_mnist, monkeypatch):
    """Each training video gets exactly one mode: nothing, its label alone, or its finished digit alone."""
    import tinydiff.train as train_module
    from tinydiff.model import NO_LABEL

    seen = []

    class Spy(VideoUNet):
        def forward(self, x, t, condition=None, label=None):
            if self.training:
                seen.append((condition.flatten(1).abs().amax(dim=1) > 0, label.clone()))
            return super().forward(x, t, condition, label)

    monkeypatch.setattr(train_module, "VideoUNet", Spy)
    train(preset("tiny", labels=True), config(tmp_path, fake_mnist, steps=25, batch_size=16, cond_drop=0.25,
                                              label_share=0.5), progress=False)
    image = torch.cat([s[0] for s in seen])
    label = torch.cat([s[1] for s in seen])
    labelled = label != NO_LABEL
    assert not (image & labelled).any(), "a video never gets both"
    shares = [(~image & ~labelled).float().mean(), labelled.float().mean(), image.float().mean()]
    # 400 draws: each share within 4.5 binomial standard deviations of 0.25 / 0.5 / 0.25
    for share, p in zip(shares, (0.25, 0.5, 0.25)):
        assert abs(share - p) < 4.5 * (p * (1 - p) / len(image)) ** 0.5
    assert set(label[labelled].tolist()) <= set(range(10))


def test_mode_shares_are_checked(tmp_path, fake_mnist):
    from tinydiff import ConfigError

    from tinydiff.train import LABEL_SHARE, conditioning_shares

    with pytest.raises(ConfigError, match="at most 1"):
        conditioning_shares(TrainConfig(cond_drop=0.6, label_share=0.5), preset("tiny"))
    with pytest.raises(ConfigError, match="at most 1"):  # the default share counts too
        conditioning_shares(TrainConfig(cond_drop=0.7), preset("tiny"))
    assert conditioning_shares(TrainConfig(), preset("tiny")) == LABEL_SHARE
    assert conditioning_shares(TrainConfig(), preset("tiny", labels=False)) == 0.0
    with pytest.raises(ConfigError, match="must lie in"):
        TrainConfig(label_share=1.5)
    with pytest.raises(ConfigError, match="label embedding"):
        train(preset("tiny", labels=False), config(tmp_path, fake_mnist, label_share=0.3), progress=False)


@pytest.mark.parametrize("shares, model, modes", [
    (dict(cond_drop=0.2, label_share=0.4), {}, {"noise", "label", "image"}),  # the writer's recipe
    (dict(cond_drop=0.0, label_share=0.0), {}, {"image"}),  # the animator's
    (dict(cond_drop=0.2), {}, {"noise", "label", "image"}),  # label_share None: LABEL_SHARE (0.4)
    (dict(cond_drop=0.2), dict(labels=False), {"noise", "image"}),  # None without labels: 0
    (dict(cond_drop=0.6, label_share=0.4), {}, {"noise", "label"}),  # 1 - (0.6 + 0.4) is exactly 0
    (dict(cond_drop=0.5, label_share=0.5), dict(conditional=False), {"noise", "label"}),  # digits-labelled
    (dict(cond_drop=0.0, label_share=0.5), dict(conditional=False), {"noise", "label"}),  # the rest: nothing
    (dict(cond_drop=0.0, label_share=0.0), dict(conditional=False, labels=False), {"noise"}),
])
def test_trained_modes_follow_the_shares_of_training(shares, model, modes):
    from tinydiff.train import trained_modes

    assert trained_modes({"steps": 10, **shares}, preset("tiny", **model)) == modes


def test_timesteps_are_uniform_at_power_one_and_follow_the_power_law_above():
    from scipy.stats import kstest

    uniform = draw_timesteps(4096, 1000, 1.0, torch.Generator().manual_seed(0), "cpu")
    # power 1 is the draw every shipped recipe trained with: torch.randint, bit for bit
    assert torch.equal(uniform, torch.randint(0, 1000, (4096,), generator=torch.Generator().manual_seed(0)))
    high = draw_timesteps(20000, 1000, 3.0, torch.Generator().manual_seed(1), "cpu")
    assert high.min() >= 0 and high.max() <= 999
    # P(t <= k) = P(u <= ((k + 1) / T)^p): the continuous law (x / T)^3, sampled at integers
    assert kstest((high.double() + 0.5).numpy(), lambda x: (x / 1000) ** 3).pvalue > 1e-3
    assert (high >= 500).double().mean().item() == pytest.approx(1 - 0.5**3, abs=0.01)


@pytest.mark.parametrize("power", [0, -1, float("inf"), float("nan"), True, "3"])
def test_a_bad_timestep_power_is_refused(power):
    with pytest.raises(ConfigError, match="timestep_power must be a positive number"):
        TrainConfig(timestep_power=power)
