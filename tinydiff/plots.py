"""Figures and kernel-free players for the course (matplotlib).

Players are `matplotlib.animation` HTML (`to_jshtml`): self-contained, with a scrub slider, so a reader
of the static book can scrub timesteps too. The live ipywidgets versions are in `tinydiff.widgets`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation

from .errors import InputError
from .schedule import NoiseSchedule


def strip(video, gap: int = 1, fill: float = 0.5) -> np.ndarray:
    """A video's frames side by side: (T, H, W) -> (H, T*(W+gap)-gap) float array, frames split by grey."""
    video = np.asarray(torch.as_tensor(video, dtype=torch.float32))
    if video.ndim != 3 or 0 in video.shape:
        raise InputError(f"a video must be shaped (T, H, W), got {video.shape}")
    t, h, w = video.shape
    out = np.full((h, t * (w + gap) - gap), fill, dtype=np.float32)
    for k in range(t):
        out[:, k * (w + gap):k * (w + gap) + w] = video[k]
    return out


def show_videos(videos, labels=None, vmin: float = 0.0, vmax: float = 1.0, width: float = 12.0):
    """One row per video, its frames left to right. videos: (N, T, H, W) (or one (T, H, W)). Returns the figure."""
    videos = torch.as_tensor(videos, dtype=torch.float32)
    videos = videos[None] if videos.dim() == 3 else videos
    n, t = videos.shape[:2]
    labels = list(labels) if labels is not None else [None] * n
    if len(labels) != n:
        raise InputError(f"{len(labels)} labels for {n} videos")
    fig, axes = plt.subplots(n, 1, figsize=(width, width / t * n * 1.15 + 0.3), squeeze=False)
    for ax, video, label in zip(axes[:, 0], videos, labels):
        ax.imshow(strip(video), cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        if label:
            ax.set_ylabel(label, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def player(frames, titles=None, fps: float = 4.0, vmin: float = 0.0, vmax: float = 1.0, scale: int = 2):
    """A scrubbable HTML player over pictures: frames (S, H, W) (e.g. strips), one title per picture.

    Each picture is drawn `scale` screen pixels per data pixel (kept small: the player embeds every
    picture). Returns an `IPython.display.HTML` object; the figure is closed so it is not shown twice.
    """
    from IPython.display import HTML

    frames = [np.asarray(f, dtype=np.float32) for f in frames]
    if not frames:
        raise InputError("a player needs at least one picture")
    titles = list(titles) if titles is not None else [""] * len(frames)
    h, w = frames[0].shape
    dpi = 100
    fig = plt.figure(figsize=(w * scale / dpi, (h * scale + 24) / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, h * scale / (h * scale + 24)))
    image = ax.imshow(frames[0], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    title = fig.text(0.5, 1 - 12 / (h * scale + 24), titles[0], ha="center", va="center", fontsize=9)
    ax.set_axis_off()

    def draw(i):
        image.set_data(frames[i])
        title.set_text(titles[i])
        return image, title

    movie = animation.FuncAnimation(fig, draw, frames=len(frames), interval=1000 / fps, blit=False)
    html = movie.to_jshtml(fps=fps, default_mode="once")
    plt.close(fig)
    return HTML(html)


def noised(video, schedule: NoiseSchedule, timesteps, seed: int = 0) -> torch.Tensor:
    """x_t of one video at several timesteps, all with the same noise (so t alone changes the picture).

    video: (T, H, W) in [0, 1]; returns (len(timesteps), T, H, W) in model space (about [-1, 1] and beyond).
    """
    x0 = torch.as_tensor(video, dtype=torch.float32)[None] * 2 - 1  # (1, T, H, W) in [-1, 1]
    t = torch.as_tensor(list(timesteps), dtype=torch.long)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    return schedule.q_sample(x0.expand(len(t), -1, -1, -1), t, noise.expand(len(t), -1, -1, -1))


def noising_player(video, schedule: NoiseSchedule, timesteps=None, seed: int = 0, fps: float = 4.0):
    """Scrub t: the writing video (all frames) sinking into noise under q(x_t | x_0)."""
    if timesteps is None:
        timesteps = [*range(0, schedule.num_timesteps, 100), schedule.num_timesteps - 1]
    timesteps = list(timesteps)
    x_t = noised(video, schedule, timesteps, seed)
    sa = schedule.alphas_cumprod[timesteps].sqrt()
    return player([strip((x + 1) / 2) for x in x_t],
                  [f"t = {t}   sqrt(alpha_bar) = {s:.3f}" for t, s in zip(timesteps, sa.tolist())], fps=fps)


def plot_schedules(*schedules: NoiseSchedule):
    """alpha_bar_t and the signal-to-noise ratio (log scale) against t for each schedule."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for schedule in schedules:
        t = np.arange(schedule.num_timesteps)
        left.plot(t, schedule.alphas_cumprod.numpy(), label=schedule.name)
        right.semilogy(t, schedule.snr().numpy(), label=schedule.name)
    left.set(xlabel="t", ylabel=r"$\bar\alpha_t$", title="signal kept: $\\bar\\alpha_t$")
    right.set(xlabel="t", ylabel="SNR", title=r"SNR $= \bar\alpha_t / (1 - \bar\alpha_t)$")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def show_preprocessing(sources, names=None):
    """For each drawing: the file as it is, its ink map, and the MNIST-style digit the model sees.

    sources: paths, PIL images or arrays (anything `tinydiff.drawing.digit_from_image` takes).
    Returns the figure (one row per drawing).
    """
    from PIL import Image

    from .drawing import digit_from_image, ink_map, read_image

    sources = list(sources)
    names = list(names) if names is not None else [getattr(s, "name", f"drawing {i + 1}") for i, s in enumerate(sources)]
    fig, axes = plt.subplots(len(sources), 3, figsize=(6.6, 2.2 * len(sources)), squeeze=False)
    for row, source, name in zip(axes, sources, names):
        if isinstance(source, Image.Image):
            shown, ink = source, ink_map(source)
        elif isinstance(source, np.ndarray):
            shown, ink = source, None
        else:
            with Image.open(source) as image:
                shown = image.convert("RGBA")
            ink = read_image(source)
        row[0].imshow(shown, cmap="gray")
        row[0].set_ylabel(name, fontsize=8)
        if ink is not None:
            row[1].imshow(ink, cmap="gray", vmin=0, vmax=1)
        row[2].imshow(digit_from_image(source), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        for ax in row:
            ax.set_xticks([]), ax.set_yticks([])
    for ax, title in zip(axes[0], ("as drawn", "ink (polarity found)", "28x28, as MNIST")):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def video_frames(videos, columns: int | None = None):
    """Several videos (N, T, H, W) in [0, 1] tiled `columns` wide (default: as square as possible):
    one picture per frame, (H', W') in [0, 1] like every picture the players and sliders take, and
    their titles."""
    from .viz import video_grid

    grid = video_grid(videos, columns=columns)  # (T, H', W') uint8
    return [frame / 255.0 for frame in grid], [f"frame {k + 1} of {len(grid)}" for k in range(len(grid))]


def video_player(videos, fps: float = 4.0, scale: int = 4, columns: int | None = None):
    """A scrubbable player over the frames of several videos at once (see `video_frames`)."""
    pictures, titles = video_frames(videos, columns)
    return player(pictures, titles, fps=fps, scale=scale)


def trajectory(steps, every: int = 1, video: int = 0):
    """Pictures of a sampling run: for every `every`-th step, x_t (top) over the predicted x_0 (bottom).

    steps: the `SamplerStep`s of one run (e.g. `list(pipe.steps(...))`); video: which video of the batch.
    Returns (pictures (S, 2H+1, T(W+1)-1) in [0, 1], titles).
    """
    steps = list(steps)
    if not steps:
        raise InputError("no sampler steps to show")
    chosen = steps[::every] if steps[-1] is steps[::every][-1] else [*steps[::every], steps[-1]]
    pictures, titles = [], []
    for step in chosen:
        top = strip(((step.x_t[video, 0] + 1) / 2).clamp(0, 1))
        bottom = strip(((step.pred_x0[video, 0] + 1) / 2).clamp(0, 1))
        pictures.append(np.concatenate([top, np.full((1, top.shape[1]), 0.5, np.float32), bottom]))
        titles.append(f"step {step.index + 1} of {len(steps)}, t = {step.t}: x_t (top), predicted x_0 (bottom)")
    return pictures, titles


def trajectory_player(steps, every: int = 1, video: int = 0, fps: float = 4.0):
    """A scrubbable player over a sampling run (see `trajectory`)."""
    pictures, titles = trajectory(steps, every, video)
    return player(pictures, titles, fps=fps)
