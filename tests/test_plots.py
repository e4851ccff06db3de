"""Figures, players and sliders of the course: shapes, contents, and the noise they show."""

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tinydiff import InputError, NoiseSchedule
from tinydiff.plots import noised, player, plot_schedules, show_videos, strip
from tinydiff.widgets import picture_slider, timestep_slider


def test_strip_lays_frames_side_by_side():
    video = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(2, 2, 3)  # T=2 frames of 2x3
    expected = np.array([[0, 1, 2, 0.5, 6, 7, 8],
                         [3, 4, 5, 0.5, 9, 10, 11]], dtype=np.float32)
    np.testing.assert_array_equal(strip(video), expected)
    with pytest.raises(InputError, match="shaped"):
        strip(torch.zeros(28, 28))


def test_noised_is_the_closed_form_with_one_noise():
    video = (torch.rand(15, 28, 28, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    schedule = NoiseSchedule("linear")
    steps = [0, 10, 999]
    got = noised(video, schedule, steps, seed=3)
    noise = torch.randn(1, 15, 28, 28, generator=torch.Generator().manual_seed(3))
    x0 = video * 2 - 1
    for i, t in enumerate(steps):  # alpha_bar from its definition, in float64
        alpha_bar = math.prod(1 - (1e-4 + (0.02 - 1e-4) * s / 999) for s in range(t + 1))
        expected = math.sqrt(alpha_bar) * x0 + math.sqrt(1 - alpha_bar) * noise[0]
        torch.testing.assert_close(got[i], expected, atol=1e-5, rtol=0)


def test_player_embeds_every_picture():
    pictures = [np.full((4, 6), v) for v in (0.0, 0.5, 1.0)]
    html = player(pictures, ["a", "b", "c"]).data
    assert html.count("data:image/png;base64") == 3 and "<input" in html
    with pytest.raises(InputError):
        player([])


def test_figures_build():
    import matplotlib.pyplot as plt

    fig = show_videos(torch.zeros(2, 15, 28, 28), labels=["a", "b"])
    assert len(fig.axes) == 2
    assert len(plot_schedules(NoiseSchedule("linear"), NoiseSchedule("cosine")).axes) == 2
    with pytest.raises(InputError, match="labels"):
        show_videos(torch.zeros(2, 15, 28, 28), labels=["a"])
    plt.close("all")


def test_picture_slider_swaps_pictures():
    box = picture_slider([np.zeros((3, 3)), np.ones((3, 3))], ["zero", "one"], scale=2)
    slider, label, view = box.children
    first = view.value
    slider.value = 1
    assert label.value == "one" and view.value != first and view.value[:4] == b"\x89PNG"
    timesteps = timestep_slider(torch.zeros(15, 28, 28), NoiseSchedule("cosine"), every=100)
    assert timesteps.children[0].max == 9


def test_trajectory_shows_every_kth_step_and_the_last():
    from tinydiff.plots import trajectory
    from tinydiff.sampling import SamplerStep
    from tinydiff.widgets import trajectory_slider

    x = torch.zeros(1, 1, 15, 28, 28)
    run = [SamplerStep(index=i, t=99 - 10 * i, x_t=x + i / 10, pred_x0=x - 1, x_prev=x) for i in range(10)]
    pictures, titles = trajectory(run, every=4)
    assert [t.split(",")[0] for t in titles] == ["step 1 of 10", "step 5 of 10", "step 9 of 10", "step 10 of 10"]
    assert pictures[0].shape == (2 * 28 + 1, 15 * 29 - 1)
    assert pictures[1][0, 0] == pytest.approx(0.7) and pictures[1][-1, 0] == 0.0  # x_t = 0.4 -> 0.7; x0 = -1 -> 0
    assert trajectory_slider(run, every=4).children[0].max == 3


def test_frame_slider_and_player_tile_videos_in_columns():
    from tinydiff.plots import video_player
    from tinydiff.widgets import frame_slider

    videos = torch.zeros(4, 15, 28, 28)
    videos[1, 3] = 1  # the second video's fourth frame is all ink
    box = frame_slider(videos, columns=4, scale=1)
    slider, label, view = box.children
    assert slider.max == 14 and label.value == "frame 1 of 15"
    slider.value = 3
    picture = np.array(Image.open(io.BytesIO(view.value)))
    assert picture.shape == (1 + 28 + 1, 1 + 4 * 29)  # one row of four videos, one-pixel borders
    assert picture[1:29, 30:58].min() == 255 and picture[1:29, 1:29].max() == 0
    assert video_player(videos, columns=2).data.count("data:image/png;base64") == 15


def test_frame_slider_shows_grey_levels():
    """A frame of grey 0.5 shows as mid-grey (uint8 frames read as [0, 1] made every non-black pixel white)."""
    from tinydiff.widgets import frame_slider

    videos = torch.full((1, 15, 28, 28), 0.5)
    picture = np.array(Image.open(io.BytesIO(frame_slider(videos, scale=1).children[2].value)))
    assert abs(int(picture[14, 14]) - 128) <= 1
