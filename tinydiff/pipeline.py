"""The user-facing pipeline: a trained denoiser that animates digits and generates videos."""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import torch

from .checkpoint import PRETRAINED, load_checkpoint, load_shipped, model_from_checkpoint
from .data import condition_from_digits
from .device import autocast, resolve_device, resolve_precision
from .drawing import digit_from_image
from .errors import CheckpointError, ConfigError, InputError
from .model import VideoUNet
from .sampling import SamplerStep, guided, sample_steps
from .schedule import NoiseSchedule

def _generator(seed: int | None) -> torch.Generator:
    """A CPU generator for the sampler's noise; seed=None draws fresh entropy without touching the
    global RNG (torch.seed() would re-seed the caller's torch.manual_seed stream)."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
        return generator
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an integer or None, got {seed!r}")
    return generator.manual_seed(seed)


class Pipeline:
    """A denoiser with its noise schedule, ready to sample writing videos.

    Args:
        model: a trained `VideoUNet` (its config names the schedule and prediction target).
        device: where to run; None or "auto" picks CUDA when available, else the CPU.
        precision: "auto", "fp32", "bf16" or "fp16" (see `tinydiff.device`); "auto" is fp32 on a CPU.
    """

    def __init__(self, model: VideoUNet, device: torch.device | str | None = None, precision: str = "auto"):
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.cfg = model.cfg
        self.schedule = NoiseSchedule(self.cfg.schedule, self.cfg.num_timesteps)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device=None, use_ema: bool = True,
                        precision: str = "auto") -> "Pipeline":
        """Load any checkpoint written by `tinydiff.train` (the EMA weights by default)."""
        return cls(model_from_checkpoint(load_checkpoint(path), use_ema=use_ema), device, precision)

    def _shape(self, n: int) -> tuple[int, ...]:
        return (n, 1, self.cfg.frames, self.cfg.size, self.cfg.size)

    def _denoiser(self, condition: torch.Tensor | None, guidance: float):
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not guidance == guidance:
            raise InputError(f"guidance must be a number, got {guidance!r}")
        if condition is not None and not self.cfg.conditional:
            raise ConfigError("this model was trained without a condition; use generate()")
        denoise = guided(self.model, condition, float(guidance))

        def run(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.precision):
                return denoise(x, t).float()

        return run

    def steps(self, digits=None, n: int | None = None, steps: int = 50, sampler: str = "ddim",
              seed: int | None = None, guidance: float = 1.0, eta: float = 0.0,
              progress: bool = False) -> Iterator[SamplerStep]:
        """Every step of one sampling run (x_t and the predicted x_0 in [-1, 1], (N, 1, T, H, W)).

        Pass `digits` ((N, 28, 28) uint8, white ink on black) to animate them, or `n` for unconditional
        videos. This is what the course's sliders scrub.
        """
        if (digits is None) == (n is None):
            raise InputError("pass either digits (to animate) or n (to generate), not both")
        if digits is not None:
            condition = condition_from_digits(digits).to(self.device)
            n = condition.shape[0]
        else:
            condition = None
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InputError(f"n must be a positive integer, got {n!r}")
        return sample_steps(self._denoiser(condition, guidance), self.schedule, self.cfg.prediction,
                            self._shape(n), sampler=sampler, steps=None if sampler == "ddpm" else steps,
                            eta=eta, generator=_generator(seed), device=self.device, progress=progress)

    def _run(self, **kwargs) -> torch.Tensor:
        x = None
        for step in self.steps(**kwargs):
            x = step.x_prev
        return to_frames(x)

    def animate(self, digits, steps: int = 50, sampler: str = "ddim", seed: int | None = None,
                guidance: float = 1.0, eta: float = 0.0, progress: bool = False) -> torch.Tensor:
        """Image-to-video: the writing video of each digit.

        Args:
            digits: (N, 28, 28) uint8 (or a single (28, 28)) MNIST-style digits, white ink on black.
            steps: DDIM steps (DDPM always takes all T).
            sampler: "ddim", "dpm++2m" (DPM-Solver++(2M)) or "ddpm".
            seed: seed for reproducible videos.
            guidance: classifier-free guidance scale; 1 = conditional model, 0 = unconditional.
        Returns:
            (N, T, 28, 28) float tensor in [0, 1] on the CPU.
        """
        return self._run(digits=digits, steps=steps, sampler=sampler, seed=seed, guidance=guidance,
                         eta=eta, progress=progress)

    def animate_image(self, images, steps: int = 50, sampler: str = "ddim", seed: int | None = None,
                      guidance: float = 1.0, eta: float = 0.0, progress: bool = False) -> torch.Tensor:
        """Animate your own drawings: image files or arrays of any size, colour and polarity.

        Each image is made MNIST-like first (`tinydiff.drawing.digit_from_image`); every image is
        checked before any sampling starts.

        Args:
            images: one path / PIL image / array, or a list of them.
        Returns:
            (N, T, 28, 28) float tensor in [0, 1] on the CPU, one video per image.
        """
        sources = list(images) if isinstance(images, (list, tuple)) else [images]
        if not sources:
            raise InputError("no images to animate")
        digits = np.stack([digit_from_image(source) for source in sources])
        return self.animate(digits, steps=steps, sampler=sampler, seed=seed, guidance=guidance, eta=eta,
                            progress=progress)

    def generate(self, n: int, steps: int = 50, sampler: str = "ddim", seed: int | None = None,
                 eta: float = 0.0, progress: bool = False) -> torch.Tensor:
        """Unconditional videos: (n, T, 28, 28) float tensor in [0, 1] on the CPU."""
        return self._run(n=n, steps=steps, sampler=sampler, seed=seed, eta=eta, progress=progress)


def to_frames(x: torch.Tensor) -> torch.Tensor:
    """Model space (N, 1, T, H, W) in [-1, 1] -> (N, T, H, W) in [0, 1] on the CPU."""
    return ((x[:, 0].float().cpu() + 1) / 2).clamp(0, 1)


def pretrained(name: str = "writer", device=None, precision: str = "auto") -> Pipeline:
    """A pipeline for a model shipped inside the package, verified against its recorded SHA-256."""
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model {name!r}; available: {', '.join(PRETRAINED)}")
    return load_shipped(name, lambda path: Pipeline.from_checkpoint(path, device=device, precision=precision))
