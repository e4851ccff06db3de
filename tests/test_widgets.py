"""The live widgets show pictures at their own size and titles in full (checked on the widgets' pixels
and layout; JupyterLab itself is tried with ../shared/tools/live_widgets.py)."""

import io

import numpy as np
import pytest
from PIL import Image

from tinydiff.widgets import frame_slider, picture_slider

pytest.importorskip("ipywidgets")


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def test_a_picture_is_shown_at_its_own_pixel_size_not_stretched():
    picture = np.zeros((7, 5))
    picture[2, 3] = 1.0
    box = picture_slider([picture, 1 - picture], ["a", "b"], scale=4)
    view = box.children[2]
    pixels = png_pixels(view.value)
    assert pixels.shape == (28, 20), "each pixel enlarged 4 times, nothing else"
    assert view.layout.width == "20px", "a fixed width: a flex box cannot stretch it"
    # Wider than the page, it shrinks whole: a fixed height would squeeze it sideways.
    assert (view.layout.height, view.layout.max_width) == ("auto", "100%")
    assert view.layout.align_self == "flex-start", "nor can a row stretch its height to a taller neighbour"
    # Nearest-neighbour enlargement: the one white pixel is a sharp 4 x 4 block at rows 8-11, columns 12-15.
    expected = np.zeros((28, 20), dtype=np.uint8)
    expected[8:12, 12:16] = 255
    np.testing.assert_array_equal(pixels, expected)


def test_titles_wrap_instead_of_being_clipped():
    long = "frame 15 of 15: every video has finished writing its digit, " * 3
    box = picture_slider([np.zeros((2, 2)), np.ones((2, 2))], ["<short>", long], scale=2)
    slider, title, _ = box.children
    assert type(title).__name__ == "HTML", "a Label cuts long text with an ellipsis"
    assert title.value == "&lt;short&gt;"
    slider.value = 1
    assert title.value == long


def test_frame_slider_shows_grey_levels_of_every_video():
    import torch

    videos = torch.zeros(2, 15, 28, 28)
    videos[0, :, 0, 0] = 0.5  # mid grey in the first video's corner
    videos[1, -1] = 1.0  # the second video's last frame all white
    slider, title, view = frame_slider(videos, columns=2, scale=1).children
    assert title.value == "frame 1 of 15" and not slider.readout, "one count shown, from 1, not the index from 0"
    assert picture_slider([np.zeros((2, 2))]).children[0].readout, "without titles, the index is all there is"
    first = png_pixels(view.value)
    assert first[1:3, 1:3].max() in (127, 128), "0.5 shows grey, not white"
    slider.value = 14
    last = png_pixels(view.value)
    assert last.max() == 255 and last.shape == first.shape


def test_live_noising_computes_q_xt_for_the_chosen_schedule_and_t():
    import math

    import torch

    from tinydiff.widgets import live_noising

    video = torch.zeros(15, 28, 28)
    video[:, 10:18, 12:16] = 1.0
    box = live_noising(video, t=250, scale=1)
    (schedule, step), title, view = box.children[0].children, box.children[1], box.children[2]
    schedule.value = "cosine"
    # Nichol & Dhariwal's cosine schedule in closed form: alpha_bar(t) = f(t) / f(0), t counted from 1.
    f = lambda s: math.cos((s / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert f"alpha_bar = {f(251) / f(0):.3f}" in title.value
    noise = torch.randn((1, 15, 28, 28), generator=torch.Generator().manual_seed(0))[0]
    a = f(251) / f(0)
    x_t = math.sqrt(a) * (video * 2 - 1) + math.sqrt(1 - a) * noise
    expected = ((x_t + 1) / 2).clamp(0, 1)
    pixels = png_pixels(view.value).astype(float) / 255
    assert np.abs(pixels[:, :28] - expected[0].numpy()).max() < 0.01, "frame 1 of the strip is x_t's frame 1"
    step.value = 999
    assert "alpha_bar = 0.000" in title.value


@pytest.fixture(scope="module")
def labelled_pipe():
    import torch

    from tinydiff import Pipeline, VideoUNet, preset

    torch.manual_seed(0)
    return Pipeline(VideoUNet(preset("tiny")), device="cpu")


def test_live_sampler_shows_what_generate_returns(labelled_pipe):
    from tinydiff.viz import gif_bytes
    from tinydiff.widgets import live_sampler

    box = live_sampler(labelled_pipe, n=3, digit=7, steps=3)
    (network, digit, sampler), (steps, eta, guidance) = box.children[0].children, box.children[1].children
    status, view = box.children[2], box.children[3]
    expected = labelled_pipe.generate(3, digit=7, steps=3, seed=0)
    assert view.value == gif_bytes(expected, scale=3, columns=3)
    assert view.layout.width == f"{Image.open(io.BytesIO(view.value)).size[0]}px", "the GIF's own width, border included"
    assert "digit 7" in status.value and "guidance 2" in status.value and network.layout.display == "none"
    guidance.value = 0.0
    assert view.value == gif_bytes(labelled_pipe.generate(3, steps=3, seed=0), scale=3, columns=3), \
        "guidance 0 is the unconditional model"
    digit.value = None
    assert "any digit" in status.value and "guidance" not in status.value
    sampler.value = "dpm++2m"
    assert eta.disabled and "DPM-Solver++(2M) 3 steps" in status.value
    assert view.value == gif_bytes(labelled_pipe.generate(3, steps=3, sampler="dpm++2m", seed=0), scale=3, columns=3)


def test_live_sampler_animates_digits_and_switches_networks(labelled_pipe):
    import torch

    from tinydiff import Pipeline, VideoUNet, preset
    from tinydiff.viz import gif_bytes
    from tinydiff.widgets import live_sampler

    from .conftest import synthetic_digits

    torch.manual_seed(1)
    other = Pipeline(VideoUNet(preset("tiny")), device="cpu")
    digits, _ = synthetic_digits(2)
    box = live_sampler({"a": labelled_pipe, "b": other}, digits=digits, steps=2)
    network, digit, _ = box.children[0].children
    assert network.layout.display == "" and digit.layout.display == "none"
    network.value = "b"
    assert box.children[3].value == gif_bytes(other.animate(digits, steps=2, seed=0), scale=3, columns=2)


def test_the_view_takes_the_width_of_each_new_picture():
    box = picture_slider([np.zeros((3, 2)), np.zeros((3, 5))], scale=3)
    slider, _, view = box.children
    slider.value = 1
    assert png_pixels(view.value).shape == (9, 15) and view.layout.width == "15px"
