import os

import pytest
import torch

from tinydiff import CheckpointError, InputError
from tinydiff.checkpoint import save_checkpoint
from tinydiff.classifier import (DigitClassifier, load_classifier, pretrained_classifier, save_classifier,
                                 train_classifier)
from tinydiff.data import load_mnist


def test_train_save_load_round_trip(tmp_path, fake_mnist):
    result = train_classifier(fake_mnist, epochs=1, batch_size=16)
    assert 0.0 <= result.test_accuracy <= 1.0
    save_classifier(result.model, tmp_path / "c.pt", result.test_accuracy)
    loaded = load_classifier(tmp_path / "c.pt")
    x = torch.rand(5, 28, 28)
    assert torch.equal(loaded.predict(x), result.model.predict(x))
    assert loaded.predict(x).shape == (5,)


def test_refuses_other_files_and_shapes(tmp_path):
    save_checkpoint({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a tinydiff digit classifier"):
        load_classifier(tmp_path / "other.pt")
    with pytest.raises(InputError, match="shaped"):
        DigitClassifier().predict(torch.zeros(2, 27, 27))


@pytest.mark.skipif(not os.environ.get("TINYDIFF_DATA"), reason="TINYDIFF_DATA is not set")
def test_shipped_classifier_reads_real_digits():
    images, labels = load_mnist(train=False)
    predicted = pretrained_classifier().predict((images > 127).float())
    assert (predicted == labels).float().mean() > 0.95  # against MNIST's own labels
