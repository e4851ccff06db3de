import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from tinydiff import ConfigError, NoiseSchedule
from tinydiff.model import NO_LABEL
from tinydiff.sampling import (ddim_sample, ddim_step, ddpm_sample, ddpm_step, dpmpp_2m_step, guided, sample_steps,
                               timesteps)

DIFFUSERS_PREDICTION = {"eps": "epsilon", "v": "v_prediction", "x0": "sample"}


def test_timesteps_trailing_spacing():
    assert timesteps(1000, 5) == [999, 799, 599, 399, 199]
    assert timesteps(1000, 1000) == list(range(999, -1, -1))
    assert timesteps(1000, 1) == [999]
    for bad in (0, -1, 1001, 2.5, True):
        with pytest.raises(ConfigError, match="steps"):
            timesteps(1000, bad)


def exact_ties(num_timesteps: int, n: int) -> bool:
    """Whether some T (n - i) / n lies exactly halfway between two integers (n = 16, 48, ... for T = 1000)."""
    return any(Fraction(num_timesteps * (n - i), n).denominator == 2 for i in range(n))


def test_timesteps_match_diffusers_for_every_step_count():
    # diffusers computes np.round(np.arange(T, 0, -T / n)) - 1 (scheduling_ddim.py, "trailing"). Two
    # kinds of n are left out, both float artefacts of np.arange (checked with diffusers 0.42.1):
    # - for 62 values of n (61, 103, 121, ...) T / (T / n) rounds above n, np.arange returns n + 1
    #   values and diffusers visits a last timestep of -1;
    # - where T (n - i) / n is exactly k + 1/2 (n a multiple of 16), np.arange's accumulated error decides
    #   which way the tie rounds (937.4999999999999 for n = 48, i = 3), so diffusers may return k - 1 where
    #   we return k. Those n are checked against exact arithmetic in the next test instead.
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
    compared = 0
    for n in range(1, 1001):
        ref.set_timesteps(n)
        if len(ref.timesteps) != n or exact_ties(1000, n):
            continue
        assert timesteps(1000, n) == ref.timesteps.tolist(), n
        compared += 1
    assert compared == 1000 - 62 - 62 + 1  # every n but the two kinds above (n = 976 is of both)


@pytest.mark.parametrize("num_timesteps", [1000, 100, 7])
def test_timesteps_are_the_rounded_trailing_grid(num_timesteps):
    # In exact arithmetic: t_i = round(T (n - i) / n) - 1, a tie k + 1/2 going to the even neighbour
    # (numpy's rounding, which diffusers means to apply; round() of a Fraction does the same).
    for n in range(1, num_timesteps + 1):
        got = timesteps(num_timesteps, n)
        assert len(got) == n and got[0] == num_timesteps - 1 and all(a > b for a, b in zip(got, got[1:])), n
        for i, t in enumerate(got):
            exact = Fraction(num_timesteps * (n - i), n)
            assert t == round(exact) - 1, (n, i, t, exact)


