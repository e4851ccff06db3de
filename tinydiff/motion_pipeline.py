"""The moving-digits pipeline: one masked-conditioning network that predicts, fills gaps, generates and extends.

The network sees a window of `T` frames (20 for the shipped "motion" model), some known (`tinydiff.motion`).
Any length is reached by sliding windows: each new window is conditioned on the last `context` frames
known or generated so far, and generates the rest of its frames, as Video Diffusion Models extend videos.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .device import autocast, resolve_device, resolve_precision
from .errors import ConfigError, InputError
from .model import VideoUNet
from .motion import known_condition
from .sampling import check_count, guided, noise_generator, sample_steps, to_frames
from .schedule import NoiseSchedule
from .train import MODES, load_trained

STEPS = 10  # default DDIM steps per window: 16 predictions 10 -> 10 in a few seconds on 2 cores (BENCHMARKS.md)


class MotionPipeline:
    """A denoiser trained with known-frame masks, ready to predict and extend moving digits.

    Frames are (N, T, H, W) float in [0, 1], white ink on black, H = W = the model's size (64).

    Args:
        model: a trained `VideoUNet` with `known_frames`.
        device: where to run; None or "auto" picks CUDA when available, else the CPU.
        precision: "auto", "fp32", "bf16" or "fp16" (see `tinydiff.device`).
        modes: the conditioning modes it trained on (`tinydiff.train.MODES`); None (unknown) allows all.
    """

    def __init__(self, model: VideoUNet, device=None, precision: str = "auto", *, modes: frozenset[str] | None = None):
        if not model.cfg.known_frames:
            raise ConfigError("this model takes no known frames (it is not a moving-digits model); use tinydiff.Pipeline")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.cfg = model.cfg
        self.schedule = NoiseSchedule(self.cfg.schedule, self.cfg.num_timesteps)
        self.modes = None if modes is None else frozenset(modes)

    @property
    def window(self) -> int:
        """Frames the network sees at once."""
        return self.cfg.frames

    @property
    def context(self) -> int:
        """Frames each new window is conditioned on by default: half the window (10 of 20)."""
        return self.window // 2

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device=None, use_ema: bool = True,
                        precision: str = "auto") -> "MotionPipeline":
        _, model, modes = load_trained(path, use_ema)
        return cls(model, device, precision, modes=modes)

    # -- checks ---------------------------------------------------------------------------------------

    def _frames(self, frames, name: str) -> torch.Tensor:
        """Validate (N, K, H, W) (or one video (K, H, W)) floats in [0, 1] -> model space (N, 1, K, H, W)."""
        try:
            array = frames.detach().cpu() if isinstance(frames, torch.Tensor) else torch.as_tensor(np.asarray(frames))
        except (TypeError, ValueError, RuntimeError):
            raise InputError(f"{name} must be an array of frames in [0, 1], got {type(frames).__name__}") from None
        size = self.cfg.size
        if array.dim() == 3:
            array = array[None]
        if array.dim() != 4 or array.shape[-2:] != (size, size) or array.shape[0] < 1 or array.shape[1] < 1:
            raise InputError(f"{name} must be frames of shape (N, K, {size}, {size}) or (K, {size}, {size}), "
                             f"got shape {tuple(array.shape)}")
        if array.dtype == torch.bool or array.is_complex():
            raise InputError(f"{name} must hold numbers in [0, 1], got dtype {array.dtype}")
        array = array.float()
        if not torch.isfinite(array).all():
            raise InputError(f"{name} must hold finite values in [0, 1]; they contain NaN or inf")
        if array.min() < 0 or array.max() > 1:
            raise InputError(f"{name} must hold values in [0, 1] (white ink on black), got "
                             f"{array.min().item():g}..{array.max().item():g}")
        return (array * 2 - 1).unsqueeze(1)

    def _check_mode(self, mode: str) -> None:
        if self.modes is not None and mode not in self.modes:
            raise ConfigError(f"this model was trained without {MODES[mode][0]}, so it cannot be asked for "
                              f"{MODES[mode][1]}")

    # -- sampling -------------------------------------------------------------------------------------

    def _window(self, frames: torch.Tensor, known: torch.Tensor, generator: torch.Generator, steps: int,
                sampler: str, eta: float, guidance: float, progress: bool) -> torch.Tensor:
        """One window: frames (N, 1, T, H, W) in [-1, 1] (unknown ones ignored), known (N, T) in {0, 1}
        -> (N, 1, T, H, W) in [-1, 1] on the CPU, with the known frames exactly as given."""
        frames, known = frames.to(self.device), known.to(self.device)
        condition = known_condition(frames, known)
        denoise = guided(self.model, condition, guidance)
        mask = known.view(*known.shape[:1], 1, -1, 1, 1)
        # In training the network saw the known frames noised to level t in x_t, like every other frame; the
        # sampler's x_t holds its own guesses there, so they are replaced by the known frames noised to level
        # t, with one draw of noise per window (the path DDIM would follow through them).
        noise = torch.randn(frames.shape, generator=generator).to(self.device)

        def run(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            x = mask * self.schedule.q_sample(frames, t, noise) + (1 - mask) * x
            with autocast(self.device, self.precision):
                return denoise(x, t).float()

        x = None
        for step in sample_steps(run, self.schedule, self.cfg.prediction, tuple(frames.shape), sampler=sampler,
                                 steps=None if sampler == "ddpm" else steps, eta=eta, generator=generator,
                                 device=self.device, progress=progress):
            x = step.x_prev
        return (mask * frames + (1 - mask) * x.float()).cpu()

    def fill(self, video, known, steps: int = STEPS, sampler: str = "ddim", seed: int | None = None,
             eta: float = 0.0, guidance: float = 1.0, progress: bool = False) -> torch.Tensor:
        """Fill in the unknown frames of one window: interpolation, prediction, or (nothing known) generation.

        Args:
            video: (N, T, H, W) in [0, 1], T = `window`; the unknown frames' values are ignored.
            known: (T,) or (N, T) booleans (or 0/1), True where a frame is given.
            steps, sampler, seed, eta: as for `tinydiff.Pipeline.generate`.
            guidance: classifier-free guidance toward the known frames (1 = the conditional model).
        Returns:
            (N, T, H, W) in [0, 1] on the CPU; the known frames are returned as given.
        """
        frames = self._frames(video, "video")
        n, t = frames.shape[0], frames.shape[2]
        if t != self.window:
            raise InputError(f"fill takes windows of {self.window} frames, got {t}; predict() and generate() take any length")
        try:
            mask = torch.as_tensor(np.asarray(known.cpu() if isinstance(known, torch.Tensor) else known, dtype=np.float32))
        except (TypeError, ValueError):
            raise InputError(f"known must be {t} booleans (True where a frame is given), got {known!r:.60}") from None
        if mask.dim() == 1 and len(mask) == t:
            mask = mask.expand(n, t)
        if mask.shape != (n, t):
            raise InputError(f"known must be {t} booleans (or one row of {t} per video), got shape {tuple(mask.shape)}")
        if not ((mask == 0) | (mask == 1)).all():
            raise InputError("known must hold booleans (or 0 and 1): True where a frame is given")
        if mask.bool().all(dim=1).any():
            raise InputError("every frame is known: there is nothing to fill in")
        self._check_mode("frames" if mask.any() else "noise")
        return to_frames(self._window(frames, mask, noise_generator(seed), steps, sampler, eta, _guidance(guidance),
                                      progress))

    def predict(self, past, frames: int = 10, steps: int = STEPS, sampler: str = "ddim", seed: int | None = None,
                eta: float = 0.0, context: int | None = None, guidance: float = 1.0,
                progress: bool = False) -> torch.Tensor:
        """The future of each video: `frames` new frames after the given past ones.

        Windows slide: each is conditioned on the last `context` frames so far (the given ones, then the
        generated ones) and generates the rest of its `window` frames, until `frames` are made; any
        number works, far past the training window.

        Args:
            past: (N, K, H, W) (or one video (K, H, W)) in [0, 1]: the K >= 1 frames given.
            frames: how many frames to predict.
            context: frames each window is conditioned on (default half the window, 10 of 20); the first
                window uses min(K, context).
        Returns:
            (N, frames, H, W) in [0, 1] on the CPU.
        """
        video = self._frames(past, "past")
        _check_frames(frames)
        context = self.context if context is None else context
        if isinstance(context, bool) or not isinstance(context, int) or not 1 <= context < self.window:
            raise InputError(f"context must be an integer from 1 to {self.window - 1}, got {context!r}")
        self._check_mode("frames")
        return to_frames(self._extend(video, frames, context, noise_generator(seed), steps, sampler, eta,
                                      _guidance(guidance), progress))

    def generate(self, n: int, frames: int | None = None, steps: int = STEPS, sampler: str = "ddim",
                 seed: int | None = None, eta: float = 0.0, progress: bool = False) -> torch.Tensor:
        """Moving digits from nothing: one window from noise, extended by `predict`'s sliding windows when
        `frames` (default: one window) is longer. Returns (n, frames, H, W) in [0, 1] on the CPU."""
        check_count(n)
        frames = self.window if frames is None else _check_frames(frames)
        self._check_mode("noise")
        if frames > self.window:
            self._check_mode("frames")
        generator = noise_generator(seed)
        size = self.cfg.size
        empty = torch.zeros(n, 1, self.window, size, size)
        first = self._window(empty, torch.zeros(n, self.window), generator, steps, sampler, eta, 1.0, progress)
        if frames <= self.window:
            return to_frames(first[:, :, :frames])
        rest = self._extend(first, frames - self.window, self.context, generator, steps, sampler, eta, 1.0, progress)
        return to_frames(torch.cat([first, rest], dim=2))

    def _extend(self, video: torch.Tensor, frames: int, context: int, generator: torch.Generator, steps: int,
                sampler: str, eta: float, guidance: float, progress: bool) -> torch.Tensor:
        """`frames` frames after video (N, 1, K, H, W) in [-1, 1], window by window -> (N, 1, frames, H, W)."""
        n, size, made = video.shape[0], self.cfg.size, []
        while frames > 0:
            keep = min(video.shape[2], context)
            window = torch.zeros(n, 1, self.window, size, size)
            window[:, :, :keep] = video[:, :, -keep:]
            known = torch.zeros(n, self.window)
            known[:, :keep] = 1
            new = self._window(window, known, generator, steps, sampler, eta, guidance, progress)
            new = new[:, :, keep:keep + frames]
            made.append(new)
            video = torch.cat([video[:, :, -context:], new], dim=2)
            frames -= new.shape[2]
        return torch.cat(made, dim=2)


def _check_frames(frames) -> int:
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise InputError(f"frames must be a positive integer, got {frames!r}")
    return frames


def _guidance(guidance) -> float:
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not np.isfinite(guidance):
        raise InputError(f"guidance must be a number, got {guidance!r}")
    return float(guidance)
