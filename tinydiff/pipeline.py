"""The user-facing pipeline: a trained denoiser that animates digits and generates videos."""

from __future__ import annotations

import math
import numbers
import os
from typing import Iterator

import numpy as np
import torch

from .cascade import Cascade
from .checkpoint import label_frequencies, label_prior_of, load_shipped
from .data import condition_from_digits
from .device import autocast, resolve_device, resolve_precision
from .drawing import digit_from_image
from .errors import ConfigError, InputError
from .model import CLASSES, VideoUNet
from .registry import PRETRAINED, shipped
from .motion_pipeline import MotionPipeline
from .sampling import SamplerStep, check_count, check_seed, guided, noise_generator, sample_steps, to_frames
from .schedule import NoiseSchedule
from .train import MODES, load_trained

# The default guidance scale for "write me a 7" (classifier-free guidance on the label; see RESULTS.md).
LABEL_GUIDANCE = 2.0


# Labels drawn by `Pipeline.draw_labels` come from a stream of their own (a numpy SeedSequence of the seed
# and this tag), so that a seed's labels and its sampler noise (torch's stream of the same seed) are independent.
LABEL_STREAM = 0x1AB


class Pipeline:
    """A denoiser with its noise schedule, ready to sample writing videos.

    Args:
        model: a trained `VideoUNet` (its config names the schedule and prediction target).
        device: where to run; None or "auto" picks CUDA when available, else the CPU.
        precision: "auto", "fp32", "bf16" or "fp16" (see `tinydiff.device`); "auto" is fp32 on a CPU.
        label_prior: how often each digit came up in the training data, (10,) counts or frequencies, for
            `draw_labels`; None when unknown. `from_checkpoint` reads it from the checkpoint.
        modes: the conditioning modes the model was trained on (`tinydiff.train.MODES`); a request that needs
            another one is refused rather than sampled from untrained weights. None (unknown) allows all.
            `from_checkpoint` reads them from the checkpoint's training configuration.
    """

    def __init__(self, model: VideoUNet, device: torch.device | str | None = None, precision: str = "auto", *,
                 label_prior: torch.Tensor | None = None, modes: frozenset[str] | None = None):
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = model.to(self.device).eval()
        self.cfg = model.cfg
        self.schedule = NoiseSchedule(self.cfg.schedule, self.cfg.num_timesteps)
        self.label_prior = None if label_prior is None else label_frequencies(label_prior)  # (10,) float64, CPU
        self.modes = None if modes is None else frozenset(modes)
        if self.modes is not None and not self.modes <= set(MODES):
            raise ConfigError(f"unknown conditioning modes {sorted(self.modes - set(MODES))}; known: {', '.join(MODES)}")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device=None, use_ema: bool = True,
                        precision: str = "auto") -> "Pipeline":
        """Load any checkpoint written by `tinydiff.train` (the EMA weights by default)."""
        payload, model, modes = load_trained(path, use_ema)
        return cls(model, device, precision, label_prior=label_prior_of(payload), modes=modes)

    def draw_labels(self, n: int, seed: int | None = None) -> torch.Tensor:
        """n digits (n,) long drawn from the training label frequencies (`label_prior`).

        Asking a labelled model for them at guidance 1 samples a label, then a digit given the label:
        ancestral sampling from the model's joint distribution, i.e. "any digit", in the proportions of
        its training data.
        """
        if self.label_prior is None:
            raise ConfigError("this model records no training label frequencies (a model without labels, or "
                              "trained before tinydiff recorded them), so it cannot draw labels")
        check_count(n)
        entropy = None if check_seed(seed) is None else [seed % 2**64, LABEL_STREAM]
        rng = np.random.default_rng(entropy)
        return torch.from_numpy(rng.choice(CLASSES, size=n, p=self.label_prior.numpy())).long()

    def _shape(self, n: int) -> tuple[int, ...]:
        return (n, 1, self.cfg.frames, self.cfg.size, self.cfg.size)

    def _denoiser(self, condition: torch.Tensor | None, label: torch.Tensor | None, guidance: float):
        if condition is not None and not self.cfg.conditional:
            raise ConfigError("this model was trained without a condition; use generate()")
        denoise = guided(self.model, condition, guidance, label)

        def run(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.precision):
                return denoise(x, t).float()

        return run

    def steps(self, digits=None, n: int | None = None, steps: int = 50, sampler: str = "ddim",
              seed: int | None = None, guidance: float | None = None, eta: float = 0.0,
              progress: bool = False, *, digit=None) -> Iterator[SamplerStep]:
        """Every step of one sampling run (x_t and the predicted x_0 in [-1, 1], (N, 1, T, H, W)).

        Pass `digits` ((N, 28, 28) uint8, white ink on black) to animate them, or `n` (and optionally
        `digit`, as for `generate`) to generate videos from noise. This is what the course's sliders
        scrub. guidance: see `default_guidance`.
        """
        if (digits is None) == (n is None):
            raise InputError("pass either digits (to animate) or n (to generate), not both")
        guidance = check_guidance(guidance)
        label = None
        if digits is not None:
            if digit is not None:
                raise InputError("digit asks for a class when generating from noise; animate() takes the digits themselves")
            condition = condition_from_digits(digits).to(self.device)
            n = condition.shape[0]
        else:
            condition = None
            check_count(n)
            if digit is not None:
                if not self.cfg.labels:
                    raise ConfigError("this model was trained without class labels, so it cannot be asked for a "
                                      "digit: use a model trained with them (the shipped writer, or --label-share > 0)")
                label = digit_labels(digit, n).to(self.device)
            elif guidance not in (None, 0.0, 1.0):
                raise InputError("guidance needs something to guide toward: pass a digit (or animate digits)")
        guidance = default_guidance(guidance, digit is not None)
        self._check_trained_for("image" if digits is not None else "label" if digit is not None else "noise",
                                guidance)
        return sample_steps(self._denoiser(condition, label, guidance), self.schedule, self.cfg.prediction,
                            self._shape(n), sampler=sampler, steps=None if sampler == "ddpm" else steps,
                            eta=eta, generator=noise_generator(seed), device=self.device, progress=progress)

    def _check_trained_for(self, mode: str, guidance: float) -> None:
        """Refuse a request that needs a conditioning mode the model never trained on (its weights there are
        untrained, its videos noise): the mode asked for, and for guidance other than 1 the unconditional mode
        guidance pushes from (at 0, that one alone)."""
        if self.modes is None:
            return
        needed = {"noise"} if guidance == 0.0 else {mode} | ({"noise"} if guidance != 1.0 else set())
        missing = needed - self.modes
        if not missing:
            return
        trained = " and ".join(MODES[m][0] for m in MODES if m in self.modes) or "nothing"
        asked = MODES[mode][1] if mode in missing else f"guidance {guidance:g} (it needs videos from nothing)"
        hint = ""
        if self.modes == {"image"}:  # the shipped animator: name the shipped model that can do what was asked
            hint = ("; tinydiff.pretrained('cascade') generates from noise" if mode in missing else
                    "; tinydiff.pretrained('writer') was trained without its condition too, and takes guidance")
        raise ConfigError(f"this model was trained only on {trained}, so it cannot be asked for {asked}{hint}")

    def _run(self, **kwargs) -> torch.Tensor:
        x = None
        for step in self.steps(**kwargs):
            x = step.x_prev
        return to_frames(x)

    def animate(self, digits, steps: int = 50, sampler: str = "ddim", seed: int | None = None,
                guidance: float | None = None, eta: float = 0.0, progress: bool = False) -> torch.Tensor:
        """Image-to-video: the writing video of each digit.

        Args:
            digits: (N, 28, 28) uint8 (or a single (28, 28)) MNIST-style digits, white ink on black.
            steps: DDIM steps (DDPM always takes all T).
            sampler: "ddim", "dpm++2m" (DPM-Solver++(2M)) or "ddpm".
            seed: seed for reproducible videos.
            guidance: classifier-free guidance scale; 1 (None) = the conditional model, 0 = unconditional.
        Returns:
            (N, T, 28, 28) float tensor in [0, 1] on the CPU.
        """
        return self._run(digits=digits, steps=steps, sampler=sampler, seed=seed, guidance=guidance,
                         eta=eta, progress=progress)

    def animate_image(self, images, steps: int = 50, sampler: str = "ddim", seed: int | None = None,
                      guidance: float | None = None, eta: float = 0.0, progress: bool = False) -> torch.Tensor:
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

    def generate(self, n: int, steps: int = 50, sampler: str = "ddim", seed: int | None = None, eta: float = 0.0,
                 progress: bool = False, *, digit=None, guidance: float | None = None) -> torch.Tensor:
        """Videos generated from noise: any digit, or "write me a 7".

        Args:
            n: number of videos.
            steps, sampler, seed, eta: as for `animate`.
            digit: None for unconditional videos (any digit); an integer 0-9 for n videos of that digit;
                or n integers (a list, array or tensor), one per video. Needs a model trained with labels.
            guidance: classifier-free guidance scale toward the digit; None means `LABEL_GUIDANCE`.
                1 = the plain class-conditional model, 0 = unconditional, > 1 = more like the digit.
        Returns:
            (n, T, 28, 28) float tensor in [0, 1] on the CPU.
        """
        return self._run(n=n, digit=digit, steps=steps, sampler=sampler, seed=seed, guidance=guidance, eta=eta,
                         progress=progress)


