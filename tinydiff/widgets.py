"""Live widgets for the course (ipywidgets; only API shared by ipywidgets 7, as on Colab, and 8).

Two kinds: sliders over precomputed pictures (`picture_slider`, `timestep_slider`, `frame_slider`,
`trajectory_slider`), which answer at once, and widgets that compute again on every change
(`live_noising`: schedule and t; `live_sampler`: sampler, steps, eta, guidance, digit, network;
`drawing_animator`: your drawing; `live_predictor`: moving digits from 1 to 10 given frames). Pictures are shown at their own pixel size and titles wrap.
Widgets need a running kernel; the rendered book shows kernel-free players or grids instead (see
`plots`: `player`, `video_player`, `trajectory_player`, `noising_player`).
"""

from __future__ import annotations

import html
import io

import numpy as np
from PIL import Image

from .drawing import digit_from_image, example_drawings
from .errors import InputError, TinydiffError
from .plots import noised, strip
from .schedule import NoiseSchedule
from .viz import gif_bytes


def uploaded_files(value) -> list[tuple[str, bytes]]:
    """The files in a `FileUpload.value`, as (name, bytes), for either ipywidgets generation.

    ipywidgets 8: a tuple of dicts {"name", "content" (memoryview), ...}; ipywidgets 7: a dict
    {name: {"content": bytes, "metadata": {...}}}.
    """
    if isinstance(value, dict):
        return [(name, bytes(item["content"])) for name, item in value.items()]
    return [(item["name"], bytes(item["content"])) for item in value]


