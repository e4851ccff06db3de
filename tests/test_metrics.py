import pytest
import torch

from tinydiff import InputError
from tinydiff.metrics import flicker, frame_iou, last_frame_fidelity, vanishing_ink

from .conftest import InkCounter


def video(*frames):
    """Build a (1, T, 2, 2) video from T lists of 4 pixel values."""
    return torch.tensor([[[f[0], f[1]], [f[2], f[3]]] for f in frames], dtype=torch.float32)[None]


def test_frame_iou_hand_computed():
    truth = video([1, 0, 0, 0], [1, 1, 0, 0])
    pred = video([1, 1, 0, 0], [1, 1, 0, 0.4])  # frame 1: IoU 1/2; frame 2: 2/2 (0.4 is not ink)
    assert frame_iou(pred, truth).tolist() == [pytest.approx(0.75)]
    assert frame_iou(truth, truth).tolist() == [1.0]
    empty = video([0, 0, 0, 0])
    assert frame_iou(empty, empty).tolist() == [1.0], "two empty frames agree"


def test_vanishing_ink_hand_computed():
    growing = video([1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0])
    assert vanishing_ink(growing).tolist() == [0.0]
    # ink before the last frame: 2 + 2 = 4 pixels; pixel 1 vanishes once -> 1/4.
    shaky = video([1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 1])
    assert vanishing_ink(shaky).tolist() == [0.25]


def test_last_frame_fidelity():
    videos = video([0, 0, 0, 0], [1, 1, 0, 0])
    assert last_frame_fidelity(videos, torch.tensor([[[255, 0], [255, 0]]], dtype=torch.uint8)).tolist() == [pytest.approx(1 / 3)]
    assert last_frame_fidelity(videos, torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])).tolist() == [1.0]


def test_flicker_counts_excess_toggles():
    assert flicker(video([0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0])).tolist() == [0.0]
    # pixel 0 goes on, off, on (2 toggles beyond the 1 it needs... it needs 1, makes 3 -> 2 extra);
    # pixel 1 appears then vanishes (2 toggles, needs 0). Ever-inked pixels: 2 -> (2 + 2) / 2.
    assert flicker(video([0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0])).tolist() == [2.0]


def test_metrics_refuse_wrong_shapes():
    with pytest.raises(InputError, match="shape"):
        frame_iou(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 5))
    with pytest.raises(InputError, match=r"\(N, T, H, W\)"):
        vanishing_ink(torch.zeros(3, 4, 4))


def test_identity_switches_counts_changes_of_mind():
    from tinydiff.metrics import identity_switches

    videos = torch.zeros(2, 15, 28, 28)
    videos[0, 9:, 0, :3] = 1  # the same 3 pixels in every late frame: no switch
    videos[1, 9:, 0, :3] = 1
    videos[1, 11, 0, 3] = 1  # one frame with a fourth pixel: 3 -> 4 -> 3, two switches
    assert identity_switches(videos, InkCounter()).tolist() == [0, 2]
    assert identity_switches(videos, InkCounter(), first_frame=12).tolist() == [0, 0]
    with pytest.raises(InputError, match="first_frame"):
        identity_switches(videos, InkCounter(), first_frame=15)


def test_frame_labels_reads_every_frame_from_the_first_asked():
    from tinydiff.metrics import frame_labels

    videos = torch.zeros(1, 15, 28, 28)
    for k in range(15):
        videos[0, k:, 0, k] = 0.9  # one more pixel per frame; 0.9 binarises to ink
    assert frame_labels(videos, InkCounter()).tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9]]
    assert frame_labels(videos, InkCounter(), first_frame=13).tolist() == [[9, 9]]
    with pytest.raises(InputError, match="first_frame"):
        frame_labels(videos, InkCounter(), first_frame=15)
