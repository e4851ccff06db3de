"""How good is a writing video? Ink = pixel value > 0.5 on videos in [0, 1], shaped (N, T, H, W).

- `frame_iou`: intersection over union with the true writing video, frame by frame.
- `vanishing_ink`: share of ink pixels that disappear in the next frame (writing only adds ink).
- `last_frame_fidelity`: IoU of the last frame with the condition digit (the finished digit).
- `flicker`: ink toggles beyond the one a written pixel needs, per pixel that is ever inked.
- `frame_labels`, `identity_switches`: the digit a classifier reads in each frame, and how often it
  changes its mind over the late frames.
"""

from __future__ import annotations

import torch

from .errors import InputError


def ink(videos: torch.Tensor) -> torch.Tensor:
    """Binarise: (..., H, W) values in [0, 1] -> bool ink mask."""
    return torch.as_tensor(videos) > 0.5


def _check(videos: torch.Tensor, name: str) -> torch.Tensor:
    videos = torch.as_tensor(videos)
    if videos.dim() != 4:
        raise InputError(f"{name} must be shaped (N, T, H, W), got {tuple(videos.shape)}")
    return videos


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU over the last two dims of bool masks; two empty masks agree perfectly (IoU 1)."""
    inter = (a & b).sum(dim=(-2, -1)).double()
    union = (a | b).sum(dim=(-2, -1)).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def frame_iou(videos: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Mean over frames of the per-frame IoU with the true videos: (N, T, H, W) x 2 -> (N,)."""
    videos, truth = _check(videos, "videos"), _check(truth, "truth")
    if videos.shape != truth.shape:
        raise InputError(f"videos {tuple(videos.shape)} and truth {tuple(truth.shape)} differ in shape")
    return _iou(ink(videos), ink(truth)).mean(dim=1)


def vanishing_ink(videos: torch.Tensor) -> torch.Tensor:
    """Share of ink pixels of frames 1..T-1 that are gone in the following frame: (N, T, H, W) -> (N,)."""
    mask = ink(_check(videos, "videos"))
    before, after = mask[:, :-1], mask[:, 1:]
    vanished = (before & ~after).sum(dim=(1, 2, 3)).double()
    return vanished / before.sum(dim=(1, 2, 3)).double().clamp(min=1)


def last_frame_fidelity(videos: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
    """IoU of each video's last frame with its condition digit.

    videos: (N, T, H, W) in [0, 1]; conditions: (N, H, W) in [0, 1] (or uint8 digits 0..255). -> (N,)
    """
    videos, conditions = _check(videos, "videos"), torch.as_tensor(conditions)
    if conditions.dtype == torch.uint8:
        conditions = conditions.double() / 255.0
    if conditions.shape != videos[:, -1].shape:
        raise InputError(f"conditions must be shaped {tuple(videos[:, -1].shape)}, got {tuple(conditions.shape)}")
    return _iou(ink(videos[:, -1]), ink(conditions))


def flicker(videos: torch.Tensor) -> torch.Tensor:
    """Excess ink toggles per ever-inked pixel: (N, T, H, W) -> (N,); 0 for any monotone video.

    A pixel that appears once and stays toggles |last - first| times; every toggle beyond that is
    flicker (ink that vanishes and returns, or appears and vanishes).
    """
    mask = ink(_check(videos, "videos")).to(torch.int8)
    toggles = (mask[:, 1:] - mask[:, :-1]).abs().sum(dim=1)  # (N, H, W)
    needed = (mask[:, -1] - mask[:, 0]).abs()
    ever = mask.amax(dim=1).sum(dim=(1, 2)).double()
    return (toggles - needed).sum(dim=(1, 2)).double() / ever.clamp(min=1)


def frame_labels(videos: torch.Tensor, classifier, first_frame: int = 0) -> torch.Tensor:
    """The digit a classifier reads in each frame from `first_frame` (0-based) on: (N, T, H, W) -> (N, T').

    Frames are binarised first, like the classifier's training data. classifier: anything with
    `predict(images (M, 28, 28) in [0, 1]) -> labels (M,)`, e.g. `tinydiff.classifier.pretrained_classifier()`.
    """
    videos = _check(videos, "videos")
    n, t = videos.shape[:2]
    if not 0 <= first_frame < t:
        raise InputError(f"first_frame must lie in 0..{t - 1}, got {first_frame}")
    late = ink(videos[:, first_frame:]).float()  # (N, T', H, W)
    return classifier.predict(late.flatten(0, 1)).view(n, t - first_frame)


def identity_switches(videos: torch.Tensor, classifier, first_frame: int = 9) -> torch.Tensor:
    """Changes of the classified digit between consecutive frames, from `first_frame` (0-based) on: (N,).

    Early frames hold a few strokes that no classifier can name, so only the later frames count (by
    default the last six of 15). A consistent video scores 0; "a 3 in one frame, a 5 in the next" scores.
    classifier: as for `frame_labels`.
    """
    labels = frame_labels(videos, classifier, first_frame)
    return (labels[:, 1:] != labels[:, :-1]).sum(dim=1)
