"""Masked conditioning on known frames: one network that predicts, fills gaps and generates moving digits.

The network sees, beside x_t, the known frames (zero elsewhere) and a mask channel (1 where a frame is
known), as in Video Diffusion Models and MCVD. Training draws a random mask for every video, so the same
weights learn every task a mask can express: the future from k past frames, the frames between given
ones, and a video from nothing (an all-zero mask, which is also the unconditional branch that
classifier-free guidance pushes from). Chapter 3's image-to-video is the same idea for one known frame, the
last (there the writer gets it in a channel of its own).
"""

from __future__ import annotations

import torch

from .errors import ConfigError

# How training masks are drawn, after the share `cond_drop` with no frame known (TrainConfig):
# "past", the first k frames known, k uniform in 1..T-1 (prediction); "ends", the first a and last b
# frames known (interpolation over one gap); "random", each frame known with probability 1/2, at least one
# unknown (scattered gaps). Shares of the conditioned videos.
MASK_SHARES = {"past": 0.6, "ends": 0.2, "random": 0.2}  # they add up to 1: "random" takes what the others leave


def training_masks(n: int, frames: int, cond_drop: float, generator: torch.Generator,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """Random known-frame masks (n, frames) float32 in {0, 1} (1 = known), drawn as `MASK_SHARES` says."""
    if frames < 3:
        raise ConfigError("masked conditioning needs at least three frames (a known start, a gap, a known end)")
    kind = torch.rand(n, generator=generator, device=device)
    position = torch.arange(frames, device=device)[None]  # (1, T)
    k = torch.randint(1, frames, (n, 1), generator=generator, device=device)  # 1..T-1 known at the start
    past = position < k
    # "ends": a known start of length a >= 1 and a known end of length b >= 1, with a + b <= T - 1.
    a = torch.randint(1, frames - 1, (n, 1), generator=generator, device=device)
    b = (torch.rand(n, 1, generator=generator, device=device) * (frames - 1 - a)).floor().long() + 1
    ends = (position < a) | (position >= frames - b)
    scattered = torch.rand(n, frames, generator=generator, device=device) < 0.5
    scattered[torch.arange(n, device=device), torch.randint(0, frames, (n,), generator=generator, device=device)] = False
    share_past, share_ends = MASK_SHARES["past"], MASK_SHARES["ends"]
    rest = (kind - cond_drop) / max(1.0 - cond_drop, 1e-12)  # uniform in [0, 1) among the conditioned
    masks = torch.where((rest < share_past)[:, None], past,
                        torch.where((rest < share_past + share_ends)[:, None], ends, scattered))
    masks &= (kind >= cond_drop)[:, None]
    return masks.float()


def known_condition(videos: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The network's condition: videos (B, 1, T, H, W) in [-1, 1] and masks (B, T) -> (B, 2, T, H, W).

    Channel 0 holds the known frames and zero elsewhere, channel 1 the mask broadcast over each frame.
    An all-zero mask gives an all-zero condition: the unconditional model.
    """
    b, _, t, h, w = videos.shape
    mask = known.to(videos.dtype).view(b, 1, t, 1, 1)
    return torch.cat([videos * mask, mask.expand(b, 1, t, h, w)], dim=1)


def unknown_weights(known: torch.Tensor) -> torch.Tensor:
    """Per-frame loss weights (B, T): the unknown frames, or every frame of a video with none known.

    The known frames are given, so fitting them teaches nothing; weights are normalised per video so that
    each video counts the same whatever its number of unknown frames.
    """
    unknown = 1.0 - known
    unknown = torch.where(unknown.sum(dim=1, keepdim=True) > 0, unknown, torch.ones_like(unknown))
    return unknown / unknown.sum(dim=1, keepdim=True)
