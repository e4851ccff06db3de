"""The noise schedule: every formula of the forward process q, in one place.

Training, both samplers, the notebooks and the tests use this object; nothing else in the package
restates a schedule formula. Tables are computed once in float64 (as in improved-diffusion) and cast
to the caller's dtype and device on use (each table is copied to a device once, not at every step).

Notation (Ho et al. 2020, "DDPM"): timesteps t = 0 .. T-1, betas beta_t, alpha_t = 1 - beta_t,
alpha_bar_t = prod_{s<=t} alpha_s. x_t is x_0 after t + 1 noising steps.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .errors import ConfigError

PREDICTIONS = ("eps", "v", "x0")


def linear_betas(num_timesteps: int) -> torch.Tensor:
    """Ho et al. (2020): betas from 1e-4 to 0.02, rescaled so that other T keep the same end points of
    alpha_bar (as improved-diffusion does); exactly 1e-4 .. 0.02 for T = 1000."""
    scale = 1000.0 / num_timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=torch.float64)


def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021), eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2),
    with betas clipped at 0.999 to avoid the singularity at t = T."""
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


_BETA_SCHEDULES: dict[str, Callable[[int], torch.Tensor]] = {"linear": linear_betas, "cosine": cosine_betas}


class NoiseSchedule:
    """Discrete-time Gaussian diffusion schedule (linear or cosine) with its closed forms.

    Args:
        name: "linear" or "cosine".
        num_timesteps: T, the number of noising steps (1000 by default).
    """

    def __init__(self, name: str = "linear", num_timesteps: int = 1000):
        if name not in _BETA_SCHEDULES:
            raise ConfigError(f"unknown noise schedule {name!r}; known schedules: {', '.join(_BETA_SCHEDULES)}")
        if not isinstance(num_timesteps, int) or num_timesteps < 2:
            raise ConfigError(f"num_timesteps must be an integer >= 2, got {num_timesteps!r}")
        self.name = name
        self.num_timesteps = num_timesteps
        self.betas = _BETA_SCHEDULES[name](num_timesteps)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        # Posterior q(x_{t-1} | x_t, x_0) = N(coef_x0 x_0 + coef_xt x_t, beta_tilde_t)  (DDPM eq. 6-7).
        one_minus = 1.0 - self.alphas_cumprod
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / one_minus
        self.posterior_coef_x0 = self.betas * self.alphas_cumprod_prev.sqrt() / one_minus
        self.posterior_coef_xt = (1.0 - self.alphas_cumprod_prev) * self.alphas.sqrt() / one_minus
        # sqrt(ab) and sqrt(1 - ab) in float64, with a last entry for t = -1 ("x_0 itself": ab = 1), so
        # that 1 - ab keeps its precision near t = 0 whatever the dtype of the data.
        self._sqrt_ab = torch.cat([self.alphas_cumprod.sqrt(), torch.ones(1, dtype=torch.float64)])
        self._sqrt_one_minus_ab = torch.cat([one_minus.sqrt(), torch.zeros(1, dtype=torch.float64)])
        self._snr = self.alphas_cumprod / one_minus
        self._copies: dict[tuple[int, torch.device], torch.Tensor] = {}  # (table id, device) -> table there

    def _on(self, table: torch.Tensor, device: torch.device) -> torch.Tensor:
        """One of this schedule's tables on `device`, copied there once (not at every step)."""
        key = (id(table), device)
        if key not in self._copies:
            self._copies[key] = table.to(device)
        return self._copies[key]

    def _extract(self, table: torch.Tensor, t: torch.Tensor, like: torch.Tensor,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
        """Gather table[t] for a batch of timesteps and shape it to broadcast against `like`.

        table: (T,) float64, one of this schedule's; t: (B,) long; like: (B, ...), e.g. (B, C, T, H, W).
        Returns (B, 1, 1, ...) on like's device, in `dtype` (default: like's dtype).
        """
        out = self._on(table, like.device)[t.to(like.device)].to(dtype or like.dtype)
        return out.reshape(t.shape[0], *([1] * (like.dim() - 1)))

    def __repr__(self) -> str:
        return f"NoiseSchedule({self.name!r}, num_timesteps={self.num_timesteps})"

    def snr(self, t: torch.Tensor | None = None) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar_t / (1 - alpha_bar_t), float64, at t (on t's device) or for all t."""
        if t is None:
            return self._snr.clone()
        return self._on(self._snr, t.device)[t]

    def scales(self, t: torch.Tensor, like: torch.Tensor, dtype: torch.dtype | None = None):
        """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) shaped to broadcast against `like`.

        t: (B,) long; t = -1 means "before any noise" (alpha_bar = 1). dtype defaults to like's.
        """
        return (self._extract(self._sqrt_ab, t, like, dtype),
                self._extract(self._sqrt_one_minus_ab, t, like, dtype))

    # -- the forward process -------------------------------------------------------------------------

    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)  (DDPM eq. 4)."""
        sa, sb = self.scales(t, x0)
        return sa * x0, (sb**2).expand_as(x0)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The "teleport": draw x_t ~ q(x_t | x_0) in one step. x0, noise: (B, ...); t: (B,)."""
        sa, sb = self.scales(t, x0)
        return sa * x0 + sb * noise

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One noising step q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)  (DDPM eq. 2)."""
        beta = self._extract(self.betas, t, x_prev)
        return (1.0 - beta).sqrt() * x_prev + beta.sqrt() * noise

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x_0)  (DDPM eq. 6-7)."""
        mean = self._extract(self.posterior_coef_x0, t, xt) * x0 + self._extract(self.posterior_coef_xt, t, xt) * xt
        return mean, self._extract(self.posterior_variance, t, xt).expand_as(xt)

    # -- prediction targets --------------------------------------------------------------------------

    def training_target(self, prediction: str, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network regresses: eps, x0, or v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022)."""
        if prediction == "eps":
            return noise
        if prediction == "x0":
            return x0
        if prediction == "v":
            sa, sb = self.scales(t, x0)
            return sa * noise - sb * x0
        raise ConfigError(f"unknown prediction target {prediction!r}; known targets: {', '.join(PREDICTIONS)}")

    def split_prediction(
        self, prediction: str, model_output: torch.Tensor, xt: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn a network output into (x0_hat, eps_hat), using x_t = sqrt(ab) x0 + sqrt(1 - ab) eps.

        model_output, xt: (B, ...); t: (B,).
        """
        sa, sb = self.scales(t, xt)
        if prediction == "eps":
            eps = model_output
            return (xt - sb * eps) / sa, eps
        if prediction == "x0":
            return model_output, self.eps_from_x0(model_output, xt, t)
        if prediction == "v":
            v = model_output
            return sa * xt - sb * v, sa * v + sb * xt
        raise ConfigError(f"unknown prediction target {prediction!r}; known targets: {', '.join(PREDICTIONS)}")

    def eps_from_x0(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise that takes x0 to xt at step t (used after clipping x0_hat)."""
        sa, sb = self.scales(t, xt)
        return (xt - sa * x0) / sb