def _png(array: np.ndarray, scale: int) -> bytes:
    """A (H, W) picture (uint8, or float in [0, 1]) as PNG bytes, enlarged `scale` times without smoothing."""
    if array.dtype != np.uint8:
        array = (np.clip(array, 0, 1) * 255).round().astype(np.uint8)
    image = Image.fromarray(array).resize((array.shape[1] * scale, array.shape[0] * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _image(png: bytes, fmt: str = "png"):
    """An ipywidgets Image shown at its own pixel size: a flex box (VBox, HBox) stretches a child without
    a fixed width to the full width of the page, blurring small pictures into a smear. A picture wider
    than the page shrinks whole: the page caps the width (max-width) and the height follows (auto); a
    fixed height would squeeze it sideways. align-self keeps a row (HBox) from stretching its height to
    the row's tallest picture."""
    import ipywidgets as widgets

    view = widgets.Image(format=fmt, layout=widgets.Layout(height="auto", max_width="100%", align_self="flex-start"))
    _show(view, png)
    return view


def _show(view, picture: bytes) -> None:
    """Put new PNG or GIF bytes in an `_image` view, resized to the new picture's own width."""
    view.value = picture
    view.layout.width = f"{Image.open(io.BytesIO(picture)).size[0]}px"


def _title(text: str = ""):
    """A title line that wraps instead of being cut: ipywidgets' Label clips long text with an ellipsis."""
    import ipywidgets as widgets

    return widgets.HTML(value=html.escape(text))


def drawing_animator(pipe, steps: int = 20, seed: int = 0, scale: int = 6):
    """Upload a drawing (or pick a shipped example), see it made MNIST-like, then watch it written.

    Args:
        pipe: a `Pipeline` (e.g. `tinydiff.pretrained("animator")`).
        steps: DDIM steps per animation.
    Returns:
        an ipywidgets VBox to display.
    """
    import ipywidgets as widgets

    examples = {path.name: path for path in example_drawings()}
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload")
    choice = widgets.Dropdown(options=["(upload your own)", *examples], value=next(iter(examples)),
                              description="Drawing")
    blank = _png(np.zeros((28, 28), dtype=np.uint8), scale)
    digit_view, video_view = _image(blank), _image(blank, "gif")
    status = widgets.HTML()

    def show(source, name: str) -> None:
        try:
            digit = digit_from_image(source)
            status.value = f"<i>{html.escape(name)}: animating ({steps} DDIM steps)...</i>"
            video = pipe.animate(digit, steps=steps, seed=seed)
        except TinydiffError as error:
            status.value = f"<b>{html.escape(name)}</b>: {html.escape(str(error))}"
            for view in (digit_view, video_view):  # not the last drawing's pictures beside this one's error
                _show(view, blank)
            return
        _show(digit_view, _png(digit, scale))
        _show(video_view, gif_bytes(video, scale=scale))
        status.value = f"{html.escape(name)}: left, the digit the model sees (28×28); right, its writing video"

    def on_choice(change) -> None:
        if change["new"] in examples:
            show(examples[change["new"]], change["new"])

    def on_upload(change) -> None:
        files = uploaded_files(change["new"])
        if files:
            name, content = files[-1]
            choice.value = "(upload your own)"
            show(content, name)

    choice.observe(on_choice, names="value")
    upload.observe(on_upload, names="value")
    show(examples[choice.value], choice.value)
    return widgets.VBox([widgets.HBox([choice, upload]), widgets.HBox([digit_view, video_view]), status])



def picture_slider(pictures, titles=None, description: str = "step", scale: int = 4):
    """A slider over precomputed pictures (H, W) in [0, 1]: moving it swaps the picture instantly.

    With titles, the title names the picture and the slider shows no number of its own (its index counts
    from 0, where frames and steps count from 1). Returns an ipywidgets VBox (slider, title, picture).
    """
    import ipywidgets as widgets

    pngs = [_png(np.asarray(p, dtype=np.float32), scale) for p in pictures]
    if not pngs:
        raise InputError("a slider needs at least one picture")
    slider = widgets.IntSlider(value=0, min=0, max=len(pngs) - 1, step=1, description=description,
                               continuous_update=True, readout=titles is None)
    titles = list(titles) if titles is not None else [""] * len(pngs)
    label = _title(titles[0])
    view = _image(pngs[0])

    def update(change) -> None:
        _show(view, pngs[change["new"]])
        label.value = html.escape(titles[change["new"]])

    slider.observe(update, names="value")
    return widgets.VBox([slider, label, view])


def timestep_slider(video, schedule: NoiseSchedule, every: int = 10, seed: int = 0, scale: int = 2):
    """Live: drag t and watch the writing video (all frames) under q(x_t | x_0), same noise throughout."""
    timesteps = list(range(0, schedule.num_timesteps, every))
    x_t = noised(video, schedule, timesteps, seed)
    pictures = [strip((x + 1) / 2) for x in x_t]
    titles = [f"t = {t}" for t in timesteps]
    return picture_slider(pictures, titles, description=f"t / {every}", scale=scale)


def frame_slider(videos, columns: int | None = None, scale: int = 4):
    """Live: drag through the frames of several videos at once (see `tinydiff.plots.video_frames`)."""
    from .plots import video_frames

    pictures, titles = video_frames(videos, columns)
    return picture_slider(pictures, titles, description="frame", scale=scale)


def trajectory_slider(steps, every: int = 1, video: int = 0, scale: int = 2):
    """Live: drag through a sampling run, x_t over the predicted x_0 (see `tinydiff.plots.trajectory`)."""
    from .plots import trajectory

    pictures, titles = trajectory(steps, every, video)
    return picture_slider(pictures, titles, description="step", scale=scale)


def live_noising(video, schedules=("linear", "cosine"), t: int = 250, seed: int = 0, scale: int = 2):
    """Live: pick a noise schedule and a timestep; q(x_t | x_0) of the video (all frames) is computed anew
    (same noise throughout, so only the schedule and t change the picture). video: (F, H, W) in [0, 1]."""
    import ipywidgets as widgets

    tables = {name: NoiseSchedule(name) for name in schedules}
    first = tables[schedules[0]]
    schedule = widgets.Dropdown(options=list(schedules), value=schedules[0], description="schedule")
    step = widgets.IntSlider(value=t, min=0, max=first.num_timesteps - 1, step=1, description="t",
                             continuous_update=True)
    title, view = _title(), _image(_png(strip(np.asarray(video, dtype=np.float32)), scale))

    def update(change=None) -> None:
        chosen = tables[schedule.value]
        x_t = noised(video, chosen, [step.value], seed)[0]  # (F, H, W)
        _show(view, _png(strip(((x_t + 1) / 2).clamp(0, 1).numpy()), scale))
        signal = chosen.alphas_cumprod[step.value].item()
        title.value = html.escape(f"{schedule.value} schedule, t = {step.value}: signal variance "
                                  f"alpha_bar = {signal:.3f}, noise variance {1 - signal:.3f}")

    schedule.observe(update, names="value")
    step.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([schedule, step]), title, view])


