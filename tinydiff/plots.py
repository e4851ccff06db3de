"""Figures and kernel-free players for the course (matplotlib).

Players are `matplotlib.animation` HTML (`to_jshtml`): self-contained, with a scrub slider, so a reader
of the static book can scrub timesteps too. The live ipywidgets versions are in `tinydiff.widgets`.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation
from matplotlib.figure import Figure

from .errors import InputError
from .metrics import ink
from .model import ModelConfig
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


# Colours of `frame_changes`: ink kept from the previous frame, ink that appears, ink that vanishes.
KEPT, ADDED, VANISHED = (0.45, 0.45, 0.45), (0.25, 0.85, 0.25), (1.0, 0.2, 0.2)


def frame_changes(videos) -> np.ndarray:
    """What changes from each frame to the next: (N, T, H, W) in [0, 1] -> (N, T-1, H, W, 3) RGB in [0, 1].

    Picture k compares frames k and k+1 (ink = value above 0.5): kept ink grey, new ink green, ink that
    vanishes red, no ink black. A writing video only adds ink, so it never shows red.
    """
    videos = torch.as_tensor(videos, dtype=torch.float32)
    if videos.dim() != 4 or videos.shape[1] < 2 or 0 in videos.shape:
        raise InputError(f"videos must be shaped (N, T >= 2, H, W), got {tuple(videos.shape)}")
    mask = ink(videos)
    before, after = mask[:, :-1, ..., None], mask[:, 1:, ..., None]  # (N, T-1, H, W, 1)
    out = torch.zeros(*before.shape[:-1], 3)
    for mask, colour in ((before & after, KEPT), (~before & after, ADDED), (before & ~after, VANISHED)):
        out = torch.where(mask, torch.tensor(colour), out)
    return out.numpy()


def show_frame_changes(videos, labels=None, width: float = 12.0) -> Figure:
    """One row per video (N, T, H, W): `frame_changes` from frames 1 to 2 on the left to T-1 to T on the right."""
    changes = frame_changes(videos)
    n = len(changes)
    labels = list(labels) if labels is not None else [None] * n
    if len(labels) != n:
        raise InputError(f"{len(labels)} labels for {n} videos")
    fig, axes = plt.subplots(n, 1, figsize=(width, width / changes.shape[1] * n * 1.15 + 0.5), squeeze=False)
    for ax, video, label in zip(axes[:, 0], changes, labels):
        ax.imshow(np.stack([strip(video[..., c], fill=1.0) for c in range(3)], axis=-1), interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        if label:
            ax.set_ylabel(label, rotation=0, ha="right", va="center")
    axes[0, 0].set_title("frame k to k + 1: ink kept (grey), added (green), vanished (red)", fontsize=10)
    fig.tight_layout()
    return fig


def _text_size(texts, fontsize: float, dpi: int) -> tuple[float, float]:
    """Width and height in pixels of the largest of `texts` drawn at `fontsize` points."""
    probe = plt.figure(dpi=dpi)
    renderer = probe.canvas.get_renderer()
    boxes = [probe.text(0, 0, text or " ", fontsize=fontsize).get_window_extent(renderer) for text in texts]
    plt.close(probe)
    return max(box.width for box in boxes), max(box.height for box in boxes)


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
    dpi, pad, fontsize = 100, 6, 9
    # The picture keeps `scale` pixels per data pixel; the figure widens (white margins) to the longest
    # title, so that no title is clipped at the edges of a narrow picture.
    title_w, title_h = _text_size(titles, fontsize, dpi)
    fig_w, fig_h, head = max(w * scale, title_w + 2 * pad), h * scale + title_h + 2 * pad, title_h + 2 * pad
    fig = plt.figure(figsize=(fig_w / dpi, fig_h / dpi), dpi=dpi)
    ax = fig.add_axes(((fig_w - w * scale) / 2 / fig_w, 0, w * scale / fig_w, h * scale / fig_h))
    image = ax.imshow(frames[0], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    title = fig.text(0.5, 1 - head / 2 / fig_h, titles[0], ha="center", va="center", fontsize=fontsize)
    ax.set_axis_off()

    def draw(i):
        image.set_data(frames[i])
        title.set_text(titles[i])
        return image, title

    movie = animation.FuncAnimation(fig, draw, frames=len(frames), interval=1000 / fps, blit=False)
    html = offline_buttons(movie.to_jshtml(fps=fps, default_mode="once"))
    plt.close(fig)
    return HTML(html)


# matplotlib's player draws its buttons with Font Awesome 4, linked from a CDN: offline (the book opened from
# disk, a notebook without internet) they would be blank and the page would log a failed load. Plain
# characters draw them anywhere.
_BUTTON_GLYPHS = {"fa-minus": "\u2212", "fa-fast-backward": "\u00ab", "fa-step-backward": "\u2039",
                  "fa-play fa-flip-horizontal": "\u25c0", "fa-pause": "\u275a\u275a", "fa-play": "\u25b6",
                  "fa-step-forward": "\u203a", "fa-fast-forward": "\u00bb", "fa-plus": "+"}


def offline_buttons(html: str) -> str:
    """A `to_jshtml` player without its CDN stylesheet, its button icons as plain characters."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https://[^"]*font-awesome[^"]*">\n?', "", html)
    return re.sub(r'<i class="fa ([a-z -]+)"></i>', lambda m: _BUTTON_GLYPHS[m.group(1)], html)


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
                  [rf"t = {t}   $\sqrt{{\bar\alpha_t}}$ = {s:.3f}" for t, s in zip(timesteps, sa.tolist())], fps=fps)


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


