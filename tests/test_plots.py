"""Figures, players and sliders of the course: shapes, contents, and the noise they show."""

import io
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

from tinydiff import InputError, NoiseSchedule, preset
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


def test_player_needs_no_network_for_its_buttons():
    html = player([np.zeros((4, 6)), np.ones((4, 6))], ["a", "b"]).data
    assert "https://" not in html and "font-awesome" not in html and 'class="fa' not in html
    buttons = re.findall(r'<button title="([^"]+)"[^>]*>\s*([^<]+?)\s*</button>', html)
    assert dict(buttons) == {"Decrease speed": "\u2212", "First frame": "\u00ab", "Previous frame": "\u2039",
                             "Play backwards": "\u25c0", "Pause": "\u275a\u275a", "Play": "\u25b6",
                             "Next frame": "\u203a", "Last frame": "\u00bb", "Increase speed": "+"}


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


@pytest.fixture
def close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def boxes(fig) -> dict[str, str]:
    """The text of each stage's box in an architecture figure, by stage (the text's gid)."""
    return {t.get_gid(): t.get_text() for t in fig.axes[0].texts if t.get_gid() not in (None, "legend")}


def shapes(fig) -> dict[str, str]:
    """The shape each box ends with: the tensor that stage outputs."""
    return {stage: text.splitlines()[-1] for stage, text in boxes(fig).items() if text.endswith(")")}


def test_architecture_of_the_default_preset_has_the_shapes_worked_out_by_hand(close_figures):
    from tinydiff.model import preset
    from tinydiff.plots import architecture

    fig = architecture(preset("default"))
    # 28 px in 2x2 patches: 14 px at level 0 (16 channels), 7 px at level 1 (32); F = 15 frames.
    assert shapes(fig) == {
        "space-to-depth": "(1, 20, 15, 14, 14)",  # 5 planes x 2 x 2
        "stem": "(1, 16, 15, 14, 14)",
        "down 0": "(1, 16, 15, 14, 14)",
        "down 1": "(1, 32, 15, 7, 7)",
        "global context": "(1, 32, 15, 7, 7)",
        "middle": "(1, 32, 15, 7, 7)",
        "up 1": "(1, 32, 15, 7, 7)",
        "up 0": "(1, 16, 15, 14, 14)",
        "head": "(1, 4, 15, 14, 14)",  # one channel per pixel of a 2x2 patch
        "depth-to-space": "(1, 1, 15, 28, 28)",
        "output": "(1, 1, 15, 28, 28)",
    }  # (the inputs and the condition are checked below)
    text = boxes(fig)
    assert text["inputs"].startswith("inputs: 5 planes (1, 5, 15, 28, 28)")
    for plane in ("x_t", "condition c", "ink distance of c", "row coordinate", "frame coordinate"):
        assert plane in text["inputs"]
    assert "5 planes × 4 = 20 channels" in text["space-to-depth"]
    assert "concat skip (1, 64, 15, 7, 7)" in text["up 1"] and "concat skip (1, 32, 15, 14, 14)" in text["up 0"]
    assert "max over H, W: (1, 32, 15, 1, 1)" in text["global context"]
    assert "(1, 1, 28, 28)" in text["condition"] and "predicted x_0" in text["output"]
    # the embedding: t, the label (labels=True) and the frame position (film=True), width 4 x 16 = 64
    assert "label y" in text["embedding"] and "frame position" in text["embedding"]
    assert "emb (1, 15, 64)" in text["embedding"] and "FiLM" in text["embedding"]
    everything = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "(1, 16, 15, 14, 14)" in everything and "(1, 32, 15, 7, 7)" in everything
    assert "avg pool 1×2×2 → (1, 16, 15, 7, 7)" in everything  # down 0, halved
    assert "nearest ×2, conv 1×3×3 → (1, 16, 15, 14, 14)" in everything  # up 1, doubled and narrowed
    assert tuple(fig.get_size_inches())[0] == 12


