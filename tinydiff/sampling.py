"""Samplers: DDPM ancestral sampling, DDIM and DPM-Solver++(2M), one loop that exposes every step.

The three samplers share one signature (as in k-diffusion): a `denoise(x_t, t) -> model_output` function, a
`NoiseSchedule`, the prediction type and the shape. `sample_steps` yields a `SamplerStep` per step, so
sliders and animations consume the same loop that `sample` runs.

Noise is drawn on the CPU from a seedable `torch.Generator`, then moved to the model's device: the same
seed gives the same videos on any device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from .errors import ConfigError, InputError
from .model import NO_LABEL
from .schedule import NoiseSchedule

SAMPLERS = ("ddpm", "ddim", "dpm++2m")
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class SamplerStep:
    """One reverse step: x_t at timestep t, the predicted x_0 there, and the x_{t'} it moved to."""

    index: int  # 0 .. steps-1
    t: int  # the timestep of x_t
    x_t: torch.Tensor  # (B, C, T, H, W)
    pred_x0: torch.Tensor  # (B, C, T, H, W)
    x_prev: torch.Tensor  # (B, C, T, H, W), the sample at the next (smaller) timestep


def timesteps(num_timesteps: int, steps: int) -> list[int]:
    """The timesteps a sampler visits, largest first, "trailing" spacing (Lin et al. 2024, table 2).

    t_i = round(T (steps - i) / steps) - 1 for i = 0 .. steps-1: starts at T - 1, the pure-noise end, for
    any number of steps; steps = T gives T-1, ..., 0.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= num_timesteps:
        raise ConfigError(f"steps must be an integer from 1 to {num_timesteps}, got {steps!r}")
    visited = []
    for i in range(steps):
        # In integers, ties to even as numpy's round: in floats, T - i T/steps can land a hair off an exact
        # half (steps = 240, 304, ... for T = 1000) and round the wrong way.
        quotient, remainder = divmod(num_timesteps * (steps - i), steps)
        if 2 * remainder > steps or (2 * remainder == steps and quotient % 2):
            quotient += 1
        visited.append(quotient - 1)
    return visited


def ddpm_step(schedule: NoiseSchedule, x_t, t: torch.Tensor, pred_x0, noise) -> torch.Tensor:
    """DDPM ancestral step (Ho et al. 2020, eq. 6-7, "fixed small" variance): x_{t-1} ~ q(x_{t-1} | x_t, x0_hat).

    t: (B,); x_t, pred_x0, noise: (B, C, T, H, W). No noise is added at t = 0.
    """
    mean, variance = schedule.q_posterior(pred_x0, x_t, t)
    nonzero = (t > 0).to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))
    return mean + nonzero * variance.sqrt() * noise


def ddim_step(schedule: NoiseSchedule, x_t, t: torch.Tensor, t_prev: torch.Tensor, pred_x0, pred_eps,
              eta: float, noise) -> torch.Tensor:
    """DDIM step from t to t_prev (Song et al. 2021, eq. 12 and 16); t_prev = -1 means x_0.

    sigma^2 = eta^2 (1 - ab_prev)/(1 - ab_t) (1 - ab_t/ab_prev): eta = 0 is deterministic, eta = 1 over
    all T steps is DDPM.
    """
    sa_t, sb_t = schedule.scales(t, x_t, torch.float64)  # coefficients in float64, cast at the end
    sa_prev, sb_prev = schedule.scales(t_prev, x_t, torch.float64)
    sigma = eta * sb_prev / sb_t * (1 - (sa_t / sa_prev) ** 2).sqrt()
    direction = (sb_prev**2 - sigma**2).clamp(min=0).sqrt()  # scale of the "direction pointing to x_t"
    return (sa_prev.to(x_t.dtype) * pred_x0 + direction.to(x_t.dtype) * pred_eps
            + sigma.to(x_t.dtype) * noise)


def dpmpp_2m_step(schedule: NoiseSchedule, x_t, t: torch.Tensor, t_prev: torch.Tensor, pred_x0,
                  earlier: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """DPM-Solver++(2M) step from t to t_prev (Lu et al. 2022, algorithm 2); t_prev = -1 means x_0.

    With lambda = log(sqrt(ab) / sqrt(1 - ab)) and h = lambda(t_prev) - lambda(t):
    x_prev = sqrt(1 - ab_prev) / sqrt(1 - ab_t) x_t - sqrt(ab_prev) (e^-h - 1) D, where D = x0_hat for a
    first-order step (DDIM's), and D = (1 + 1/2r) x0_hat - 1/2r x0_hat_earlier with r = h_earlier / h
    for a second-order one. `earlier` is (x0_hat, timestep (B,)) of the previous, noisier step, or None
    for a first-order step: the first, and the last, to x_0 (lambda = inf there, and the step returns
    x0_hat exactly).
    """
    sa_t, sb_t = schedule.scales(t, x_t, torch.float64)
    sa_prev, sb_prev = schedule.scales(t_prev, x_t, torch.float64)
    lam_t, lam_prev = (sa_t / sb_t).log(), (sa_prev / sb_prev).log()
    h = lam_prev - lam_t
    data = pred_x0
    if earlier is not None:
        sa_e, sb_e = schedule.scales(earlier[1], x_t, torch.float64)
        half_inverse_r = (h / (lam_t - (sa_e / sb_e).log()) / 2).to(x_t.dtype)  # 1 / 2r
        data = (1 + half_inverse_r) * pred_x0 - half_inverse_r * earlier[0]
    return (sb_prev / sb_t).to(x_t.dtype) * x_t - (sa_prev * torch.expm1(-h)).to(x_t.dtype) * data


def sample_steps(
    denoise: Denoiser,
    schedule: NoiseSchedule,
    prediction: str,
    shape: tuple[int, ...],
    sampler: str = "ddim",
    steps: int | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    x_T: torch.Tensor | None = None,
    clip_x0: bool = True,
    progress: bool = False,
) -> Iterator[SamplerStep]:
    """Run the reverse chain and yield every step.

    Args:
        denoise: (x_t (B, ...), t (B,) long) -> network output (the `prediction` named).
        schedule: the noise schedule the network was trained with.
        prediction: "eps", "v" or "x0".
        shape: (B, C, T, H, W) of the samples.
        sampler: "ddpm" (all T steps), "ddim" or "dpm++2m" (DPM-Solver++(2M), deterministic).
        steps: number of DDIM / DPM-Solver steps (default 50); DDPM always takes all T steps.
        eta: DDIM stochasticity in [0, 1] (DDIM only).
        generator: CPU generator for x_T and the per-step noise (reproducible across devices).
        x_T: start from this noise instead of drawing it.
        clip_x0: clip the predicted x_0 to [-1, 1] (the data range) before stepping.
        progress: show a progress bar.
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; known samplers: {', '.join(SAMPLERS)}")
    if sampler == "ddpm":
        if steps not in (None, schedule.num_timesteps):
            raise ConfigError(f"DDPM takes all {schedule.num_timesteps} steps; use sampler='ddim' for {steps}")
        steps = schedule.num_timesteps
    elif steps is None:
        steps = 50
    if not 0.0 <= eta <= 1.0:
        raise ConfigError(f"eta must lie in [0, 1], got {eta!r}")
    visited = timesteps(schedule.num_timesteps, steps)

    def randn() -> torch.Tensor:
        return torch.randn(shape, generator=generator).to(device)

    x = randn() if x_T is None else x_T.to(device)
    earlier = None  # DPM-Solver++(2M)'s x0_hat and timestep of the step before
    for i, t_value in enumerate(tqdm(visited, desc=sampler.upper(), disable=not progress, leave=False)):
        t = torch.full((shape[0],), t_value, dtype=torch.long, device=device)
        with torch.no_grad():
            output = denoise(x, t).to(x.dtype)
        pred_x0, pred_eps = schedule.split_prediction(prediction, output, x, t)
        if clip_x0:
            pred_x0 = pred_x0.clamp(-1, 1)
            pred_eps = schedule.eps_from_x0(pred_x0, x, t)
        last = i == len(visited) - 1
        t_prev = torch.full_like(t, -1 if last else visited[i + 1])
        if sampler == "dpm++2m":
            x_prev = dpmpp_2m_step(schedule, x, t, t_prev, pred_x0, None if last else earlier)
            earlier = (pred_x0, t)
        else:
            noise = torch.zeros_like(x) if last or (sampler == "ddim" and eta == 0) else randn()
            if sampler == "ddpm":
                x_prev = ddpm_step(schedule, x, t, pred_x0, noise)
            else:
                x_prev = ddim_step(schedule, x, t, t_prev, pred_x0, pred_eps, eta, noise)
        yield SamplerStep(i, t_value, x, pred_x0, x_prev)
        x = x_prev


def sample(denoise: Denoiser, schedule: NoiseSchedule, prediction: str, shape, *,
           callback: Callable[[SamplerStep], None] | None = None, **kwargs) -> torch.Tensor:
    """Run `sample_steps` to the end and return x_0, (B, C, T, H, W); `callback` sees every step."""
    x = None
    for step in sample_steps(denoise, schedule, prediction, shape, **kwargs):
        if callback is not None:
            callback(step)
        x = step.x_prev
    return x


def ddpm_sample(denoise: Denoiser, schedule: NoiseSchedule, prediction: str, shape, **kwargs) -> torch.Tensor:
    """DDPM ancestral sampling over all T steps (Ho et al. 2020, algorithm 2)."""
    return sample(denoise, schedule, prediction, shape, sampler="ddpm", **kwargs)


def ddim_sample(denoise: Denoiser, schedule: NoiseSchedule, prediction: str, shape, steps: int = 50,
                eta: float = 0.0, **kwargs) -> torch.Tensor:
    """DDIM sampling over `steps` steps (Song et al. 2021, eq. 12)."""
    return sample(denoise, schedule, prediction, shape, sampler="ddim", steps=steps, eta=eta, **kwargs)


def guided(model, condition: torch.Tensor | None = None, guidance: float = 1.0,
           label: torch.Tensor | None = None) -> Denoiser:
    """Classifier-free guidance (Ho & Salimans 2022) as a denoiser for the samplers.

    Convention: output = uncond + guidance (cond - uncond), where cond is the model given `condition`
    and `label` and uncond the model given neither. guidance = 1 is the plain conditional model, 0 the
    unconditional one, > 1 pushes further toward the condition. One batched forward pass computes
    both branches. condition: the model's condition ((B, 1, H, W) finished digits in [-1, 1], or (B, 2, T, H, W)
    known frames and their mask; zeros mean none) or None; label: (B,) long (0-9) or None; at most
    one of them, as in training, where a video gets its finished digit or its label, never both. With
    neither, the model is unconditional whatever the guidance.
    """
    if condition is not None and label is not None:
        raise ConfigError("guide toward a condition image or a label, not both: the model never saw both at once")
    if (condition is None and label is None) or guidance == 1.0:
        return lambda x, t: model(x, t, condition, label)
    if guidance == 0.0:
        return lambda x, t: model(x, t, None, None)
    conditions = None if condition is None else torch.cat([condition, torch.zeros_like(condition)])
    labels = None if label is None else torch.cat([label, torch.full_like(label, NO_LABEL)])

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        both = model(torch.cat([x, x]), torch.cat([t, t]), conditions, labels)
        cond, uncond = both.float().chunk(2)  # the guidance sum in fp32 also under half-precision autocast
        return uncond + guidance * (cond - uncond)

    return denoise


def check_seed(seed) -> int | None:
    """A sampling seed: an integer, or None for fresh entropy; anything else is a one-line InputError."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InputError(f"seed must be an integer or None, got {seed!r}")
    return seed


def check_count(n) -> int:
    """A number of videos (or labels) to sample: a positive integer, else a one-line InputError."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}")
    return n


def noise_generator(seed: int | None) -> torch.Generator:
    """A CPU generator for the sampler's noise; seed=None draws fresh entropy without touching the
    global RNG (torch.seed() would re-seed the caller's torch.manual_seed stream)."""
    generator = torch.Generator()
    if check_seed(seed) is None:
        generator.seed()
        return generator
    return generator.manual_seed(seed)


def to_frames(x: torch.Tensor) -> torch.Tensor:
    """Model space (N, 1, T, H, W) in [-1, 1] -> (N, T, H, W) in [0, 1] on the CPU."""
    return ((x[:, 0].float().cpu() + 1) / 2).clamp(0, 1)