@pytest.mark.parametrize("schedule_name", ["linear", "cosine"])
@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_ddpm_step_matches_diffusers(schedule_name, prediction):
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear" if schedule_name == "linear" else "squaredcos_cap_v2",
                        prediction_type=DIFFUSERS_PREDICTION[prediction], clip_sample=True)
    s = NoiseSchedule(schedule_name)
    # diffusers computes its coefficients in float32, which loses digits for t near 0; there the
    # posterior is checked against a float64 derivation in test_schedule.py.
    for t in (999, 500, 100, 37):
        x, out = torch.randn(2, 1, 3, 4, 4), torch.randn(2, 1, 3, 4, 4)
        expected = ref.step(out, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
        tt = torch.full((2,), t)
        pred_x0, _ = s.split_prediction(prediction, out, x, tt)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(t))
        got = ddpm_step(s, x, tt, pred_x0.clamp(-1, 1), noise)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=5e-5)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_ddim_step_matches_diffusers(prediction, eta):
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing",
                        prediction_type=DIFFUSERS_PREDICTION[prediction], clip_sample=True, set_alpha_to_one=True)
    ref.set_timesteps(20)
    s = NoiseSchedule("cosine")
    visited = timesteps(1000, 20)
    for i, t in enumerate(visited):
        x, out, noise = torch.randn(2, 1, 3, 4, 4), torch.randn(2, 1, 3, 4, 4), torch.randn(2, 1, 3, 4, 4)
        expected = ref.step(out, t, x, eta=eta, use_clipped_model_output=True, variance_noise=noise).prev_sample
        tt = torch.full((2,), t)
        pred_x0, _ = s.split_prediction(prediction, out, x, tt)
        pred_x0 = pred_x0.clamp(-1, 1)
        t_prev = torch.full((2,), visited[i + 1] if i + 1 < len(visited) else -1)
        got = ddim_step(s, x, tt, t_prev, pred_x0, s.eps_from_x0(pred_x0, x, tt), eta, noise)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def toy_denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed, smooth stand-in for a network: depends on x and t like a real eps-predictor would."""
    return torch.tanh(0.8 * x + 0.001 * t.float().view(-1, 1, 1, 1, 1) - 0.3)


def test_full_ddim_loop_matches_diffusers():
    from diffusers import DDIMScheduler

    ref = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", timestep_spacing="trailing",
                        clip_sample=True, set_alpha_to_one=True)
    ref.set_timesteps(10)
    x_T = torch.randn(3, 1, 2, 5, 5)
    x = x_T.clone()
    for t in ref.timesteps:
        x = ref.step(toy_denoiser(x, torch.full((3,), int(t))), t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    got = ddim_sample(toy_denoiser, NoiseSchedule("linear"), "eps", x_T.shape, steps=10, x_T=x_T)
    torch.testing.assert_close(got, x, rtol=1e-4, atol=1e-4)


def test_ddim_with_eta_one_over_all_steps_is_ddpm():
    s = NoiseSchedule("linear", 100)
    betas = np.linspace(1e-3, 0.2, 100)  # the T = 100 linear schedule, written out
    ab = np.cumprod(1 - betas)
    posterior_variance = betas[1:] * (1 - ab[:-1]) / (1 - ab[1:])
    x, x0, noise = torch.randn(4, 1, 2, 3, 3), torch.randn(4, 1, 2, 3, 3).clamp(-1, 1), torch.randn(4, 1, 2, 3, 3)
    for t in (99, 50, 1):
        tt = torch.full((4,), t)
        eps = s.eps_from_x0(x0, x, tt)
        # With x0 = 0 and x_t = 0, only the noise term is left: its scale is sigma_t.
        zero = torch.zeros_like(x)
        sigma = ddim_step(s, zero, tt, tt - 1, zero, zero, 1.0, torch.ones_like(x))
        assert sigma[0, 0, 0, 0, 0].item() == pytest.approx(math.sqrt(posterior_variance[t - 1]), rel=1e-5)
        torch.testing.assert_close(ddim_step(s, x, tt, tt - 1, x0, eps, 1.0, noise), ddpm_step(s, x, tt, x0, noise),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampler, steps", [("ddpm", None), ("ddim", 500)])
def test_samplers_recover_a_gaussian_data_distribution(sampler, steps):
    # Data x0 ~ N(mu, s^2): the ideal x0-predictor is E[x0 | x_t], known in closed form, so a correct
    # sampler must return samples with mean mu and standard deviation s. (DDIM's discretisation
    # error shrinks this narrow distribution at few steps: s comes out 0.17 at 50 steps, 0.19 at 200.)
    mu, sd = 0.3, 0.2
    schedule = NoiseSchedule("linear")

    def ideal_x0(x, t):
        ab = schedule.alphas_cumprod[t].float().view(-1, 1, 1, 1, 1)
        a = ab.sqrt()
        return mu + a * sd**2 / (ab * sd**2 + 1 - ab) * (x - a * mu)

    samples = (ddpm_sample if sampler == "ddpm" else ddim_sample)(
        ideal_x0, schedule, "x0", (20_000, 1, 1, 1, 1), generator=torch.Generator().manual_seed(0),
        clip_x0=False, **({} if steps is None else {"steps": steps}))
    assert samples.mean().item() == pytest.approx(mu, abs=0.01)
    assert samples.std().item() == pytest.approx(sd, rel=0.03)


def test_steps_are_exposed_and_seeded():
    s = NoiseSchedule("cosine")
    seen = list(sample_steps(toy_denoiser, s, "eps", (2, 1, 3, 4, 4), steps=7,
                             generator=torch.Generator().manual_seed(1)))
    assert [step.index for step in seen] == list(range(7))
    assert [step.t for step in seen] == timesteps(1000, 7)
    assert all(step.pred_x0.abs().max() <= 1 for step in seen)
    for a, b in zip(seen, seen[1:]):
        assert torch.equal(a.x_prev, b.x_t)
    again = ddim_sample(toy_denoiser, s, "eps", (2, 1, 3, 4, 4), steps=7, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, seen[-1].x_prev, rtol=0, atol=0)
    other = ddim_sample(toy_denoiser, s, "eps", (2, 1, 3, 4, 4), steps=7, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(other, again)


def test_callback_sees_every_step():
    calls = []
    ddpm_sample(toy_denoiser, NoiseSchedule("linear", 20), "eps", (1, 1, 1, 2, 2), callback=calls.append)
    assert [c.t for c in calls] == list(range(19, -1, -1))


def test_bad_sampler_settings():
    s = NoiseSchedule()
    with pytest.raises(ConfigError, match="ddpm, ddim"):
        next(sample_steps(toy_denoiser, s, "eps", (1, 1, 1, 2, 2), sampler="euler"))
    with pytest.raises(ConfigError, match="DDPM takes all"):
        next(sample_steps(toy_denoiser, s, "eps", (1, 1, 1, 2, 2), sampler="ddpm", steps=50))
    with pytest.raises(ConfigError, match="eta"):
        next(sample_steps(toy_denoiser, s, "eps", (1, 1, 1, 2, 2), eta=1.5))


def guidance_stand_in(x, t, condition=None, label=None):
    """A stand-in denoiser whose output says what it was given: the condition's mean and the label
    (NO_LABEL and None both mean "no label" and add nothing)."""
    c = torch.zeros(x.shape[0], 1, 1, 1, 1) if condition is None else condition.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1, 1)
    known = torch.zeros(x.shape[0]) if label is None else torch.where(label == NO_LABEL, 0, label + 1).float()
    return x * 2 + c * 5 + 7 * known.view(-1, 1, 1, 1, 1) + t.view(-1, 1, 1, 1, 1)


def test_classifier_free_guidance_convention():
    model = guidance_stand_in
    x, t = torch.randn(3, 1, 2, 4, 4), torch.tensor([5, 6, 7])
    condition = torch.randn(3, 1, 4, 4)
    cond, uncond = model(x, t, condition), model(x, t, None)
    torch.testing.assert_close(guided(model, condition, 1.0)(x, t), cond)
    torch.testing.assert_close(guided(model, condition, 0.0)(x, t), uncond)
    torch.testing.assert_close(guided(model, condition, 3.0)(x, t), uncond + 3.0 * (cond - uncond))
    torch.testing.assert_close(guided(model, None, 3.0)(x, t), uncond)


def test_label_guidance_moves_toward_the_label_by_the_scale():
    """By hand: the stand-in adds 7 (label + 1) for a known label, so guidance w adds w * 7 (label + 1)."""
    x, t = torch.randn(3, 1, 2, 4, 4), torch.tensor([5, 6, 7])
    label = torch.tensor([0, 4, 9])
    plain = x * 2 + t.view(-1, 1, 1, 1, 1)  # no condition, no label
    for w in (0.0, 1.0, 2.5):
        expected = plain + w * 7 * (label + 1).float().view(-1, 1, 1, 1, 1)
        torch.testing.assert_close(guided(guidance_stand_in, None, w, label)(x, t), expected)
    with pytest.raises(ConfigError, match="not both"):  # training never gives a video both
        guided(guidance_stand_in, torch.randn(3, 1, 4, 4), 2.0, label)


def output_for(prediction: str, schedule: NoiseSchedule, x: torch.Tensor, t: int, x0: torch.Tensor) -> torch.Tensor:
    """The network output of each prediction type that means `x0` at (x, t): eps, v or x0 itself, in
    float64, so that every type drives the same trajectory (x0 in [-1, 1] keeps float32 error small)."""
    ab = schedule.alphas_cumprod[t]
    eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
    return {"x0": x0, "eps": eps, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[prediction]


def dpm_path(schedule: NoiseSchedule, prediction: str, start: torch.Tensor, visited: list[int], x0s: list):
    """The samples after each DPM-Solver++(2M) step from `start`, the network meaning x0s[i] at step i."""
    x, earlier = start, None
    for i, (t_value, x0) in enumerate(zip(visited, x0s)):
        last = i == len(visited) - 1
        t = torch.full((x.shape[0],), t_value)
        pred_x0, _ = schedule.split_prediction(prediction, output_for(prediction, schedule, x, t_value, x0), x, t)
        x = dpmpp_2m_step(schedule, x, t, torch.full_like(t, -1 if last else visited[i + 1]), pred_x0,
                          None if last else earlier)
        earlier = (pred_x0, t)
        yield x


@pytest.mark.parametrize("steps", [1, 2, 5, 20, 50])
@pytest.mark.parametrize("prediction", ["v", "x0"])
def test_dpmpp_2m_matches_diffusers(prediction, steps):
    """Step by step against diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2, trailing
    timesteps, last step to sigma = 0) fed the same network outputs. Not for eps: diffusers keeps its
    tables in float32, and at t = 999 of the cosine schedule x0 = (x - sqrt(1 - ab) eps) / sqrt(ab)
    divides float32's error in sqrt(1 - ab) by sqrt(ab) = 5e-5, about 1e-3 in x0; the next test ties eps
    to the other two in float64 instead."""
    from diffusers import DPMSolverMultistepScheduler

    ref = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                      algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing",
                                      final_sigmas_type="zero", prediction_type=DIFFUSERS_PREDICTION[prediction])
    ref.set_timesteps(steps)
    visited = timesteps(1000, steps)
    assert ref.timesteps.tolist() == visited
    s = NoiseSchedule("cosine")
    g = torch.Generator().manual_seed(steps)
    expected = torch.randn(2, 1, 3, 4, 4, generator=g, dtype=torch.float64)
    x0s = [torch.rand(expected.shape, generator=g, dtype=torch.float64) * 2 - 1 for _ in visited]
    for x, t_value, x0 in zip(dpm_path(s, prediction, expected, visited, x0s), visited, x0s):
        expected = ref.step(output_for(prediction, s, expected, t_value, x0), t_value, expected).prev_sample
        torch.testing.assert_close(x, expected.double(), rtol=1e-4, atol=5e-5)


def test_dpmpp_2m_first_order_is_ddim():
    """Without an earlier prediction the DPM-Solver++ step is DDIM's deterministic step (eta = 0)."""
    s = NoiseSchedule("cosine")
    x, x0 = torch.randn(3, 1, 2, 4, 4, dtype=torch.float64), torch.rand(3, 1, 2, 4, 4, dtype=torch.float64)
    t, t_prev = torch.tensor([900, 500, 40]), torch.tensor([700, 200, -1])
    eps = s.eps_from_x0(x0, x, t)
    torch.testing.assert_close(dpmpp_2m_step(s, x, t, t_prev, x0, None),
                               ddim_step(s, x, t, t_prev, x0, eps, 0.0, torch.zeros_like(x)))


