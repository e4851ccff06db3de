"""Pictures of writing videos: grids and GIFs (the course's sliders and players come in later chapters)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import InputError


def video_grid(videos: torch.Tensor, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile videos side by side: (N, T, H, W) in [0, 1] -> (T, rows*(H+pad)+pad, cols*(W+pad)+pad) uint8."""
    videos = torch.as_tensor(videos).float()
    if videos.dim() != 4 or videos.shape[0] == 0:
        raise InputError(f"videos must be shaped (N, T, H, W) with N >= 1, got {tuple(videos.shape)}")
    n, t, h, w = videos.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.full((t, rows * (h + pad) + pad, columns * (w + pad) + pad), 64, dtype=np.uint8)
    frames = (videos.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[:, top:top + h, left:left + w] = frames[i]
    return grid


def save_gif(videos: torch.Tensor, path: str | os.PathLike, fps: float = 8.0, scale: int = 4,
             columns: int | None = None, hold_last: int = 5) -> Path:
    """Write videos (N, T, H, W) in [0, 1] as one looping GIF grid, enlarged `scale` times.

    The last frame stays on screen `hold_last` frames longer, so the finished digit can be seen.
    """
    grid = video_grid(videos, columns)
    grid = grid.repeat(scale, axis=1).repeat(scale, axis=2)
    frames = [Image.fromarray(frame) for frame in grid]
    durations = [int(1000 / fps)] * len(frames)
    durations[-1] *= 1 + hold_last
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return path
