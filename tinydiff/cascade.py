"""Generation from noise in two stages: a 2D diffusion model draws the finished digit, the writer animates it.

The writer's own unconditional mode has to invent a digit and its writing at once, and few of its videos
end on a digit a classifier can read (RESULTS.md, "The cascade, shipped"). Split in two, each stage does what it is
good at: the 2D model (the `digits` preset) draws a digit from noise, which is ordinary image diffusion;
its binarised drawing is the condition of image-to-video, a nearly deterministic task that the writer
does almost as well in 10 DDIM steps as in 50 (chapter 2). Frames agree with each other by construction: every
frame is written toward the same finished digit. "Write me a 7" works the same way, with a labelled 2D
model (the `digits-labelled` preset) drawing the 7 under classifier-free guidance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .errors import ConfigError

if TYPE_CHECKING:
    from .pipeline import Pipeline

# DDIM steps of the writing stage: image-to-video is almost as good at 10 steps as at 50 (BENCHMARKS.md:
# frame IoU 0.862 against 0.875 on held-out digits) at a fifth of the cost.
WRITE_STEPS = 10


class Cascade:
    """2D digit models and a writer, used like a `Pipeline` that generates from noise.

    Args:
        draw: a pipeline of a one-frame model without a condition (`preset("digits")`, shipped as "digits"),
            which draws digits when none is asked for.
        write: a pipeline of an image-to-video model of the same size (the shipped "writer").
        write_steps: DDIM steps of the writing stage.
        draw_digit: a one-frame model with labels (`preset("digits-labelled")`, shipped as "digits-labelled")
            that draws the digit asked for; None: `draw` is asked, which then needs labels of its own.
    """

    def __init__(self, draw: Pipeline, write: Pipeline, write_steps: int = WRITE_STEPS, *,
                 draw_digit: Pipeline | None = None):
        for name, stage, kind in (("draw", draw, "digits"), ("draw_digit", draw_digit, "digits-labelled")):
            if stage is not None and (stage.cfg.frames != 1 or stage.cfg.conditional):
                raise ConfigError(f"the drawing stage ({name}) must be a one-frame model without a condition "
                                  f"(preset {kind!r}), got frames={stage.cfg.frames}, "
                                  f"conditional={stage.cfg.conditional}")
            if stage is not None and stage.cfg.size != write.cfg.size:
                raise ConfigError(f"the stages disagree on the picture size: {stage.cfg.size} ({name}) and "
                                  f"{write.cfg.size} (write)")
        if draw_digit is not None and not draw_digit.cfg.labels:
            raise ConfigError("draw_digit must be a model with labels (preset 'digits-labelled')")
        if not write.cfg.conditional:
            raise ConfigError("the writing stage must be an image-to-video model (trained with the finished digit)")
        self.draw, self.write, self.write_steps, self.draw_digit = draw, write, write_steps, draw_digit

    def _drawer(self, digit) -> Pipeline:
        """The first stage's model for this request."""
        if digit is None:
            return self.draw
        if self.draw_digit is not None:
            return self.draw_digit
        if self.draw.cfg.labels:
            return self.draw
        raise ConfigError("this cascade's digit model draws any digit and cannot be asked for one; give it a "
                          "labelled one (Cascade(..., draw_digit=...)) or use tinydiff.pretrained('cascade')")

    def digits(self, n: int, steps: int = 50, sampler: str = "ddim", seed: int | None = None, eta: float = 0.0,
               progress: bool = False, *, digit=None, guidance: float | None = None) -> torch.Tensor:
        """The first stage alone: n digits drawn from noise, binarised as the writer's condition is,
        (n, H, W) uint8 in {0, 255}. Arguments as for `generate`."""
        drawn = self._drawer(digit).generate(n, steps=steps, sampler=sampler, seed=seed, eta=eta, progress=progress,
                                             digit=digit, guidance=guidance)  # (n, 1, H, W) in [0, 1]
        return (drawn[:, 0] > 0.5).to(torch.uint8) * 255

    def generate(self, n: int, steps: int = 50, sampler: str = "ddim", seed: int | None = None, eta: float = 0.0,
                 progress: bool = False, *, digit=None, guidance: float | None = None) -> torch.Tensor:
        """Writing videos from noise: each digit drawn by the first stage, then written by the writer.

        Args:
            n: number of videos.
            steps, sampler, eta: the drawing stage's sampler (the writing stage runs DDIM-`write_steps`).
            seed: seeds both stages, for reproducible videos.
            digit: None for any digit, else an int or a list of n ints (drawn by `draw_digit`, else by a
                labelled `draw`).
            guidance: classifier-free guidance toward the digit, as for `Pipeline.generate`.
        Returns:
            (n, T, H, W) float tensor in [0, 1] on the CPU.
        """
        drawn = self.digits(n, steps=steps, sampler=sampler, seed=seed, eta=eta, progress=progress, digit=digit,
                            guidance=guidance)
        return self.write.animate(drawn, steps=self.write_steps, seed=seed, progress=progress)

    def animate(self, digits, **sampling) -> torch.Tensor:
        """Image-to-video needs no first stage: the writer's `Pipeline.animate`."""
        return self.write.animate(digits, **sampling)
