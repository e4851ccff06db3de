import numpy as np
import pytest
import torch
from scipy import ndimage

from tinydiff import DataError, InputError
from tinydiff.data import (FRAMES, WritingVideos, condition_from_digits, load_mnist, writing_priority,
                           writing_video, writing_videos)

from .conftest import synthetic_digits, write_idx


def first_frame(video: torch.Tensor, r: int, c: int) -> int:
    """1-based index of the first frame in which pixel (r, c) is ink."""
    return int(torch.nonzero(video[:, r, c])[0]) + 1


def test_hand_computed_case():
    # Two isolated ink pixels (EDT = 1): row 0 has priority 1 x (1 + 0.5) = 1.5, row 27 has 0.5.
    # Row 27 appears once 0.5 > (1 - k/15)(1.5 + 1e-5), i.e. k > 10.00003: frame 11.
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[0, 5] = 255
    digit[27, 20] = 200
    video = writing_video(digit)
    assert video.shape == (15, 28, 28) and video.dtype == torch.float32
    assert first_frame(video, 0, 5) == 1
    assert first_frame(video, 27, 20) == 11
    assert video.sum(dim=(1, 2)).tolist() == [1.0] * 10 + [2.0] * 5

    block = np.zeros((28, 28), dtype=np.uint8)
    block[10:13, 10:13] = 255
    video = writing_video(block)
    # centre: 2 x (1.5 - 11/27) = 2.185185; edges: 1.5 - r/27 for r = 10, 11, 12 -> 1.1296, 1.0926, 1.0556.
    # Edge pixel of row r appears at the first k with (1.5 - r/27) > (1 - k/15)(2.185185 + 1e-5): k = 8 for all.
    assert first_frame(video, 11, 11) == 1
    assert all(first_frame(video, r, c) == 8 for r in (10, 11, 12) for c in (10, 11, 12) if (r, c) != (11, 11))
    assert np.isclose(writing_priority(block)[11, 11], 2 * (1.5 - 11 / 27))


def test_priority_matches_definition_on_a_digit():
    digit = synthetic_digits(1, seed=5)[0][0]
    binary = digit / 255.0 > 0.5
    rows = np.arange(28)[:, None]
    expected = ndimage.distance_transform_edt(binary) * ((1 - rows / 27) + 0.5) * binary
    np.testing.assert_allclose(writing_priority(digit), expected)


@pytest.mark.parametrize("seed", range(5))
def test_frames_are_nested_and_end_in_the_binary_digit(seed):
    digits, _ = synthetic_digits(8, seed=seed)
    videos = writing_videos(digits)
    assert videos.shape == (8, FRAMES, 28, 28)
    assert set(videos.unique().tolist()) <= {0.0, 1.0}
    assert (videos[:, 1:] >= videos[:, :-1]).all(), "ink never disappears"
    assert torch.equal(videos[:, -1], torch.from_numpy(digits / 255.0 > 0.5).float())
    assert (videos[:, 0].sum(dim=(1, 2)) > 0).all(), "the first frame already shows ink"
    for i in range(8):
        assert torch.equal(videos[i], writing_video(torch.from_numpy(digits[i])))


def test_frames_argument():
    digit = synthetic_digits(1, seed=3)[0][0]
    assert writing_video(digit, frames=1).shape == (1, 28, 28)
    assert torch.equal(writing_video(digit, frames=1)[0], torch.from_numpy(digit > 127.5).float())
    assert writing_video(digit, frames=40).shape == (40, 28, 28)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="frames"):
            writing_video(digit, frames=bad)


def test_empty_digit_gives_an_empty_video():
    assert writing_video(np.zeros((28, 28), dtype=np.uint8)).sum() == 0


@pytest.mark.parametrize("bad, message", [
    (np.zeros((28, 27)), "shape"),
    (np.zeros((3, 28, 28)), "shape"),
    (np.full((28, 28), np.nan), "NaN"),
    (np.full((28, 28), 300.0), "0..255"),
    (np.full((28, 28), -1.0), "0..255"),
    (np.array([["a"] * 28] * 28), "dtype"),
])
def test_bad_digits_are_refused(bad, message):
    with pytest.raises(InputError, match=message):
        writing_video(bad)


def test_condition_is_the_last_frame():
    digits, _ = synthetic_digits(4)
    condition = condition_from_digits(digits)
    assert condition.shape == (4, 1, 28, 28)
    assert torch.equal((condition[:, 0] + 1) / 2, writing_videos(digits)[:, -1])


