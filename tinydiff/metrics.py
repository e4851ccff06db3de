"""How good is a writing video? Ink = pixel value > 0.5 on videos in [0, 1], shaped (N, T, H, W).

- `frame_iou`: intersection over union with the true writing video, frame by frame.
- `vanishing_ink`: share of ink pixels that disappear in the next frame (writing only adds ink).
- `last_frame_fidelity`: IoU of the last frame with the condition digit (the finished digit).
- `flicker`: ink toggles beyond the one a written pixel needs, per pixel that is ever inked.
- `frame_labels`, `identity_switches`: the digit a classifier reads in each frame, and how often it
  changes its mind over the late frames.

For videos generated from noise, where there is no true video to compare with:

- `last_frame_judgement`: the digit a classifier reads in the last frame, and how sure it is.
- `class_entropy`, `classes_present`: how evenly, and over how many digits, the samples spread.
- `identity_stability`: share of the late frames classified like the last frame.
- `self_consistency`: frame IoU with the true writing video of the video's own last frame.
- `nearest_training_iou`: IoU of a last frame with its nearest training digit (memorisation).
- `read_as_asked`: last frame read (as the asked digit, when there is one) with confidence.

For predicted frames of moving digits, against the true frames (the Moving MNIST benchmark's measures):

- `frame_mse`, `frame_mae`: squared and absolute error summed over a frame's pixels, per frame.
- `frame_psnr`, `frame_ssim`: peak signal-to-noise ratio and structural similarity (Wang et al. 2004), per frame.
- `digit_identity`: whether the classifier reads each digit's crop, at its true position, as its label.
- `position_error`: how far each digit is found from its true position.

And for any per-video measure: `bootstrap_interval`, a confidence interval of its mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import SIZE, writing_videos
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


def last_frame_judgement(videos: torch.Tensor, classifier) -> tuple[torch.Tensor, torch.Tensor]:
    """The digit a classifier reads in each binarised last frame, and the probability it gives it.

    videos: (N, T, H, W) in [0, 1]. classifier: anything with `probabilities(images (M, 28, 28) in
    [0, 1]) -> (M, classes)`, e.g. `tinydiff.classifier.pretrained_classifier()`.
    Returns (labels (N,) int64, confidence (N,) float): the top class and its probability.
    """
    last = ink(_check(videos, "videos")[:, -1]).float()  # (N, H, W) in {0, 1}
    probabilities = torch.as_tensor(classifier.probabilities(last))
    if probabilities.dim() != 2 or len(probabilities) != len(last):
        raise InputError(f"classifier.probabilities must return ({len(last)}, classes), "
                         f"got {tuple(probabilities.shape)}")
    confidence, labels = probabilities.max(dim=1)
    return labels, confidence


def _histogram(labels, classes: int) -> torch.Tensor:
    """Counts (classes,) of integer labels (N,) in 0..classes-1."""
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.is_floating_point() or labels.is_complex():
        raise InputError(f"labels must be a 1-D tensor of integers, got {tuple(labels.shape)} {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise InputError(f"labels must lie in 0..{classes - 1}, got {labels.min().item()}..{labels.max().item()}")
    return torch.bincount(labels.long().cpu(), minlength=classes)


def class_entropy(labels, classes: int = 10) -> float:
    """Entropy in nats of the label histogram: labels (N,) integers in 0..classes-1 -> float.

    H = -sum_c p_c ln p_c with p_c = count_c / N (0 ln 0 = 0): 0 when every sample is one digit,
    ln(classes) (2.303 for 10) when all digits are equally frequent. No labels give 0.
    """
    counts = _histogram(labels, classes).double()
    if counts.sum() == 0:
        return 0.0
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def classes_present(labels, classes: int = 10) -> int:
    """How many of the `classes` digits occur at least once among labels (N,) integers in 0..classes-1."""
    return int((_histogram(labels, classes) > 0).sum())


def identity_stability(videos: torch.Tensor, classifier, first_frame: int = 9) -> torch.Tensor:
    """Share of frames first_frame..T-1 (0-based) classified like the last frame: (N, T, H, W) -> (N,).

    By default frames 10-15 (1-based) of 15. The last frame is one of them, so a video scores between
    1/(T - first_frame) (no late frame agrees with the last) and 1 (all do). classifier: as for
    `frame_labels`.
    """
    labels = frame_labels(videos, classifier, first_frame)  # (N, T')
    return (labels == labels[:, -1:]).double().mean(dim=1)


def self_consistency(videos: torch.Tensor) -> torch.Tensor:
    """Frame IoU of each video with the true writing video of its own binarised last frame: (N, T, 28, 28) -> (N,).

    A video that writes its last frame the way `tinydiff.data.writing_video` would scores 1; one that
    ends on a clean digit but gets there in another order (or with ink that comes and goes) scores less.
    """
    videos = _check(videos, "videos")
    if videos.shape[-2:] != (28, 28):
        raise InputError(f"videos must be 28x28 frames (N, T, 28, 28), got {tuple(videos.shape)}")
    digits = ink(videos[:, -1]).to(torch.uint8).cpu() * 255  # (N, 28, 28), white ink on black
    truth = writing_videos(digits, frames=videos.shape[1]).to(videos.device)  # (N, T, 28, 28)
    return frame_iou(videos, truth)


def nearest_training_iou(last_frames: torch.Tensor, training_digits: torch.Tensor,
                         rows_per_chunk: int | None = None) -> torch.Tensor:
    """IoU of each last frame with the training digit it overlaps most: (N, H, W) x (M, H, W) -> (N,) float64.

    last_frames: (N, H, W) in [0, 1] (ink > 0.5), e.g. `videos[:, -1]`. training_digits: (M, H, W)
    uint8 0..255 as MNIST loads them (ink > 127), or bool, or floats in [0, 1] (ink > 0.5).
    A frame that is exactly a training digit scores 1; `(iou >= 0.95).float().mean()` is the share of
    samples that copy a training digit. With masks as 0/1 matrices A (N, P) and B (M, P),
    intersection = A @ B^T and union = |A| + |B| - intersection (exact in float32 for P < 2^24), taken
    `rows_per_chunk` frames at a time (default: about 4 million IoUs per chunk). Two empty masks
    agree perfectly (IoU 1), as in `frame_iou`.
    """
    frames, digits = torch.as_tensor(last_frames), torch.as_tensor(training_digits)
    if frames.dim() != 3:
        raise InputError(f"last_frames must be shaped (N, H, W) (e.g. videos[:, -1]), got {tuple(frames.shape)}")
    if digits.dim() != 3 or digits.shape[1:] != frames.shape[1:] or not len(digits):
        raise InputError(f"training_digits must be shaped (M >= 1, {frames.shape[1]}, {frames.shape[2]}), "
                         f"got {tuple(digits.shape)}")
    if digits.dtype == torch.uint8:
        digits = digits > 127
    a = ink(frames).flatten(1).float()  # (N, P)
    b = ink(digits).to(a.device).flatten(1).float()  # (M, P)
    if rows_per_chunk is None:
        rows_per_chunk = max(1, 2**22 // len(b))
    b_area, best = b.sum(dim=1).double(), []  # (M,)
    for chunk in a.split(rows_per_chunk):
        inter = (chunk @ b.T).double()  # (n, M)
        union = chunk.sum(dim=1, keepdim=True).double() + b_area - inter
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        best.append(iou.amax(dim=1))
    return torch.cat(best) if best else torch.zeros(0, dtype=torch.float64, device=a.device)


CONFIDENT = 0.9  # a last frame "reads" as a digit when the classifier gives it at least this probability
MEMORISED = 0.95  # a last frame copies a training digit when their IoU reaches this


def _asked_labels(asked, labels: torch.Tensor) -> torch.Tensor:
    """`asked` checked to be one integer label per video, on the labels' device."""
    asked = torch.as_tensor(asked)
    if asked.shape != labels.shape or asked.is_floating_point() or asked.dtype == torch.bool:
        raise InputError(f"asked must hold one integer label per video, shaped ({len(labels)},); "
                         f"got {tuple(asked.shape)} {asked.dtype}")
    return asked.to(labels.device)


