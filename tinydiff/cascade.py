"""Generation from noise in two stages: a 2D diffusion model draws the finished digit, an animator writes it.

The writer's own unconditional mode has to invent a digit and its writing at once, and few of its videos
end on a digit a classifier can read (RESULTS.md, "The cascade, shipped"). Split in two, each stage does what it is
good at: a labelled 2D model (the `digits-labelled` preset) draws a digit from noise, which is ordinary image
diffusion; its binarised drawing is the condition of image-to-video, a nearly deterministic task, done by the
"animator": the writer's network trained on image-to-video alone, which does it better than the three-mode
writer (RESULTS.md, "The animator"), as well in 10 DDIM steps as in 50. Frames agree with each other
by construction: every frame is written toward the same finished digit.

"Write me a 7" asks the 2D model for a 7 under classifier-free guidance. "Any digit" first draws the label
from the training data's digit frequencies, then asks for it at guidance 1: a sample of p(label) then of
p(digit | label) is a sample of p(digit), and the labelled model's digits read better than those of its
unconditional mode (RESULTS.md, "Any digit, by drawing a label first")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .errors import ConfigError

if TYPE_CHECKING:
    from .pipeline import Pipeline

# DDIM steps of the writing stage: the animator's image-to-video is as good at 10 steps as at 50 (frame IoU
# 0.921 at both on the first 256 held-out digits; RESULTS.md, "The 16/32 networks, shipped") at a fifth of
# the cost.
WRITE_STEPS = 10


class Cascade:
    """A 2D digit model and an image-to-video model, used like a `Pipeline` that generates from noise.

    Args:
        draw: a pipeline of a one-frame model without a condition, which draws the digits. Shipped:
            `preset("digits-labelled")`, which has labels, so it can be asked for a digit; for any digit it
            first draws a label from its training label frequencies (`Pipeline.draw_labels`). A drawer
            without labels (`preset("digits")`) or without recorded frequencies draws any digit from its
            unconditional mode.
        write: a pipeline of an image-to-video model of the same size. Shipped: the "animator"; the "writer"
            works too.
        write_steps: DDIM steps of the writing stage.
    """

    def __init__(self, draw: Pipeline, write: Pipeline, write_steps: int = WRITE_STEPS):
        if draw.cfg.frames != 1 or draw.cfg.conditional:
            raise ConfigError(f"the drawing stage must be a one-frame model without a condition (preset "
                              f"'digits-labelled'), got frames={draw.cfg.frames}, conditional={draw.cfg.conditional}")
        if draw.cfg.size != write.cfg.size:
            raise ConfigError(f"the stages disagree on the picture size: {draw.cfg.size} (draw) and "
                              f"{write.cfg.size} (write)")
        if not write.cfg.conditional or (write.modes is not None and "image" not in write.modes):
            raise ConfigError("the writing stage must be an image-to-video model (trained with the finished digit)")
        self.draw, self.write, self.write_steps = draw, write, write_steps

    @property
    def draws_labels(self) -> bool:
        """Whether "any digit" can draw a label first (a labelled drawer with training label frequencies)."""
        return self.draw.cfg.labels and self.draw.label_prior is not None

    def draws_labels_at(self, guidance: float | None) -> bool:
        """Whether "any digit" at this guidance draws a label first: at 1 (the default) only; 0 is the
        drawer's unconditional mode."""
        return self.draws_labels and guidance in (None, 1.0)

    def _request(self, n: int, digit, seed: int | None, guidance: float | None) -> tuple:
        """The (digit, guidance) the drawer is asked for. For any digit at guidance 1 (the default), labels
        drawn from its training frequencies when it has them; otherwise its unconditional mode, where
        guidance other than 0 and 1 has nothing to guide toward (the drawer says so)."""
        if digit is not None and not self.draw.cfg.labels:
            raise ConfigError("this cascade's digit model has no labels and cannot be asked for a digit; give it "
                              "one that has (preset 'digits-labelled') or use tinydiff.pretrained('cascade')")
        if digit is None and self.draws_labels_at(guidance):
            return self.draw.draw_labels(n, seed), 1.0
        return digit, guidance

    def digits(self, n: int, steps: int = 50, sampler: str = "ddim", seed: int | None = None, eta: float = 0.0,
               progress: bool = False, *, digit=None, guidance: float | None = None) -> torch.Tensor:
        """The first stage alone: n digits drawn from noise, binarised as image-to-video's condition is,
        (n, H, W) uint8 in {0, 255}. Arguments as for `generate`."""
        digit, guidance = self._request(n, digit, seed, guidance)
        drawn = self.draw.generate(n, steps=steps, sampler=sampler, seed=seed, eta=eta, progress=progress,
                                   digit=digit, guidance=guidance)  # (n, 1, H, W) in [0, 1]
        return (drawn[:, 0] > 0.5).to(torch.uint8) * 255

    def generate(self, n: int, steps: int = 50, sampler: str = "ddim", seed: int | None = None, eta: float = 0.0,
                 progress: bool = False, *, digit=None, guidance: float | None = None) -> torch.Tensor:
        """Writing videos from noise: each digit drawn by the first stage, then written by the second.

        Args:
            n: number of videos.
            steps, sampler, eta: the drawing stage's sampler (the writing stage runs DDIM-`write_steps`).
            seed: seeds both stages, for reproducible videos.
            digit: None for any digit, else an int or a list of n ints (the drawer needs labels).
            guidance: classifier-free guidance toward the digit, as for `Pipeline.generate`. For any digit:
                1 (the default) draws through a label, 0 asks the drawer's unconditional mode.
        Returns:
            (n, T, H, W) float tensor in [0, 1] on the CPU.
        """
        drawn = self.digits(n, steps=steps, sampler=sampler, seed=seed, eta=eta, progress=progress, digit=digit,
                            guidance=guidance)
        return self.write.animate(drawn, steps=self.write_steps, seed=seed, progress=progress)

    def animate(self, digits, **sampling) -> torch.Tensor:
        """Image-to-video needs no first stage: the second stage's `Pipeline.animate`."""
        return self.write.animate(digits, **sampling)
