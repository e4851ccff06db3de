import numpy as np
import pytest
import torch

from tinydiff import InputError
from tinydiff.moving import CANVAS, FREE, SPEED, MovingDigitsStream, bounce, moving_digits, render, sequences

from .conftest import synthetic_digits, write_idx


def stepped(start, velocity, frames):
    """The reflection law simulated step by step (an independent computation of `bounce`): move, and
    where a coordinate leaves [0, FREE], mirror it back inside and reverse that velocity component."""
    position, velocity, path = np.array(start, float), np.array(velocity, float), []
    for _ in range(frames):
        path.append(position.copy())
        position = position + velocity
        for axis in range(2):
            if position[axis] < 0:
                position[axis], velocity[axis] = -position[axis], -velocity[axis]
            elif position[axis] > FREE:
                position[axis], velocity[axis] = 2 * FREE - position[axis], -velocity[axis]
    return np.array(path)


def test_the_recipe_constants():
    assert (CANVAS, FREE) == (64, 36)
    assert SPEED == pytest.approx(3.6)


def test_bounce_follows_the_reflection_law_for_hundreds_of_frames():
    rng = np.random.default_rng(0)
    for _ in range(20):
        start = rng.uniform(0, FREE, 2)
        angle = rng.uniform(0, 2 * np.pi)
        velocity = SPEED * np.array([np.sin(angle), np.cos(angle)])
        np.testing.assert_allclose(bounce(start, velocity, 300), stepped(start, velocity, 300), atol=1e-9)


def test_bounce_hand_computed_corner():
    # From (1, 35) heading up and right at 3.6 px: row 1 - 3.6 = -2.6 -> 2.6; column 38.6 -> 33.4.
    path = bounce(np.array([1.0, 35.0]), np.array([-3.6, 3.6]), 3)
    np.testing.assert_allclose(path, [[1.0, 35.0], [2.6, 33.4], [6.2, 29.8]])


def test_render_is_the_pixelwise_max_of_the_pasted_digits():
    rng = np.random.default_rng(1)
    digits = torch.from_numpy(rng.uniform(0, 1, (3, 2, 28, 28))).float()
    corners = torch.from_numpy(rng.integers(0, FREE + 1, (3, 4, 2, 2)))
    expected = np.zeros((3, 4, CANVAS, CANVAS), np.float32)
    for n in range(3):
        for t in range(4):
            for d in range(2):
                r, c = corners[n, t, d].tolist()
                window = expected[n, t, r:r + 28, c:c + 28]
                np.maximum(window, digits[n, d].numpy(), out=window)
    np.testing.assert_array_equal(render(digits, corners).numpy(), expected)


def test_sequences_draw_the_digits_where_their_positions_say():
    digits, labels = synthetic_digits(10, seed=3)
    data = sequences(torch.from_numpy(digits), torch.from_numpy(labels), 5, 12, np.random.default_rng(0))
    assert data.videos.shape == (5, 12, 64, 64) and data.videos.dtype == torch.float32
    assert data.positions.shape == (5, 12, 2, 2) and data.labels.shape == data.sources.shape == (5, 2)
    assert (data.positions >= 0).all() and (data.positions <= FREE).all()
    assert torch.equal(data.labels, torch.from_numpy(labels)[data.sources].long())
    pasted = render(torch.from_numpy(digits)[data.sources].float() / 255, data.corners)
    assert torch.equal(data.videos, pasted)
    steps = (data.positions[:, 1:] - data.positions[:, :-1]).norm(dim=-1)
    away_from_walls = ((data.positions[:, 1:] > SPEED) & (data.positions[:, 1:] < FREE - SPEED)).all(-1) & \
                      ((data.positions[:, :-1] > SPEED) & (data.positions[:, :-1] < FREE - SPEED)).all(-1)
    assert torch.allclose(steps[away_from_walls], torch.tensor(SPEED, dtype=torch.float64))


def test_moving_digits_is_reproducible_and_longer_videos_continue_shorter_ones(fake_mnist):
    a = moving_digits("train", 4, 10, seed=7, root=fake_mnist)
    b = moving_digits("train", 4, 10, seed=7, root=fake_mnist)
    longer = moving_digits("train", 4, 50, seed=7, root=fake_mnist)
    other = moving_digits("train", 4, 10, seed=8, root=fake_mnist)
    assert torch.equal(a.videos, b.videos) and torch.equal(a.positions, b.positions)
    assert torch.equal(longer.videos[:, :10], a.videos) and torch.equal(longer.sources, a.sources)
    assert not torch.equal(a.videos, other.videos)


def test_heldout_sequences_are_the_same_on_the_offline_copy_and_a_full_download(tmp_path):
    # The offline copy's test file holds official test digits 0-7999; a full download holds 10,000. The
    # held-out digits 7000-7999 sit at the same positions in both, so the same seed draws the same videos.
    images, labels = synthetic_digits(10_000, seed=4)
    train_images, train_labels = synthetic_digits(16, seed=5)
    for name, count in (("offline", 8000), ("full", 10_000)):
        write_idx(tmp_path / name / "MNIST" / "raw", "t10k", images[:count], labels[:count])
        write_idx(tmp_path / name / "MNIST" / "raw", "train", train_images, train_labels)
    offline = moving_digits("heldout", 6, 30, seed=0, root=tmp_path / "offline")
    full = moving_digits("heldout", 6, 30, seed=0, root=tmp_path / "full")
    assert torch.equal(offline.videos, full.videos) and torch.equal(offline.labels, full.labels)
    # ... and the digits are the held-out ones: test digit 7000 + source.
    expected = torch.from_numpy(images[7000:8000])[offline.sources].float() / 255
    assert torch.equal(render(expected, offline.corners), offline.videos)


def test_the_training_stream_draws_from_the_training_file_by_seed(fake_mnist):
    stream = MovingDigitsStream("train", root=fake_mnist)
    batch = stream.batch(3, 8, seed=11)
    assert batch.shape == (3, 1, 8, 64, 64) and batch.min() >= -1 and batch.max() <= 1
    assert torch.equal(batch, stream.batch(3, 8, seed=11))
    data = sequences(stream.digits, stream.labels, 3, 8, np.random.default_rng(11))
    assert torch.equal(batch, data.videos[:, None] * 2 - 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "validation"}, "split must be one of"),
    ({"n": 0}, "n must be a positive integer"),
    ({"frames": 2.5}, "frames must be a positive integer"),
    ({"seed": -1}, "seed must be a non-negative integer"),
])
def test_moving_digits_refuses_bad_requests(fake_mnist, kwargs, message):
    with pytest.raises(InputError, match=message):
        moving_digits(**{"split": "train", "root": fake_mnist, **kwargs})