def live_sampler(pipes, n: int = 4, digits=None, digit: int | None = 7, guidance: float | None = None,
                 steps: int = 10, sampler: str = "ddim", eta: float = 0.0, seed: int = 0, scale: int = 3):
    """Live: change the sampler, its steps, eta, the guidance, the digit (or the network) and the model
    samples again; a few seconds on 2 CPU cores at the defaults.

    Args:
        pipes: a `Pipeline`, or {name: Pipeline} to choose among (a "network" menu).
        n: videos generated from noise (ignored with `digits`).
        digits: (N, 28, 28) uint8 digits to animate instead of generating (image-to-video; no digit menu).
        digit: the digit asked for at first (None: any digit, unconditional); only for models with labels.
        guidance, steps, sampler, eta, seed: the first settings (see `Pipeline.generate`); DDPM's 1,000
            steps are too slow to be live, so the menu offers DDIM and DPM-Solver++(2M).
    Returns:
        an ipywidgets VBox: the controls, a status line (what was sampled, in how many seconds), the videos.
    """
    import time

    import ipywidgets as widgets

    from .pipeline import LABEL_GUIDANCE

    pipes = pipes if isinstance(pipes, dict) else {"model": pipes}
    if not pipes:
        raise InputError("no model to sample")
    network = widgets.Dropdown(options=list(pipes), description="network", layout={"display": "" if len(pipes) > 1 else "none"})
    labelled = any(p.cfg.labels for p in pipes.values()) and digits is None
    asked = widgets.Dropdown(options=[("any", None)] + [(str(d), d) for d in range(10)], value=digit if labelled else None,
                             description="digit", layout={"display": "" if labelled else "none"})
    scale_guidance = widgets.FloatSlider(value=guidance if guidance is not None else LABEL_GUIDANCE if labelled else 1.0,
                                         min=0.0, max=5.0, step=0.5, description="guidance", continuous_update=False)
    menu = widgets.Dropdown(options=[("DDIM", "ddim"), ("DPM-Solver++(2M)", "dpm++2m")], value=sampler,
                            description="sampler")
    count = widgets.IntSlider(value=steps, min=1, max=50, description="steps", continuous_update=False)
    noise = widgets.FloatSlider(value=eta, min=0.0, max=1.0, step=0.1, description="eta", continuous_update=False)
    status = _title()
    blank = _png(np.zeros((28, 28 * (len(digits) if digits is not None else n)), dtype=np.uint8), scale)
    view = _image(blank, "gif")

    def update(change=None) -> None:
        noise.disabled = menu.value != "ddim"  # eta is DDIM's; DPM-Solver++(2M) is deterministic
        guide = scale_guidance.value
        if digits is None and asked.value is None:  # nothing to guide toward
            guide = None
        pipe = pipes[network.value]
        options = dict(steps=count.value, sampler=menu.value, seed=seed, eta=noise.value if menu.value == "ddim" else 0.0)
        status.value = "<i>sampling ...</i>"
        started = time.perf_counter()
        try:
            if digits is not None:
                videos = pipe.animate(digits, guidance=guide, **options)
            else:
                videos = pipe.generate(n, digit=asked.value if pipe.cfg.labels else None, guidance=guide, **options)
        except TinydiffError as error:
            status.value = f"<b>{html.escape(str(error))}</b>"
            return
        _show(view, gif_bytes(videos, scale=scale, columns=len(videos)))
        what = "animated" if digits is not None else "any digit" if asked.value is None else f"digit {asked.value}"
        status.value = html.escape(f"{network.value}: {what}, {menu.label} {count.value} steps"
                                   + (f", eta {noise.value:g}" if menu.value == "ddim" else "")
                                   + (f", guidance {guide:g}" if guide is not None else "")
                                   + f", seed {seed}: {time.perf_counter() - started:.1f} s")

    for control in (network, asked, scale_guidance, menu, count, noise):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([network, asked, menu]), widgets.HBox([count, noise, scale_guidance]), status, view])


def live_predictor(pipe, videos, given: int = 10, frames: int = 10, steps: int = 10, seed: int = 0, scale: int = 2):
    """Live: choose how many past frames the moving-digits model sees, and it predicts again.

    Args:
        pipe: a `MotionPipeline`.
        videos: (N, T, H, W) true videos in [0, 1], T > frames: up to 10 first frames (fewer when T is
            shorter) can be given, and the truth after them is shown above the prediction.
        given, frames, steps, seed: the first settings (see `MotionPipeline.predict`).
    Returns:
        an ipywidgets VBox: the controls, a status line, and a GIF with the truth (top row) over the
        prediction (bottom row); the given frames are the same in both.
    """
    import time

    import ipywidgets as widgets
    import torch

    videos = torch.as_tensor(videos).float()
    most = min(10, videos.shape[1] - frames) if videos.dim() == 4 else 0
    if most < 1:
        raise InputError(f"videos must be (N, T, H, W) with T >= {frames + 1}, got {tuple(videos.shape)}")
    known = widgets.IntSlider(value=min(given, most), min=1, max=most, description="given", continuous_update=False)
    count = widgets.IntSlider(value=steps, min=1, max=50, description="steps", continuous_update=False)
    status = _title()
    n, _, h, w = videos.shape
    view = _image(_png(np.zeros((2 * h, n * w), dtype=np.uint8), scale), "gif")

    def update(change=None) -> None:
        k = known.value
        known.disabled = count.disabled = True  # one prediction at a time
        status.value = "<i>predicting ...</i>"
        started = time.perf_counter()
        try:
            predicted = pipe.predict(videos[:, :k], frames=frames, steps=count.value, seed=seed)
        except TinydiffError as error:
            status.value = f"<b>{html.escape(str(error))}</b>"
            return
        finally:
            known.disabled = count.disabled = False
        truth = videos[:, :k + frames]
        shown = torch.cat([truth, torch.cat([videos[:, :k], predicted], dim=1)])  # truth row over prediction row
        _show(view, gif_bytes(shown, scale=scale, columns=n, hold_last=2))
        status.value = html.escape(f"top: the truth; bottom: {k} given frames, then {frames} predicted "
                                   f"(DDIM {count.value} steps, seed {seed}): {time.perf_counter() - started:.1f} s")

    for control in (known, count):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([known, count]), status, view])
