"""Shared fixtures. Tests run without the real MNIST: `fake_mnist` writes a small synthetic copy in
torchvision's idx layout, so the real loading code runs on data the tests control. The few tests of
shipped models on real digits skip unless TINYDIFF_DATA is set."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from tinydiff.model import ModelConfig, preset


def synthetic_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n digit-like images (white strokes on black, uint8 28x28) and labels: random thick bars and boxes."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for image in images:
        for _ in range(rng.integers(1, 4)):
            r0, c0 = rng.integers(4, 16, size=2)
            h, w = rng.integers(3, 10, size=2)
            image[r0:r0 + h, c0:c0 + w] = rng.integers(180, 256)
    return images, rng.integers(0, 10, size=n).astype(np.uint8)


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(images)
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())


class InkCounter:
    """A stand-in digit classifier: the "digit" is the number of ink pixels, capped at 9."""

    def predict(self, images):
        return images.flatten(1).sum(1).clamp(max=9).long()


class SureOfEvenCounts(InkCounter):
    """A stand-in classifier: the label is the ink count (capped at 9), with probability 0.95 for an even
    count and 0.5 for an odd one."""

    def probabilities(self, images):
        labels = self.predict(images)
        sure = torch.where(labels % 2 == 0, 0.95, 0.5)
        probabilities = ((1 - sure) / 9)[:, None].repeat(1, 10)
        probabilities[torch.arange(len(images)), labels] = sure
        return probabilities


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory) -> Path:
    """A data root holding a synthetic MNIST: 64 training and 16 test digits."""
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    write_idx(raw, "train", *synthetic_digits(64, seed=1))
    write_idx(raw, "t10k", *synthetic_digits(16, seed=2))
    return root


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (tinydiff.web.chromium) for the browser tests; they skip without it, unless
    $TINYDIFF_REQUIRE_BROWSER is set (CI sets it, and .ci/run installs Chromium)."""
    from tinydiff.web import chromium

    try:
        driver = chromium()
    except Exception as error:  # no selenium, no Chromium, or a driver that does not start
        if os.environ.get("TINYDIFF_REQUIRE_BROWSER"):
            raise
        pytest.skip(f"no headless Chromium here: {error}")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def tiny_config() -> ModelConfig:
    """The `tiny` preset: about 11 thousand parameters on 28x28 videos, with every component the
    `default` preset uses (patches, attention, FiLM, global context, ink distance, x0, cosine)."""
    return preset("tiny")


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
