"""Moving digits: the Moving MNIST recipe (Srivastava et al. 2015), generated on the fly from the MNIST files.

Two 28x28 digits on a 64x64 canvas. Each starts with its top-left corner uniform in the free range [0, 36]^2
and a direction uniform in [0, 2pi); every frame it moves 0.1 of the free range (3.6 px) and reflects off
the walls like a billiard ball; the digits combine by pixel-wise max. Because a reflected straight line is
a triangle wave of the unreflected one, the position at any frame has a closed form, so the true
continuation of a sequence is known exactly for any number of frames.

Training sequences use the training file's digits; evaluation sequences use the held-out digits (official
test digits 7000-7999, `tinydiff.data.HELDOUT`), which sit at the same positions in the offline copy and in
a full download, so a seed gives the same held-out sequences everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .data import SIZE, load_mnist
from .errors import ConfigError, InputError

CANVAS = 64  # frames are CANVAS x CANVAS
FREE = CANVAS - SIZE  # 36: a digit's top-left corner lives in [0, FREE] on both axes
SPEED = 0.1 * FREE  # 3.6 px per frame
DIGITS = 2  # digits per video
# `moving_digits` draws a split's sequences from a stream of their own: a numpy SeedSequence of (seed, the
# split's tag). (Training draws each step's sequences from that step's seed: `MovingDigitsStream`.)
SPLIT_STREAM = {"train": 0x7A1, "test": 0x7E5, "heldout": 0x4E1D}


@dataclass
class MovingDigits:
    """A batch of moving-digit videos and what made them.

    videos: (N, T, 64, 64) float32 in [0, 1], white ink on black.
    labels: (N, 2) int64, each digit's class.
    positions: (N, T, 2, 2) float64, each digit's top-left corner (row, column) in every frame, before
        rounding; the digit is drawn at `corners`, the rounded positions.
    sources: (N, 2) int64, each digit's index in its split (`load_mnist(split)`).
    """

    videos: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor
    sources: torch.Tensor

    @property
    def corners(self) -> torch.Tensor:
        """(N, T, 2, 2) int64: the pixel where each digit's top-left corner is drawn in every frame."""
        return self.positions.round().long()


def bounce(start: np.ndarray, velocity: np.ndarray, frames: int) -> np.ndarray:
    """Positions under reflection at 0 and FREE, in closed form: (..., 2) start and velocity -> (..., frames, 2).

    Frame k is start + k velocity folded into [0, FREE] by the triangle wave of period 2 FREE: the path of a
    point moving at constant speed that reflects off both walls.
    """
    k = np.arange(frames, dtype=np.float64)[:, None]
    free = start[..., None, :] + k * velocity[..., None, :]
    folded = np.mod(free, 2 * FREE)
    return np.where(folded > FREE, 2 * FREE - folded, folded)


def render(digits: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """Paste digits onto empty canvases, combined by pixel-wise max.

    digits: (N, D, 28, 28) float in [0, 1]; corners: (N, T, D, 2) int64 top-left (row, column) in [0, FREE].
    Returns (N, T, 64, 64) float32. One scatter with an amax reduction, no loop in Python.
    """
    n, t, d = corners.shape[:3]
    offsets = torch.arange(SIZE)
    rows = corners[..., 0, None] + offsets  # (N, T, D, 28)
    cols = corners[..., 1, None] + offsets
    index = (rows[..., :, None] * CANVAS + cols[..., None, :]).reshape(n * t, -1)  # (N T, D 28 28)
    values = digits.float()[:, None].expand(n, t, d, SIZE, SIZE).reshape(n * t, -1)
    canvas = torch.zeros(n * t, CANVAS * CANVAS)
    canvas.scatter_reduce_(1, index, values, reduce="amax")
    return canvas.view(n, t, CANVAS, CANVAS)


def sequences(digits: torch.Tensor, labels: torch.Tensor, n: int, frames: int, rng: np.random.Generator) -> MovingDigits:
    """n moving-digit videos of `frames` frames from these digits ((M, 28, 28) uint8 and (M,) labels), drawn
    with `rng`: which digits (uniform, with replacement), where they start and where they head."""
    _check_positive("n", n)
    _check_positive("frames", frames)
    sources = torch.from_numpy(rng.integers(0, len(digits), size=(n, DIGITS)))
    start = rng.uniform(0.0, FREE, size=(n, DIGITS, 2))
    angle = rng.uniform(0.0, 2 * math.pi, size=(n, DIGITS))
    velocity = SPEED * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # (row, column) per frame
    positions = torch.from_numpy(bounce(start, velocity, frames)).permute(0, 2, 1, 3)  # (N, T, D, 2)
    videos = render(digits[sources].float() / 255.0, positions.round().long())
    return MovingDigits(videos, labels[sources].long(), positions.contiguous(), sources)


def moving_digits(split: str = "heldout", n: int = 16, frames: int = 20, seed: int = 0, root=None) -> MovingDigits:
    """Moving MNIST videos: two digits of `split` bouncing around a 64x64 canvas (see the module's docstring).

    Args:
        split: "train" (the training file: what models learn from), "heldout" (official test digits
            7000-7999, never seen in training: what every figure is measured on) or "test".
        n: number of videos.
        frames: frames per video, any positive number: the motion is known in closed form.
        seed: the same seed gives the same videos, on any machine and with any copy of MNIST holding the
            split's digits at their official positions. A video's first frames do not depend on `frames`.
        root: the MNIST root (see `tinydiff.data.load_mnist`).
    Returns:
        `MovingDigits`: videos (N, T, 64, 64) in [0, 1], labels, positions and source indices.
    """
    if split not in SPLIT_STREAM:
        raise InputError(f"split must be one of {', '.join(SPLIT_STREAM)}; got {split!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    digits, labels = load_mnist(split, root=root)
    return sequences(digits, labels, n, frames, np.random.default_rng([seed, SPLIT_STREAM[split]]))


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")


class MovingDigitsStream:
    """Endless training videos: each call draws fresh sequences from one split's digits, held in memory.

    `batch(n, frames, seed)` -> (n, 1, frames, 64, 64) float32 in [-1, 1] (model space), a function of
    the seed alone, so a resumed run draws what it would have drawn.
    """

    def __init__(self, split: str = "train", root=None, limit: int | None = None):
        digits, labels = load_mnist(split, root=root)
        self.digits, self.labels = (digits, labels) if limit is None else (digits[:limit], labels[:limit])
        if len(self.labels) < DIGITS:
            raise ConfigError(f"moving digits need at least {DIGITS} digits to draw from, got {len(self.labels)}")

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, n: int, frames: int, seed: int) -> torch.Tensor:
        videos = sequences(self.digits, self.labels, n, frames, np.random.default_rng(seed)).videos
        return videos.mul_(2).sub_(1).unsqueeze(1)
