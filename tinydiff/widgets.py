"""Live widgets for the course (ipywidgets; only API shared by ipywidgets 7, as on Colab, and 8).

Widgets need a running kernel; the rendered book shows kernel-free players instead (see `plots`:
`player`, `video_player`, `trajectory_player`, `noising_player`).
"""

from __future__ import annotations

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


def drawing_animator(pipe, steps: int = 20, seed: int = 0, scale: int = 6):
    """Upload a drawing (or pick a shipped example), see it made MNIST-like, then watch it written.

    Args:
        pipe: a `Pipeline` (e.g. `tinydiff.pretrained("writer")`).
        steps: DDIM steps per animation.
    Returns:
        an ipywidgets VBox to display.
    """
    import ipywidgets as widgets

    examples = {path.name: path for path in example_drawings()}
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload")
    choice = widgets.Dropdown(options=["(upload your own)", *examples], value=next(iter(examples)),
                              description="Drawing")
    digit_view = widgets.Image(format="png", width=28 * scale, height=28 * scale)
    video_view = widgets.Image(format="gif", width=28 * scale, height=28 * scale)
    status = widgets.HTML()

    def show(source, name: str) -> None:
        try:
            digit = digit_from_image(source)
            status.value = f"<i>{name}: animating ({steps} DDIM steps)...</i>"
            video = pipe.animate(digit, steps=steps, seed=seed)
        except TinydiffError as error:
            status.value = f"<b>{name}</b>: {error}"
            return
        digit_view.value = _png(digit, scale)
        video_view.value = gif_bytes(video, scale=scale)
        status.value = f"{name}: left, the digit the model sees (28×28); right, its writing video"

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

    Returns an ipywidgets VBox (slider, title, picture).
    """
    import ipywidgets as widgets

    pngs = [_png(np.asarray(p, dtype=np.float32), scale) for p in pictures]
    if not pngs:
        raise InputError("a slider needs at least one picture")
    titles = list(titles) if titles is not None else [""] * len(pngs)
    slider = widgets.IntSlider(value=0, min=0, max=len(pngs) - 1, step=1, description=description,
                               continuous_update=True)
    label = widgets.Label(titles[0])
    view = widgets.Image(value=pngs[0], format="png")

    def update(change) -> None:
        view.value = pngs[change["new"]]
        label.value = titles[change["new"]]

    slider.observe(update, names="value")
    return widgets.VBox([slider, label, view])


def timestep_slider(video, schedule: NoiseSchedule, every: int = 10, seed: int = 0, scale: int = 3):
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


def trajectory_slider(steps, every: int = 1, video: int = 0, scale: int = 3):
    """Live: drag through a sampling run, x_t over the predicted x_0 (see `tinydiff.plots.trajectory`)."""
    from .plots import trajectory

    pictures, titles = trajectory(steps, every, video)
    return picture_slider(pictures, titles, description="step", scale=scale)
