"""Grids, in-between frames, side-by-side views and GIF files, against hand-computed pictures."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from tinydiff import InputError
from tinydiff.viz import beside_inputs, gif_bytes, interpolate, save_video, video_grid


def test_video_grid_places_each_video_in_its_cell():
    videos = torch.zeros(3, 2, 2, 2)
    videos[1] = 1.0  # the second video is all ink
    videos[2, 1, 0, 0] = 0.5
    grid = video_grid(videos, columns=2)
    assert grid.shape == (2, 2 * 3 + 1, 2 * 3 + 1)
    assert (grid[:, 1:3, 4:6] == 255).all() and (grid[:, 1:3, 1:3] == 0).all()
    assert grid[1, 4, 1] == 128 and grid[0, 4, 1] == 0  # video 3: row 2, column 1; 0.5 -> 128
    assert grid[0, 0, 0] == 64 and (grid[:, 4:6, 4:6] == 64).all()  # borders and the empty cell are grey


def test_interpolate_blends_linearly_and_keeps_the_frames():
    videos = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)
    smooth = interpolate(videos, 3)
    assert smooth.flatten().tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1, 0.75, 0.5, 0.25, 0])
    assert torch.equal(interpolate(videos, 0), videos)
    with pytest.raises(InputError, match="in-between"):
        interpolate(videos, -1)


def test_beside_inputs_puts_the_digit_left_of_every_frame():
    videos = torch.ones(1, 2, 2, 2)
    digit = np.array([[[255, 0], [0, 255]]], dtype=np.uint8)
    side = beside_inputs(videos, digit)
    assert side.shape == (1, 2, 2, 5)
    assert side[0, 1, :, :2].tolist() == [[1.0, 0.0], [0.0, 1.0]] and side[0, 1, 0, 2] == 0.25
    with pytest.raises(InputError, match="one \\(H, W\\) input per video"):
        beside_inputs(videos, np.zeros((2, 2, 2), np.uint8))


def test_gif_holds_every_frame_and_the_last_one_longer():
    videos = torch.zeros(1, 3, 2, 2)
    videos[0, 1:, 0, 0] = 1.0  # frames differ (identical neighbours would be merged into one GIF frame)
    videos[0, 2] = 1.0
    gif = Image.open(io.BytesIO(gif_bytes(videos, fps=10, scale=3, hold_last=4)))
    frames = [np.array(frame.convert("L")) for frame in ImageSequence.Iterator(gif)]
    assert len(frames) == 3 and frames[0].shape == (4 * 3, 4 * 3)  # 2 px + 1 px borders, enlarged 3 times
    assert frames[2][3:9, 3:9].min() == 255 and frames[0][3:9, 3:9].max() == 0
    assert frames[1][3:6, 3:6].min() == 255 and frames[1][6:9, 6:9].max() == 0
    gif.seek(0)
    assert gif.info["duration"] == 100
    gif.seek(2)
    assert gif.info["duration"] == 500


@pytest.mark.parametrize("kwargs, message", [({"fps": 0}, "fps must be positive"),
                                             ({"scale": 0}, "scale must be a positive integer"),
                                             ({"scale": 1.5}, "scale must be a positive integer")])
def test_bad_rates_and_scales_are_refused_before_writing(tmp_path, kwargs, message):
    videos = torch.zeros(1, 2, 2, 2)
    for write in (lambda: gif_bytes(videos, **kwargs), lambda: save_video(videos, tmp_path / "v.gif", **kwargs)):
        with pytest.raises(InputError, match=message):
            write()
    assert not (tmp_path / "v.gif").exists()