def check_guidance(guidance) -> float | None:
    """A guidance scale as a float (None stays None), or a one-line InputError."""
    if guidance is None:
        return None
    if isinstance(guidance, bool) or not isinstance(guidance, numbers.Real) or not math.isfinite(guidance):
        raise InputError(f"guidance must be a number, got {guidance!r}")
    return float(guidance)


def default_guidance(guidance: float | None, digit: bool) -> float:
    """The guidance scale a sampling call uses: the one given, else `LABEL_GUIDANCE` when asking for a
    digit, else 1 (the plain conditional model: image-to-video, or unconditional with nothing to guide)."""
    if guidance is not None:
        return float(guidance)
    return LABEL_GUIDANCE if digit else 1.0


def digit_labels(digit, n: int) -> torch.Tensor:
    """The labels (n,) long of a `generate(n, digit=...)` request: an integer 0-9 for all n videos, or n
    integers (list, array, tensor) one per video; anything else is a one-line InputError."""
    try:
        labels = torch.as_tensor(digit)
    except (TypeError, ValueError, RuntimeError):
        labels = None
    if labels is None or labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex() \
            or labels.dim() > 1:
        raise InputError(f"digit must be an integer 0-9, or n of them (one per video), or None; got {digit!r}")
    labels = labels.long().expand(n) if labels.dim() == 0 else labels.long()
    if len(labels) != n:
        raise InputError(f"digit holds {len(labels)} labels for n={n} videos; give one per video, or a single digit")
    outside = labels[(labels < 0) | (labels >= CLASSES)]
    if len(outside):
        raise InputError(f"every digit must be an integer from 0 to {CLASSES - 1}, got {outside.unique().tolist()}")
    return labels.clone()


def pretrained(name: str = "writer", device=None, precision: str = "auto"):
    """A model shipped inside the package (`tinydiff.registry.MODELS`), verified against its manifest's SHA-256.

    A denoiser gives a `Pipeline`; "motion" a `MotionPipeline` (moving digits); "cascade" a `Cascade` of its
    declared stages (the 2D drawer, then the animator), a better generator from noise than the writer
    alone (BENCHMARKS.md).
    """
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model {name!r}; available: {', '.join(PRETRAINED)}")
    model = shipped(name)
    if model.kind == "cascade":
        return Cascade(*(pretrained(stage, device, precision) for stage in model.stages))
    if model.kind == "motion":
        return load_shipped(name, lambda path: MotionPipeline.from_checkpoint(path, device=device, precision=precision))
    return load_shipped(name, lambda path: Pipeline.from_checkpoint(path, device=device, precision=precision))
