import math

import numpy as np
import pytest
import torch

from tinydiff import ConfigError, NoiseSchedule


def test_linear_betas_and_alpha_bar_closed_form():
    s = NoiseSchedule("linear", 1000)
    assert s.betas.dtype == torch.float64
    assert s.betas[0].item() == pytest.approx(1e-4) and s.betas[-1].item() == pytest.approx(0.02)
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), np.exp(np.cumsum(np.log1p(-betas))), rtol=1e-12)
    # alpha_bar_999 of the DDPM schedule is about 4.04e-5 (Ho et al. 2020, the "almost pure noise" end).
    assert s.alphas_cumprod[-1].item() == pytest.approx(4.0358e-5, rel=1e-3)


def test_cosine_alpha_bar_closed_form():
    s = NoiseSchedule("cosine", 1000)
    t = np.arange(1, 1001)
    f = lambda u: np.cos((u / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    expected = f(t) / f(0)
    unclipped = s.betas.numpy() < 0.999
    np.testing.assert_allclose(s.alphas_cumprod.numpy()[unclipped], expected[unclipped], rtol=1e-10)
    assert s.betas.max().item() == pytest.approx(0.999)


@pytest.mark.parametrize("name, diffusers_name", [("linear", "linear"), ("cosine", "squaredcos_cap_v2")])
def test_tables_match_diffusers(name, diffusers_name):
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule=diffusers_name)
    s = NoiseSchedule(name, 1000)
    np.testing.assert_allclose(s.betas.numpy(), ref.betas.double().numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), ref.alphas_cumprod.double().numpy(), rtol=1e-5, atol=1e-9)


def test_snr():
    s = NoiseSchedule("cosine", 1000)
    t = torch.tensor([0, 500, 999])
    ab = s.alphas_cumprod[t]
    torch.testing.assert_close(s.snr(t), ab / (1 - ab))
    assert (s.snr()[1:] < s.snr()[:-1]).all(), "SNR falls with t"


@pytest.mark.parametrize("t", [0, 100, 500, 999])
def test_teleport_mean_and_variance(t):
    s = NoiseSchedule("linear")
    n = 200_000
    x0 = torch.full((n, 1), 0.7)
    draws = s.q_sample(x0, torch.full((n,), t), torch.randn(n, 1))
    ab = s.alphas_cumprod[t].item()
    assert draws.mean().item() == pytest.approx(math.sqrt(ab) * 0.7, abs=5 * math.sqrt((1 - ab) / n) + 1e-6)
    assert draws.var().item() == pytest.approx(1 - ab, rel=0.02, abs=1e-5)
    mean, var = s.q_mean_variance(x0[:1], torch.tensor([t]))
    assert mean.item() == pytest.approx(math.sqrt(ab) * 0.7) and var.item() == pytest.approx(1 - ab)


def test_teleport_equals_step_by_step_noising():
    s = NoiseSchedule("cosine", 200)
    n, t = 100_000, 120
    x = torch.full((n, 1), -0.4, dtype=torch.float64)
    for step in range(t + 1):
        x = s.q_step(x, torch.full((n,), step), torch.randn(n, 1, dtype=torch.float64))
    teleported = s.q_sample(torch.full((n, 1), -0.4, dtype=torch.float64), torch.full((n,), t),
                            torch.randn(n, 1, dtype=torch.float64))
    assert x.mean().item() == pytest.approx(teleported.mean().item(), abs=0.01)
    assert x.var().item() == pytest.approx(teleported.var().item(), rel=0.02)


def test_posterior_against_gaussian_conditioning():
    # Independent float64 derivation: q(x_{t-1} | x_t, x_0) is proportional to
    # N(x_t; sqrt(a_t) x_{t-1}, b_t) N(x_{t-1}; sqrt(ab_{t-1}) x_0, 1 - ab_{t-1}); complete the square.
    s = NoiseSchedule("linear")
    betas = np.linspace(1e-4, 0.02, 1000)
    ab = np.cumprod(1 - betas)
    x0, xt = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    for t in (1, 10, 500, 999):
        precision = 1 / (1 - ab[t - 1]) + (1 - betas[t]) / betas[t]
        mean = (np.sqrt(ab[t - 1]) * x0.numpy() / (1 - ab[t - 1]) + np.sqrt(1 - betas[t]) * xt.numpy() / betas[t]) / precision
        got_mean, got_var = s.q_posterior(x0, xt, torch.full((4,), t))
        np.testing.assert_allclose(got_mean.numpy(), mean, rtol=1e-9)
        np.testing.assert_allclose(got_var.numpy(), np.full((4, 3), 1 / precision), rtol=1e-9)
    # At t = 0 the posterior collapses onto x_0.
    mean, var = s.q_posterior(x0, xt, torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(mean, x0)
    assert var.abs().max() == 0


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_prediction_targets_invert(prediction):
    s = NoiseSchedule("cosine")
    x0, eps = torch.randn(6, 1, 3, 4, 4, dtype=torch.float64), torch.randn(6, 1, 3, 4, 4, dtype=torch.float64)
    t = torch.tensor([0, 1, 200, 500, 900, 999])
    xt = s.q_sample(x0, t, eps)
    target = s.training_target(prediction, x0, eps, t)
    got_x0, got_eps = s.split_prediction(prediction, target, xt, t)
    torch.testing.assert_close(got_x0, x0, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_eps, eps, rtol=1e-6, atol=1e-6)
    if prediction == "v":  # v = sqrt(ab) eps - sqrt(1 - ab) x0, written out here
        ab = s.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
        torch.testing.assert_close(target, ab.sqrt() * eps - (1 - ab).sqrt() * x0)


def test_extract_broadcasts_over_video_tensors():
    s = NoiseSchedule("linear")
    x = torch.zeros(3, 1, 15, 28, 28)
    sa, sb = s.scales(torch.tensor([0, 5, -1]), x)
    assert sa.shape == sb.shape == (3, 1, 1, 1, 1) and sa.dtype == torch.float32
    assert sa[1].item() == pytest.approx(math.sqrt(np.prod(1 - np.linspace(1e-4, 0.02, 1000)[:6])))
    assert (sa[2].item(), sb[2].item()) == (1.0, 0.0), "t = -1 stands for x_0 itself"


def test_unknown_schedule_names_the_known_ones():
    with pytest.raises(ConfigError, match="linear, cosine"):
        NoiseSchedule("quadratic")
    with pytest.raises(ConfigError):
        NoiseSchedule("linear", 1)
    with pytest.raises(ConfigError, match="eps, v, x0"):
        NoiseSchedule().training_target("score", torch.zeros(1), torch.zeros(1), torch.zeros(1, dtype=torch.long))