def test_dpmpp_2m_is_exact_when_the_prediction_is():
    """A denoiser that knows x0 (the data is one point) takes every sampler there in any number of steps."""
    s = NoiseSchedule("cosine")
    target = torch.linspace(-1, 1, 2 * 15 * 28 * 28).reshape(2, 1, 15, 28, 28)

    def oracle(x, t):
        return target.expand_as(x)

    for steps in (1, 3, 10):
        out = sample_steps(oracle, s, "x0", (2, 1, 15, 28, 28), sampler="dpm++2m", steps=steps,
                           generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(list(out)[-1].x_prev, target)


@pytest.mark.parametrize("steps", [2, 5, 20])
def test_dpmpp_2m_prediction_types_agree(steps):
    """Outputs of the three types that mean the same x0 take the same DPM-Solver++ path (float64)."""
    s = NoiseSchedule("cosine")
    visited = timesteps(1000, steps)
    g = torch.Generator().manual_seed(0)
    start = torch.randn(2, 1, 3, 4, 4, generator=g, dtype=torch.float64)
    x0s = [torch.rand(start.shape, generator=g, dtype=torch.float64) * 2 - 1 for _ in visited]
    paths = {prediction: list(dpm_path(s, prediction, start, visited, x0s))[-1] for prediction in ("eps", "v", "x0")}
    torch.testing.assert_close(paths["eps"], paths["x0"], rtol=0, atol=1e-6)
    torch.testing.assert_close(paths["v"], paths["x0"], rtol=0, atol=1e-9)