def read_as_asked(videos: torch.Tensor, classifier, asked=None) -> torch.Tensor:
    """Whether each last frame is read with probability >= CONFIDENT (N,) bool; with `asked`, (N,)
    integer labels, it must also be read as the asked digit. classifier: as for `last_frame_judgement`."""
    labels, confidence = last_frame_judgement(videos, classifier)
    read = confidence >= CONFIDENT
    return read if asked is None else read & (labels == _asked_labels(asked, labels))


def generation_report(videos: torch.Tensor, classifier, training_digits: torch.Tensor,
                      asked=None) -> dict[str, float | int | list[float]]:
    """Every measure of videos generated from noise, averaged over the videos: (N, T, H, W) -> dict.

    confident_share: `read_as_asked`; entropy and classes: of the last frames' labels;
    identity_stability, self_consistency, vanishing_ink: the means of those measures; memorised_share:
    last frames with IoU >= MEMORISED to some training digit; with `asked`, also per_digit: the
    confident share of each digit 0-9 asked for (NaN for one never asked). classifier: as for
    `last_frame_judgement`.
    """
    labels, confidence = last_frame_judgement(videos, classifier)
    read = confidence >= CONFIDENT
    if asked is not None:
        asked = _asked_labels(asked, labels)
        read &= labels == asked
    report = {
        "videos": len(labels),
        "confident_share": float(read.float().mean()),
        "entropy": class_entropy(labels),
        "classes": classes_present(labels),
        "identity_stability": float(identity_stability(videos, classifier).mean()),
        "self_consistency": float(self_consistency(videos).mean()),
        "vanishing_ink": float(vanishing_ink(videos).mean()),
        "memorised_share": float((nearest_training_iou(videos[:, -1], training_digits) >= MEMORISED).double().mean()),
    }
    if asked is not None:
        report["per_digit"] = [float(read[asked == d].float().mean()) if (asked == d).any() else float("nan")
                               for d in range(10)]
    return report


