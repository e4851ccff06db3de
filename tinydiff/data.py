"""MNIST digits and the "writing" videos made from them.

A static digit becomes a short video of it being written (the original Tiny Diffusion transform):
ink far from the stroke edge and near the top of the digit appears first, so ink only ever grows and
the last frame is the whole (binarised) digit.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from .errors import DataError, InputError

DATA_ENV = "TINYDIFF_DATA"
FRAMES = 15
SIZE = 28


def default_data_root() -> Path:
    """The MNIST root: $TINYDIFF_DATA if set, else a per-user cache folder."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "tinydiff" / "data"


def as_digits(digits, batch: bool = True) -> np.ndarray:
    """Validate MNIST-style digits (28x28, 0..255, white ink on black) and return them as float64.

    batch=True expects (N, 28, 28) (a single (28, 28) digit is accepted as N = 1); batch=False expects
    (28, 28). Anything else raises InputError naming the problem.
    """
    array = digits.detach().cpu().numpy() if isinstance(digits, torch.Tensor) else np.asarray(digits)
    if batch and array.shape == (SIZE, SIZE):
        array = array[None]
    expected = f"(N, {SIZE}, {SIZE})" if batch else f"({SIZE}, {SIZE})"
    if array.shape[-2:] != (SIZE, SIZE) or array.ndim != (3 if batch else 2):
        raise InputError(f"digits must be an array of shape {expected}, got shape {tuple(array.shape)}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InputError(f"digits must hold numbers 0..255, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise InputError("digits must hold finite values 0..255; they contain NaN or inf")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise InputError(f"digits must hold values 0..255 (white ink on black), got {array.min():g}..{array.max():g}")
    return array


def _parts(digits: np.ndarray) -> dict[str, np.ndarray]:
    """The pieces of the priority map of validated digits ((N, 28, 28) float64 0..255), each (N, 28, 28)."""
    binary = digits / 255.0 > 0.5
    height = np.broadcast_to(np.linspace(1.0, 0.0, SIZE)[:, None] + 0.5, digits.shape)  # 1.5 top .. 0.5 bottom
    edt = np.stack([ndimage.distance_transform_edt(b) for b in binary]) if len(binary) else np.zeros_like(digits)
    return {"binary": binary, "distance": edt, "height": height, "priority": edt * height * binary}


def _priorities(digits: np.ndarray) -> np.ndarray:
    """Priority maps of validated digits: (N, 28, 28) float64 0..255 -> (N, 28, 28) float64."""
    return _parts(digits)["priority"]


def writing_parts(digit) -> dict[str, np.ndarray]:
    """The steps of the writing transform for one digit, each (28, 28): "binary" (ink), "distance"
    (Euclidean distance transform of the ink), "height" (vertical gradient + 0.5) and "priority"
    (distance x height on the ink). digit: (28, 28) uint8, white ink on black."""
    return {name: part[0] for name, part in _parts(as_digits(digit, batch=False)[None]).items()}


def _ink_frames(priority: np.ndarray, frames: int) -> np.ndarray:
    """(N, 28, 28) priorities -> (N, frames, 28, 28) bool: frame k keeps priority > (1 - k/frames) max."""
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise InputError(f"frames must be a positive integer, got {frames!r}")
    k = np.arange(1, frames + 1, dtype=np.float64)[None, :, None, None]
    peak = priority.max(axis=(1, 2), initial=0.0)[:, None, None, None]
    thresholds = (1.0 - k / frames) * (peak + 1e-5)
    return priority[:, None] > thresholds


def _frames_from_priorities(priority: np.ndarray, frames: int) -> torch.Tensor:
    """(N, 28, 28) priorities -> (N, frames, 28, 28) float32 in {0, 1} (see `_ink_frames`)."""
    return torch.from_numpy(_ink_frames(priority, frames)).float()


def writing_priority(digit) -> np.ndarray:
    """Priority map of one digit: EDT(ink) x (vertical gradient + 0.5), zero off the ink.

    digit: (28, 28) uint8 array or tensor, 0..255, white ink on black. Returns (28, 28) float64.
    """
    return _priorities(as_digits(digit, batch=False)[None])[0]


def writing_video(digit, frames: int = FRAMES) -> torch.Tensor:
    """The writing video of one digit: frame k shows the ink whose priority exceeds (1 - k/frames) max.

    binary = digit/255 > 0.5; priority = EDT(binary) x (g + 0.5) with g = 1 on the top row and 0 on
    the bottom row; frame k (k = 1..frames) = priority > (1 - k/frames)(max priority + 1e-5).

    Args:
        digit: (28, 28) uint8 array or tensor, 0..255, white ink on black.
        frames: number of frames (>= 1); the last frame is the binarised digit.
    Returns:
        (frames, 28, 28) float32 tensor of 0s and 1s; an empty digit gives an empty video.
    """
    return _frames_from_priorities(_priorities(as_digits(digit, batch=False)[None]), frames)[0]


def writing_videos(digits, frames: int = FRAMES) -> torch.Tensor:
    """writing_video for a batch: (N, 28, 28) uint8 -> (N, frames, 28, 28) float32 in {0, 1}."""
    return _frames_from_priorities(_priorities(as_digits(digits)), frames)


def condition_from_digits(digits) -> torch.Tensor:
    """The model's condition, the finished digit: (N, 28, 28) uint8 0..255 -> (N, 1, 28, 28) in {-1, 1}.

    It equals the last frame of the digit's writing video.
    """
    binary = torch.from_numpy(as_digits(digits) / 255.0 > 0.5)
    return (binary.float() * 2 - 1).unsqueeze(1)


# Where a split's digits are read from. "heldout" is official test digits 7000-7999: in no training
# file offline (../shared/data trains on test digits 0-6999) nor online (the official training set),
# and at the same positions in both test files, so figures computed on them agree everywhere.
SPLITS = ("train", "test", "heldout")
HELDOUT = range(7000, 8000)


def load_mnist(split: str = "train", root: str | os.PathLike | None = None, download: bool = True):
    """MNIST digits through torchvision: (images uint8 (N, 28, 28), labels int64 (N,)).

    split: "train" (the training file), "test" (the whole test file) or "heldout" (official test
    digits 7000-7999, never seen by any shipped model: what every figure of the course is measured on).
    Reads `root` (else $TINYDIFF_DATA, else a per-user cache folder). If the files are not there and
    `download` is true, tries to download them; offline with nothing on disk, raises DataError.
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    root = Path(root).expanduser() if root is not None else default_data_root()
    images, labels = _read_mnist(root, train=split == "train", download=download)
    if split != "heldout":
        return images, labels
    if len(images) < HELDOUT.stop:
        raise DataError(f"the MNIST test file under {root} holds {len(images)} digits; the held-out digits are "
                        f"official test digits {HELDOUT.start}-{HELDOUT.stop - 1}, so it needs at least "
                        f"{HELDOUT.stop}: set {DATA_ENV} to a fuller copy")
    return images[HELDOUT.start:HELDOUT.stop].clone(), labels[HELDOUT.start:HELDOUT.stop].clone()


def _read_mnist(root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One MNIST file pair through torchvision, downloaded when missing and allowed."""
    from torchvision.datasets import MNIST

    split = "train" if train else "test"
    hint = f"set {DATA_ENV} to a folder holding MNIST/raw"
    try:
        dataset = MNIST(str(root), train=train, download=False)
    except RuntimeError as error:
        if "not found" not in str(error):  # the files are there but cannot be parsed
            raise _damaged(root, split, error) from None
        if not download:
            raise DataError(f"MNIST ({split}) not found under {root}; {hint}") from None
        try:  # torchvision downloads into root/MNIST/raw: make sure that can be written first
            (root / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=root / "MNIST" / "raw").close()
        except OSError as error:
            raise DataError(f"MNIST ({split}) not found under {root}, and that folder is not writable "
                            f"({error.strerror or error}); {hint}, or to a writable folder") from None
        try:
            dataset = MNIST(str(root), train=train, download=True)
        except Exception as error:  # network down, server error, ...
            raise DataError(f"MNIST ({split}) not found under {root} and could not be downloaded "
                            f"({type(error).__name__}: {error}); {hint}") from None
    except Exception as error:  # a truncated or corrupt idx file
        raise _damaged(root, split, error) from None
    return dataset.data.clone(), dataset.targets.clone()


def _damaged(root: Path, split: str, error: Exception) -> DataError:
    detail = str(error).strip().splitlines()[0][:120] if str(error).strip() else "bad header"
    return DataError(f"MNIST ({split}) under {root} is damaged ({type(error).__name__}: {detail}); delete "
                     f"{root / 'MNIST' / 'raw'} to download it again, or set {DATA_ENV} to a good copy")


class WritingVideos(torch.utils.data.Dataset):
    """MNIST as writing videos, built once in memory as uint8 (float32 would take 2.8 GB for full MNIST).

    `ink` holds every video as (N, T, 28, 28) uint8 in {0, 1}; `batch` turns the videos of a batch
    into model space on the training device, so only a batch is ever float. Item i is
    (video, condition, label): video (1, T, 28, 28) in [-1, 1], condition (1, 28, 28) in [-1, 1] (the
    finished digit, i.e. the video's last frame), label an int.

    Args:
        split: "train", "test" or "heldout" (see `load_mnist`).
        root: MNIST root (see `load_mnist`).
        limit: keep only the first `limit` digits (quick experiments).
        frames: frames per video.
    """

    CHUNK = 4096  # digits transformed at a time: bounds the float64 working memory to ~100 MB

    def __init__(self, split: str = "train", root=None, limit: int | None = None, frames: int = FRAMES):
        images, labels = load_mnist(split, root=root)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        self.digits = images  # (N, 28, 28) uint8
        self.labels = labels  # (N,)
        self.ink = torch.empty((len(images), frames, SIZE, SIZE), dtype=torch.uint8)
        for start in range(0, len(images), self.CHUNK):
            chunk = as_digits(images[start:start + self.CHUNK])
            self.ink[start:start + self.CHUNK] = torch.from_numpy(_ink_frames(_priorities(chunk), frames))

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> "WritingVideos":
        """Keep the stored videos on `device` (a GPU: 705 MB of uint8 for full MNIST), so that a batch
        is never copied from the host."""
        self.ink, self.labels = self.ink.to(device), self.labels.to(device)
        return self

    def batch(self, index: torch.Tensor, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Videos (B, 1, T, 28, 28) and conditions (B, 1, 28, 28), both in {-1, 1} float32 on `device`."""
        ink = self.ink[index.to(self.ink.device)].to(device)
        videos = ink.float().mul_(2).sub_(1).unsqueeze(1)
        return videos, videos[:, :, -1]

    def __getitem__(self, i):
        video, condition = self.batch(torch.tensor([i]))
        return video[0], condition[0], int(self.labels[i])