def test_architecture_of_the_tiny_preset_and_a_batch(close_figures):
    from tinydiff.model import preset
    from tinydiff.plots import architecture

    got = shapes(architecture(preset("tiny"), batch=3))
    assert {stage: got[stage] for stage in ("space-to-depth", "stem", "down 0", "down 1", "middle", "up 1", "up 0",
                                            "head", "output")} == {
        "space-to-depth": "(3, 20, 15, 14, 14)", "stem": "(3, 4, 15, 14, 14)", "down 0": "(3, 4, 15, 14, 14)",
        "down 1": "(3, 8, 15, 7, 7)", "middle": "(3, 8, 15, 7, 7)", "up 1": "(3, 8, 15, 7, 7)",
        "up 0": "(3, 4, 15, 14, 14)", "head": "(3, 4, 15, 14, 14)", "output": "(3, 1, 15, 28, 28)"}
    text = boxes(architecture(preset("tiny")))
    assert "temporal attention, 2 heads" in text["down 1"]
    assert "emb (1, 15, 16)" in text["embedding"]  # 4 x 4 channels


def test_architecture_draws_only_the_planes_and_stages_that_exist(close_figures):
    from tinydiff.model import preset
    from tinydiff.plots import architecture

    fig = architecture(preset("original"))  # patch 1, three levels, no coordinates, labels, FiLM or context
    text, got = boxes(fig), shapes(fig)
    assert text["inputs"].splitlines() == ["inputs: 2 planes (1, 2, 15, 28, 28)", "x_t, condition c"]
    assert not {"space-to-depth", "depth-to-space", "global context"} & set(text)
    assert [got[f"down {i}"] for i in range(3)] == ["(1, 32, 15, 28, 28)", "(1, 64, 15, 14, 14)", "(1, 128, 15, 7, 7)"]
    assert got["head"] == "(1, 1, 15, 28, 28)" and "the noise ε" in text["output"]
    assert "label" not in text["embedding"] and "frame position" not in text["embedding"]
    assert "t / T → MLP" in text["embedding"] and "emb (1, 128)" in text["embedding"]
    text = boxes(architecture(preset("default", conditional=False, coord_channels=False)))
    assert text["inputs"].splitlines() == ["inputs: 1 plane (1, 1, 15, 28, 28)", "x_t"] and "condition" not in text


@pytest.mark.parametrize("overrides, marked", [
    ({}, {"down 1", "middle", "up 1"}),  # the middle runs at the coarsest level
    ({"attention_levels": (0,)}, {"down 0", "up 0"}),
    ({"attention_levels": (0, 1)}, {"down 0", "down 1", "middle", "up 0", "up 1"}),
    ({"temporal_attention": False}, set()),  # attention_levels is ignored without temporal attention
])
def test_architecture_marks_attention_only_at_the_configured_levels(close_figures, overrides, marked):
    from tinydiff.model import preset
    from tinydiff.plots import architecture

    fig = architecture(preset("tiny", **overrides))
    assert {stage for stage, text in boxes(fig).items() if "attention" in text} == marked
    green = {patch.get_gid() for patch in fig.axes[0].patches if patch.get_edgecolor()[:3] == pytest.approx(
        (0x1b / 255, 0x9e / 255, 0x77 / 255))}
    assert green == marked


def test_architecture_shapes_are_the_networks(close_figures):
    """Every shape drawn for `tiny` is the shape the real network's stage outputs (forward hooks, on CPU)."""
    from tinydiff.model import VideoUNet, preset
    from tinydiff.plots import architecture

    cfg = preset("tiny")
    model = VideoUNet(cfg).to("cpu").eval()
    seen = {}
    stages = {"stem": model.stem, "middle": model.middle, "head": model.head, "global context": model.context}
    stages |= {f"down {i}": level for i, level in enumerate(model.down)}
    stages |= {f"up {i}": level for i, level in enumerate(model.up)}
    for name, module in stages.items():
        module.register_forward_hook(lambda m, args, out, name=name: seen.update({name: tuple(out.shape)}))
    x = torch.randn(2, 1, cfg.frames, cfg.size, cfg.size, device="cpu")
    with torch.no_grad():
        out = model(x, torch.tensor([10, 500], device="cpu"), torch.rand(2, 1, cfg.size, cfg.size, device="cpu"))
    drawn = shapes(architecture(cfg, batch=2))
    seen["global context"] = (*seen["global context"][:3], *seen["middle"][3:])  # the 1x1 max, broadcast back
    assert {name: str(shape) for name, shape in seen.items()} == {name: drawn[name] for name in seen}
    assert drawn["output"] == str(tuple(out.shape))