def bootstrap_interval(values, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of per-video values (N,): (low, high).

    Resamples the N values with replacement `resamples` times and takes the (1 - level)/2 and
    (1 + level)/2 quantiles of the resampled means. For the difference between two models measured on
    the same seeds, pass the per-video differences (a paired interval, narrower than two separate ones).
    """
    values = torch.as_tensor(values, dtype=torch.float64).flatten().cpu()
    if len(values) < 2:
        raise InputError(f"a bootstrap interval needs at least 2 values, got {len(values)}")
    if not torch.isfinite(values).all():
        raise InputError("values must be finite numbers (no NaN or infinity)")
    if not 0 < level < 1:
        raise InputError(f"level must lie strictly between 0 and 1, got {level}")
    if resamples < 100:
        raise InputError(f"resamples must be at least 100, got {resamples}")
    g = torch.Generator().manual_seed(seed)
    chunk = max(1, 2**22 // len(values))  # resamples drawn at a time: index memory stays near 32 MB
    means = torch.cat([values[torch.randint(len(values), (min(chunk, resamples - i), len(values)), generator=g)].mean(dim=1)
                       for i in range(0, resamples, chunk)])  # (resamples,)
    low, high = torch.quantile(means, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return float(low), float(high)


# -- moving digits: predicted frames against the true ones, both (N, T, H, W) in [0, 1] ------------------


def _pair(frames: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    frames, truth = _check(frames, "frames").double(), _check(truth, "truth").double()
    if frames.shape != truth.shape:
        raise InputError(f"frames {tuple(frames.shape)} and truth {tuple(truth.shape)} differ in shape")
    return frames, truth


def frame_mse(frames: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Squared error summed over each frame's pixels: (N, T) float64. Its mean over frames and videos is
    the Moving MNIST table's "MSE" (values in [0, 1], 64 x 64 pixels)."""
    frames, truth = _pair(frames, truth)
    return (frames - truth).square().sum(dim=(2, 3))


def frame_mae(frames: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Absolute error summed over each frame's pixels: (N, T) float64."""
    frames, truth = _pair(frames, truth)
    return (frames - truth).abs().sum(dim=(2, 3))


def frame_psnr(frames: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio of each frame, 10 log10(1 / mean squared error), in dB: (N, T) float64;
    identical frames give inf."""
    frames, truth = _pair(frames, truth)
    mse = (frames - truth).square().mean(dim=(2, 3))
    return 10 * torch.log10(1.0 / mse)


SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # Wang et al.'s Gaussian window


def frame_ssim(frames: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Structural similarity of each frame (Wang et al. 2004): (N, T) float64, 1 for identical frames.

    Local means, variances and covariance under an 11 x 11 Gaussian window (sigma 1.5), constants
    (0.01 L)^2 and (0.03 L)^2 with L = 1, averaged over the positions where the window fits inside the
    frame; as scikit-image's structural_similarity(gaussian_weights=True, use_sample_covariance=False,
    data_range=1).
    """
    frames, truth = _pair(frames, truth)
    n, t, h, w = frames.shape
    if min(h, w) < SSIM_WINDOW:
        raise InputError(f"SSIM needs frames of at least {SSIM_WINDOW} x {SSIM_WINDOW} pixels, got {h} x {w}")
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64) - SSIM_WINDOW // 2
    g = torch.exp(-offsets.square() / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :])[None, None]  # (1, 1, 11, 11)

    def local(x: torch.Tensor) -> torch.Tensor:  # Gaussian-weighted local mean, valid positions only
        return F.conv2d(x.reshape(n * t, 1, h, w), kernel)

    x, y = frames, truth
    mx, my = local(x), local(y)
    vx, vy, cxy = local(x * x) - mx * mx, local(y * y) - my * my, local(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return ssim.mean(dim=(1, 2, 3)).view(n, t)


def digit_crops(frames: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """The 28 x 28 crop at each digit's corner in every frame: frames (N, T, H, W), corners (N, T, D, 2)
    (row, column) -> (N, T, D, 28, 28)."""
    frames = _check(frames, "frames")
    corners = torch.as_tensor(corners).long()
    n, t, h, w = frames.shape
    if corners.dim() != 4 or corners.shape[:2] != (n, t) or corners.shape[3] != 2:
        raise InputError(f"corners must be shaped (N, T, D, 2) = ({n}, {t}, D, 2), got {tuple(corners.shape)}")
    if (corners < 0).any() or (corners[..., 0] > h - SIZE).any() or (corners[..., 1] > w - SIZE).any():
        raise InputError(f"every crop must fit inside the {h} x {w} frame")
    offsets = torch.arange(SIZE)
    rows = (corners[..., 0, None] + offsets)[..., :, None]  # (N, T, D, 28, 1)
    cols = (corners[..., 1, None] + offsets)[..., None, :]  # (N, T, D, 1, 28)
    video = torch.arange(n)[:, None, None, None, None]
    frame = torch.arange(t)[None, :, None, None, None]
    return frames[video, frame, rows, cols]


def digit_identity(frames: torch.Tensor, corners: torch.Tensor, labels: torch.Tensor, classifier) -> torch.Tensor:
    """Whether the classifier reads each digit's crop at its true position as the digit's label:
    (N, T, D) bool. Crops are binarised first, like the classifier's training data; where the digits
    overlap, a crop holds part of the other one, in the true frames as in predicted ones.

    corners: (N, T, D, 2) true top-left corners; labels: (N, D); classifier: as for `frame_labels`.
    """
    crops = digit_crops(frames, corners)
    n, t, d = crops.shape[:3]
    labels = torch.as_tensor(labels).long()
    if labels.shape != (n, d):
        raise InputError(f"labels must be shaped (N, D) = ({n}, {d}), got {tuple(labels.shape)}")
    read = torch.as_tensor(classifier.predict(ink(crops).float().flatten(0, 2))).view(n, t, d)
    return read == labels[:, None, :]


def position_error(frames: torch.Tensor, corners: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """How far each digit is found from its true corner, in pixels: (N, T, D) float64.

    A digit is found at the placement inside the frame where the frame's 28 x 28 patch differs least from
    the digit's own image (digits: (N, D, 28, 28), in [0, 1]; the smallest sum of squared differences, so
    bold ink elsewhere does not outscore a faint digit where it is); the distance from there to the true
    corner (N, T, D, 2) is the error. On the true frames it is 0 unless the other digit overlaps this one.
    """
    frames = _check(frames, "frames").double()
    corners = torch.as_tensor(corners).long()
    digits = torch.as_tensor(digits).double()
    n, t, h, w = frames.shape
    if digits.dim() != 4 or digits.shape[0] != n or digits.shape[2:] != (SIZE, SIZE):
        raise InputError(f"digits must be shaped (N, D, {SIZE}, {SIZE}) with N = {n}, got {tuple(digits.shape)}")
    d = digits.shape[1]
    if corners.shape != (n, t, d, 2):
        raise InputError(f"corners must be shaped ({n}, {t}, {d}, 2), got {tuple(corners.shape)}")
    # |patch - digit|^2 = |patch|^2 - 2 <patch, digit> + |digit|^2; the last term is the same at every placement.
    # One grouped convolution: each frame against its own video's digit, every placement -> (N D T, H-27, W-27).
    stacked = frames[:, None].expand(n, d, t, h, w).reshape(1, n * d * t, h, w)
    correlation = F.conv2d(stacked, digits[:, :, None].expand(n, d, t, SIZE, SIZE).reshape(n * d * t, 1, SIZE, SIZE),
                           groups=n * d * t)[0]
    energy = F.conv2d(stacked.square(), torch.ones(n * d * t, 1, SIZE, SIZE, dtype=torch.float64), groups=n * d * t)[0]
    places = (energy - 2 * correlation).flatten(1).argmin(dim=1)
    width = w - SIZE + 1
    found = torch.stack([places // width, places % width], dim=-1).view(n, d, t, 2).transpose(1, 2)
    return (found - corners).double().norm(dim=-1)