def traced_shapes(cfg: ModelConfig, batch: int = 1) -> dict[str, tuple[int, ...]]:
    """The shape of every stage's output (and of a few inputs), from one forward pass of `VideoUNet(cfg)` with
    hooks on its stages: {"inputs", "space-to-depth", "stem", "down 0 in", "down 0", ..., "middle",
    "global context", "up 1 in", "up 1", "upsample 0", ..., "head", "output", "time", "label", "frame"}."""
    import torch

    from .model import VideoUNet

    with torch.random.fork_rng():  # building draws initial weights: leave the caller's random stream alone
        model = VideoUNet(cfg).eval()
    shapes, hooks = {}, []

    def keep(name: str, when: str = "out"):
        def hook(module, args, output=None):
            shapes[name] = tuple((args[0] if when == "in" else output).shape)
        return hook

    stages = {"stem": model.stem, "middle": model.middle, "head": model.head, "time": model.time}
    stages.update({f"down {i}": level for i, level in enumerate(model.down)})
    stages.update({f"up {i}": level for i, level in enumerate(model.up)})
    stages.update({f"upsample {i}": conv for i, conv in enumerate(model.upsample)})
    stages.update({name: module for name, module in (("global context", model.context), ("label", model.label),
                                                     ("frame", model.frame)) if module is not None})
    for name, module in stages.items():
        hooks.append(module.register_forward_hook(keep(name)))
    hooks.append(model.stem.register_forward_pre_hook(keep("space-to-depth", "in")))
    for name in [n for n in stages if n.startswith(("down ", "up "))]:
        hooks.append(stages[name].register_forward_pre_hook(keep(f"{name} in", "in")))
    x = torch.zeros(batch, 1, cfg.frames, cfg.size, cfg.size)
    t = torch.zeros(batch, dtype=torch.long)
    condition = None
    if cfg.conditional:
        condition = torch.zeros(batch, 1, cfg.size, cfg.size)
    elif cfg.known_frames:
        condition = torch.zeros(batch, 2, cfg.frames, cfg.size, cfg.size)
    try:
        with torch.no_grad():
            shapes["inputs"] = tuple(model._inputs(x, condition).shape)
            shapes["output"] = tuple(model(x, t, condition).shape)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def architecture(cfg: ModelConfig, batch: int = 1) -> Figure:
    """The U-Net that `tinydiff.model.VideoUNet(cfg)` builds, one box per stage.

    Every box names its stage and the shape (B, C, F, H, W) of the tensor it outputs, as one forward
    pass of the network measures it (`traced_shapes`), so the figure cannot drift from the model. Colours
    mark where the condition enters (the input planes), where the timestep, label and frame-position
    embeddings enter (every res block) and the levels with temporal attention. Each box's text has the
    stage as its gid ("inputs", "down 0", "middle", "up 1", ...). Returns the figure (12 in wide).
    """
    from matplotlib.patches import FancyBboxPatch

    traced = traced_shapes(cfg, batch)
    levels, p, f = len(cfg.channels), cfg.patch, cfg.frames
    attention = [cfg.temporal_attention and i in cfg.attention_levels for i in range(levels)]
    planes = ["x_t"]
    if cfg.conditional:
        planes += ["condition c"] + ["ink distance of c"] * cfg.ink_distance
    if cfg.known_frames:
        planes += ["known frames", "mask"]
    planes += ["row coordinate", "frame coordinate"] if cfg.coord_channels else []
    blocks = f"{cfg.blocks_per_level} res block" + "s" * (cfg.blocks_per_level > 1)
    n_planes = f"{len(planes)} plane" + "s" * (len(planes) > 1)
    conv = "DualConv" if cfg.temporal_conv else "conv 1×3×3"
    heads = f"temporal attention, {cfg.attention_heads} heads"
    colours = {"plain": ("#f2f2f2", "#555555"), "attention": ("#d9f0e3", "#1b9e77"),
               "condition": ("#fde3cc", "#d95f02"), "embedding": ("#e8e6f4", "#7570b3")}
    conditioned = cfg.conditional or cfg.known_frames

    def shape(stage: str) -> str:
        return "(" + ", ".join(str(n) for n in traced[stage]) + ")"

    def channels(stage: str) -> int:
        return traced[stage][1]

    def side(stage: str) -> int:
        return traced[stage][-1]

    top = 3 if p > 1 else 2  # rows above the first level: inputs, space-to-depth (if any), stem
    pitch = 0.95  # inches between rows; the axes' data units are inches (the height is set at the end)
    fig = plt.figure(figsize=(12, 1 + (top + levels + 3) * pitch))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    left, right = (0.45, 4.15), (7.85, 11.55)  # the encoder's column (going down), the decoder's (going up)
    down_x, up_x = sum(left) / 2, sum(right) / 2

    def y(row: int) -> float:
        return 0.75 + row * pitch

    def box(span, row, text, kind="plain", gid=None):
        lines = text.count("\n") + 1
        h = 0.16 * lines + 0.14
        face, edge = colours[kind]
        ax.add_patch(FancyBboxPatch((span[0], y(row) - h / 2), span[1] - span[0], h, gid=gid, facecolor=face,
                                    edgecolor=edge, linewidth=1.2, boxstyle="round,pad=0,rounding_size=0.06"))
        ax.text(sum(span) / 2, y(row), text, ha="center", va="center", fontsize=9, gid=gid, linespacing=1.25)
        return span[0], span[1], y(row) - h / 2, y(row) + h / 2

    def arrow(start, end, label=None, colour="#333333", **where):
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.1, shrinkA=0,
                                                               shrinkB=0))
        if label:
            ax.text(*where.pop("at", ((start[0] + end[0]) / 2 + 0.08, (start[1] + end[1]) / 2)), label,
                    fontsize=8, color=colour, va="center", **where)

    ax.text(6, 0.2, f"VideoUNet: every tensor is (B, C, F, H, W), here B = {batch}, F = {f} frames",
            ha="center", va="center", fontsize=10, weight="bold")
    inputs = box(left, 0, f"inputs: {n_planes} {shape('inputs')}\n"
                 f"{', '.join(planes[:3])}" + (f"\n{', '.join(planes[3:])}" if planes[3:] else ""),
                 "condition" if conditioned else "plain", "inputs")
    if cfg.conditional:
        c = box((4.6, 7.4), 0, f"condition c ({batch}, 1, {cfg.size}, {cfg.size})\n"
                "the finished digit; zeros = none", "condition", "condition")
        arrow((c[0], y(0)), (inputs[1], y(0)), colour=colours["condition"][1])
        ax.text(6, c[3] + 0.12, "copied into every frame" + ", with its distance transform" * cfg.ink_distance,
                ha="center", va="center", fontsize=8, color=colours["condition"][1])
    channels_in = channels("space-to-depth")
    stack = [inputs]
    if p > 1:
        stack.append(box(left, 1, f"space-to-depth {p}×{p}: {n_planes} × {p * p} = {channels_in} "
                         f"channels\n{shape('space-to-depth')}", gid="space-to-depth"))
    stack.append(box(left, top - 1, f"stem: {conv} {channels_in} → {channels('stem')}\n{shape('stem')}", gid="stem"))
    for i in range(levels):
        stage = f"down {i}"
        stack.append(box(left, top + i, f"down level {i} · {side(stage)}×{side(stage)}: {blocks} "
                         f"{channels(stage + ' in')} → {channels(stage)}" + f"\n+ {heads}" * attention[i]
                         + f"\n{shape(stage)}", "attention" if attention[i] else "plain", stage))
    for i, (upper, lower) in enumerate(zip(stack, stack[1:])):
        label = f"avg pool 1×2×2 → {shape(f'down {i - top + 1} in')}" if i >= top else None
        arrow((down_x, upper[3]), (down_x, lower[2]), label)
    rb, wl, deepest = top + levels, channels("middle"), side("middle")
    middle_text = (f"middle · {deepest}×{deepest}: {blocks} {wl} → {wl}" + f"\n+ {heads}" * attention[-1]
                   + f"\n{shape('middle')}")
    if cfg.global_context:
        ctx = box(left, rb, f"global context: + 1×1 conv of each frame's\nmax over H, W: {shape('global context')}\n"
                  f"{shape(f'down {levels - 1}')}", gid="global context")
        arrow((down_x, stack[-1][3]), (down_x, ctx[2]))
        mid = box(right, rb, middle_text, "attention" if attention[-1] else "plain", "middle")
        arrow((ctx[1], y(rb)), (mid[0], y(rb)))
    else:
        mid = box((2.0, 10.0), rb, middle_text, "attention" if attention[-1] else "plain", "middle")
        arrow((down_x, stack[-1][3]), (down_x, mid[2]))
    ups = {}
    for i in reversed(range(levels)):
        stage = f"up {i}"
        text = (f"up level {i} · {side(stage)}×{side(stage)}: concat skip {shape(stage + ' in')}\n"
                f"{blocks} {channels(stage + ' in')} → {channels(stage)}" + f" + {heads}" * attention[i]
                + f"\n{shape(stage)}")
        ups[i] = box(right, top + i, text, "attention" if attention[i] else "plain", f"up {i}")
        arrow((stack[top + i][1], y(top + i)), (ups[i][0], y(top + i)), "skip", "#888888", ha="center",
              at=(6, y(top + i) - 0.13))
        below = ups[i + 1] if i + 1 < levels else mid
        label = f"nearest ×2, conv 1×3×3 → {shape(f'upsample {i}')}" if i + 1 < levels else None
        arrow((up_x, below[2]), (up_x, ups[i][3]), label, ha="right", at=(up_x - 0.08, (below[2] + ups[i][3]) / 2))
    prediction = {"x0": "x_0", "eps": "the noise ε", "v": "v"}[cfg.prediction]
    head = box(right, top - 1, f"head: norm, act, {conv} {channels('up 0')} → {channels('head')}\n{shape('head')}",
               gid="head")
    out = [head]
    if p > 1:
        out.append(box(right, 1, f"depth-to-space {p}×{p}\n{shape('output')}", gid="depth-to-space"))
    out.append(box(right, 0, f"output: the predicted {prediction}\n{shape('output')}", gid="output"))
    arrow((up_x, ups[0][2]), (up_x, head[3]))
    for lower, upper in zip(out, out[1:]):
        arrow((up_x, lower[2]), (up_x, upper[3]))

    time = "t / T → MLP" if cfg.time_embedding == "mlp" else "t → sinusoidal features → MLP"
    emb_dim = traced["time"][-1]
    lines = [f"timestep {time}: {shape('time')}"]
    if cfg.labels:
        lines.append(f"+ label y (digit 0-9 or none) → learned embedding: {shape('label')}")
    if cfg.film:
        lines += [f"+ frame position → sinusoidal → Linear: {shape('frame')}",
                  f"= emb ({batch}, {f}, {emb_dim}) → scale and shift (FiLM) per frame, in every res block"]
    else:
        lines.append(f"= emb ({batch}, {emb_dim}) → added in every res block")
    emb = box((2.5, 9.5), rb + 1, "\n".join(lines), "embedding", "embedding")
    purple = colours["embedding"][1]
    across = (max(emb[0], mid[0]) + min(emb[1], mid[1])) / 2
    arrow((across, emb[2]), (across, mid[3]), colour=purple)
    for bus, edge, targets in ((0.2, emb[0], [stack[top + i] for i in range(levels)]),
                               (11.8, emb[1], list(ups.values()))):
        ax.plot([edge, bus, bus], [y(rb + 1), y(rb + 1), min(t[2] for t in targets) + 0.2], color=purple, lw=1.1)
        for target in targets:
            middle_y = (target[2] + target[3]) / 2
            arrow((bus, middle_y), (target[0] if bus < 6 else target[1], middle_y), colour=purple)
    norm = "GroupNorm per frame" if cfg.norm == "group" else "BatchNorm"
    mix = "spatial 1×3×3 + temporal 3×1×1 conv, summed" if cfg.temporal_conv else "spatial only: no temporal branch"
    notes = emb[3] + 0.3
    second = f"{norm} → FiLM(emb)" if cfg.film else f"{norm}(· + emb)"  # the block's second norm, with the embedding
    ax.text(6, notes, f"res block: {norm} → {cfg.activation} → {conv} → {second} → {cfg.activation} → {conv},"
            f" + skip.   {conv}: {mix}.", ha="center", va="center", fontsize=8)
    embeddings = "timestep" + " / label" * cfg.labels + " / frame position" * cfg.film + " embedding"
    legend = (("condition", "condition"), ("attention", "temporal attention"), ("embedding", embeddings))
    for x, (kind, text) in zip((3.0, 6.0, 9.0), legend):
        face, edge = colours[kind]
        ax.text(x, notes + 0.3, text, ha="center", va="center", fontsize=8, color=edge, gid="legend",
                bbox=dict(facecolor=face, edgecolor=edge, boxstyle="round,pad=0.25"))
    height = notes + 0.6
    fig.set_size_inches(12, height)
    ax.set_xlim(0, 12), ax.set_ylim(height, 0)
    return fig