def test_frame_changes_colours_kept_added_and_vanished_ink_by_hand():
    from tinydiff.plots import ADDED, KEPT, VANISHED, frame_changes, show_frame_changes

    video = torch.zeros(1, 3, 4, 4)
    video[0, :, 0, 0] = 1  # ink throughout: kept
    video[0, 1:, 1, 1] = 0.8  # appears in frame 2
    video[0, 1, 2, 2] = 0.9  # appears in frame 2, vanishes in frame 3
    changes = frame_changes(video)
    assert changes.shape == (1, 2, 4, 4, 3)
    assert tuple(changes[0, 0, 0, 0]) == pytest.approx(KEPT) and tuple(changes[0, 1, 0, 0]) == pytest.approx(KEPT)
    assert tuple(changes[0, 0, 1, 1]) == pytest.approx(ADDED) and tuple(changes[0, 1, 1, 1]) == pytest.approx(KEPT)
    assert tuple(changes[0, 0, 2, 2]) == pytest.approx(ADDED) and tuple(changes[0, 1, 2, 2]) == pytest.approx(VANISHED)
    assert changes[0, :, 3].max() == 0.0  # never inked: black
    with pytest.raises(InputError, match="T >= 2"):
        frame_changes(torch.zeros(1, 1, 4, 4))
    with pytest.raises(InputError, match="2 labels for 1 videos"):
        show_frame_changes(video, labels=["a", "b"])
    show_frame_changes(video, labels=["a"])


def first_player_picture(html: str) -> np.ndarray:
    """The first frame a jshtml player embeds, as an RGB array."""
    import base64
    import re

    encoded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=\\\n]+)", html).group(1)
    data = base64.b64decode(encoded.replace("\\\n", "").replace("\n", ""))
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_player_titles_are_never_clipped_and_pictures_keep_their_scale():
    picture = np.ones((28, 28))  # white: the picture is told from the title band by position
    html = player([picture], ["frame 1: priority > 0.93 x max, a title wider than the picture"], scale=2).data
    image = first_player_picture(html)
    dark = image.min(axis=2) < 128  # (rows, columns): title text (the picture itself is white)
    assert image.shape[1] > 2 * 28, "the figure widened to fit the title"
    assert dark.any(), "the title is drawn"
    assert not dark[:, :2].any() and not dark[:, -2:].any(), "nothing touches the left or right edge"
    assert not dark[:2].any(), "nor the top"
    short = first_player_picture(player([np.zeros((28, 28))], ["a"], scale=4).data)
    columns = np.flatnonzero(short[-1].max(axis=1) < 20)  # the picture's bottom row: black pixels
    assert len(columns) == 28 * 4 and short.shape[1] == 28 * 4, "a short title keeps the picture's own width"


def test_traced_shapes_of_the_motion_preset_worked_out_by_hand():
    from tinydiff.plots import traced_shapes

    shapes = traced_shapes(preset("motion"), batch=2)
    # 5 planes (x_t, known frames, mask, row, frame) of 64 x 64; 4 x 4 patches: 80 channels of 16 x 16.
    assert shapes["inputs"] == (2, 5, 20, 64, 64) and shapes["space-to-depth"] == (2, 80, 20, 16, 16)
    assert [shapes[f"down {i}"] for i in range(3)] == [(2, 32, 20, 16, 16), (2, 64, 20, 8, 8), (2, 96, 20, 4, 4)]
    assert shapes["up 2 in"] == (2, 192, 20, 4, 4) and shapes["head"] == (2, 16, 20, 16, 16)
    assert shapes["global context"] == (2, 96, 20, 1, 1) and shapes["output"] == (2, 1, 20, 64, 64)
