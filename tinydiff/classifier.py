"""A small MNIST classifier: the judge of which digit a generated frame shows.

Used by the benchmark (which digits the unconditional samples are) and by the temporal-consistency
chapter (does a video's digit change identity from frame to frame?). It is trained on the binarised
digits (ink > 0.5), the form every video frame has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import CLASSIFIER, load_checkpoint, load_shipped, save_checkpoint
from .data import load_mnist
from .errors import CheckpointError, InputError


class DigitClassifier(nn.Module):
    """(N, 1, 28, 28) in [0, 1] -> (N, 10) logits. Two conv layers, two linear layers (~100 k parameters)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def probabilities(self, images) -> torch.Tensor:
        """Class probabilities (N, 10) of images (N, 28, 28) or (N, 1, 28, 28), values in [0, 1] (video frames)."""
        x = torch.as_tensor(images, dtype=torch.float32)
        x = x[:, None] if x.dim() == 3 else x
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise InputError(f"images must be shaped (N, 28, 28), got {tuple(x.shape)}")
        self.eval()
        if not len(x):
            return torch.zeros(0, 10)
        return torch.cat([self(chunk).softmax(dim=1) for chunk in x.split(512)])

    def predict(self, images) -> torch.Tensor:
        """Labels (N,) of images (N, 28, 28) or (N, 1, 28, 28), values in [0, 1] (video frames)."""
        return self.probabilities(images).argmax(dim=1)


@dataclass
class ClassifierResult:
    model: DigitClassifier
    heldout_accuracy: float


def train_classifier(root=None, epochs: int = 3, batch_size: int = 64, lr: float = 2e-3,
                     seed: int = 0) -> ClassifierResult:
    """Train on the binarised MNIST training split (with ±2 px shifts); report the accuracy on the
    held-out digits (official test digits 7000-7999, in no training file)."""
    test_images, test_labels = load_mnist("heldout", root=root)  # first: a copy without them fails at once
    torch.manual_seed(seed)
    images, labels = load_mnist("train", root=root)
    x = (images > 127).float()[:, None]  # (N, 1, 28, 28) in {0, 1}
    model = DigitClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=g).split(batch_size):
            dy, dx = torch.randint(-2, 3, (2,), generator=g).tolist()
            batch = torch.roll(x[index], shifts=(dy, dx), dims=(2, 3))  # generated digits sit a little off-centre
            loss = F.cross_entropy(model(batch), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    accuracy = (model.predict((test_images > 127).float()) == test_labels).float().mean().item()
    return ClassifierResult(model.eval(), accuracy)


def save_classifier(model: DigitClassifier, path: str | os.PathLike, heldout_accuracy: float) -> None:
    save_checkpoint({"kind": "digit-classifier", "classifier": model.state_dict(), "heldout_accuracy": heldout_accuracy},
                    path)


def load_classifier(path: str | os.PathLike) -> DigitClassifier:
    state = load_checkpoint(path)
    if state.get("kind") != "digit-classifier":
        raise CheckpointError(f"{path} is not a tinydiff digit classifier")
    model = DigitClassifier()
    try:
        model.load_state_dict(state["classifier"])
    except (RuntimeError, KeyError) as error:
        raise CheckpointError(f"{path}: the classifier's weights do not fit ({type(error).__name__})") from None
    return model.eval()


def pretrained_classifier() -> DigitClassifier:
    """The classifier shipped inside the package, verified against its recorded SHA-256."""
    return load_shipped(CLASSIFIER, load_classifier)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .checkpoint import sha256

    parser = argparse.ArgumentParser(prog="python -m tinydiff.classifier",
                                     description="Train the digit classifier and write it (with its accuracy on the held-out digits).")
    parser.add_argument("--out", default="tinydiff/weights/classifier.pt")
    parser.add_argument("--data-root", help="MNIST root (default: $TINYDIFF_DATA, else the per-user cache)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = train_classifier(args.data_root, epochs=args.epochs, seed=args.seed)
    save_classifier(result.model, args.out, result.heldout_accuracy)
    print(f"held-out accuracy {result.heldout_accuracy:.4f}; wrote {args.out} (sha256 {sha256(args.out)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