def test_load_mnist_reads_torchvision_layout(fake_mnist):
    images, labels = load_mnist("train", root=fake_mnist)
    expected, expected_labels = synthetic_digits(64, seed=1)
    assert images.dtype == torch.uint8 and images.shape == (64, 28, 28)
    assert torch.equal(images, torch.from_numpy(expected))
    assert torch.equal(labels, torch.from_numpy(expected_labels).long())
    assert load_mnist("test", root=fake_mnist)[0].shape == (16, 28, 28)


def test_data_root_comes_from_the_environment(fake_mnist, monkeypatch):
    monkeypatch.setenv("TINYDIFF_DATA", str(fake_mnist))
    assert load_mnist("test")[0].shape == (16, 28, 28)


def test_offline_without_data_names_the_setting(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    def offline(self):
        raise OSError("network is unreachable")

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(DataError, match="TINYDIFF_DATA") as info:
        load_mnist(root=tmp_path / "empty")
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="TINYDIFF_DATA"):
        load_mnist(root=tmp_path / "empty", download=False)


def test_dataset_items(fake_mnist):
    dataset = WritingVideos("train", root=fake_mnist, limit=10)
    assert len(dataset) == 10
    video, condition, label = dataset[3]
    assert video.shape == (1, FRAMES, 28, 28) and condition.shape == (1, 28, 28)
    assert set(video.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(video[:, -1], condition)
    assert isinstance(label, int)


def test_real_mnist_when_available():
    """With $TINYDIFF_DATA set (CI points it at the offline copy), the real digits load and transform."""
    import os

    if not os.environ.get("TINYDIFF_DATA"):
        pytest.skip("TINYDIFF_DATA is not set")
    digits, labels = load_mnist("test", download=False)
    assert digits.dtype == torch.uint8 and digits.shape[1:] == (28, 28) and len(digits) == len(labels) >= 1000
    videos = writing_videos(digits[:200])
    assert (videos[:, 1:] >= videos[:, :-1]).all()
    assert torch.equal(videos[:, -1], (digits[:200].double() / 255 > 0.5).float())


def test_writing_parts_compose_the_priority():
    from tinydiff.data import writing_parts, writing_priority

    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[5:10, 10:13] = 200  # a 5x3 block of ink
    parts = writing_parts(digit)
    assert parts["binary"].sum() == 15 and parts["height"][0, 0] == 1.5 and parts["height"][-1, 0] == 0.5
    assert parts["distance"][7, 11] == 2.0 and parts["distance"][5, 10] == 1.0  # centre / corner of the block
    np.testing.assert_array_equal(parts["priority"], writing_priority(digit))


@pytest.mark.parametrize("test_size", [8000, 10_000])
def test_heldout_digits_are_official_test_digits_7000_to_7999(tmp_path, test_size):
    """The same 1,000 digits from the offline copy (8,000 test digits) and a full download (10,000)."""
    images, labels = synthetic_digits(test_size, seed=3)
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw, "t10k", images, labels)
    write_idx(raw, "train", images[:64], labels[:64])
    held, held_labels = load_mnist("heldout", root=tmp_path)
    assert torch.equal(held, torch.from_numpy(images[7000:8000]))
    assert torch.equal(held_labels, torch.from_numpy(labels[7000:8000]).long())
    assert len(load_mnist("test", root=tmp_path)[0]) == test_size


def test_heldout_needs_8000_test_digits(fake_mnist):
    with pytest.raises(DataError, match="holds 16 digits.*at least 8000") as info:
        load_mnist("heldout", root=fake_mnist)
    assert "\n" not in str(info.value)


def test_unknown_split_is_refused(fake_mnist):
    with pytest.raises(InputError, match="split must be one of train, test, heldout"):
        load_mnist("validation", root=fake_mnist)


def test_dataset_keeps_uint8_and_converts_a_batch(fake_mnist, monkeypatch):
    """Videos are stored as uint8 (a quarter of float32) and turned into model space per batch; built in
    chunks, they equal the one-pass transform."""
    monkeypatch.setattr(WritingVideos, "CHUNK", 7)
    dataset = WritingVideos("train", root=fake_mnist)
    assert dataset.ink.dtype == torch.uint8 and dataset.ink.shape == (64, FRAMES, 28, 28)
    assert torch.equal(dataset.ink.float(), writing_videos(dataset.digits.numpy()))
    index = torch.tensor([5, 2, 40])
    videos, conditions = dataset.batch(index, "cpu")
    assert videos.dtype == torch.float32 and videos.shape == (3, 1, FRAMES, 28, 28)
    assert torch.equal(videos[:, 0], writing_videos(dataset.digits[index].numpy()) * 2 - 1)
    assert torch.equal(conditions, condition_from_digits(dataset.digits[index]))
