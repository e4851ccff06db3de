"""The video denoiser: a 3D U-Net with dual-branch (spatial + temporal) convolutions and temporal attention.

Every tensor inside is laid out (B, C, T, H, W): batch, channels, frames, rows, columns.

Design, following the original Tiny Diffusion network:
- each 3D convolution is split into a spatial branch, kernel (1, 3, 3), and a temporal branch, kernel
  (3, 1, 1), whose outputs are added (`DualConv`);
- temporal self-attention lets every pixel attend over the T frames at the same place (`TemporalAttention`);
- the timestep enters through an embedding MLP; image-to-video conditioning enters as an extra input
  channel holding the finished digit, zeros meaning "no condition"; a class label (optional) enters as
  a learned embedding added to the timestep's, with an eleventh entry, `NO_LABEL`, meaning "no label".
  Dropping the condition and the label during training gives the unconditional model that
  classifier-free guidance needs (`tinydiff.sampling.guided`).
With `temporal_conv` and `temporal_attention` both off, no operation mixes frames: the network is a
per-frame 2D model, the ablation of the temporal-consistency chapter. Its normalisation is per frame too
(group norm over each frame; batch norm in eval mode).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError
from .schedule import PREDICTIONS, NoiseSchedule

CLASSES = 10  # digits 0-9
NO_LABEL = CLASSES  # the label embedding's extra entry: "no label" (unconditional, or image-to-video)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a denoiser and its diffusion process; stored in every checkpoint."""

    channels: tuple[int, ...] = (32, 64, 128)  # width of each resolution level (28, 14, 7 px at patch 1)
    patch: int = 1  # space-to-depth factor: the U-Net sees (size/patch)^2 positions, patch^2 x the channels
    blocks_per_level: int = 1  # residual blocks per level, on the way down and on the way up
    attention_levels: tuple[int, ...] = (1, 2)  # levels (0 = full resolution) with temporal attention
    attention_heads: int = 4
    norm: str = "group"  # "group" (per-frame GroupNorm) or "batch" (BatchNorm3d, the original's)
    groups: int = 8  # groups of the group norm
    activation: str = "silu"  # "silu" or "relu" (the original's)
    time_embedding: str = "sinusoidal"  # "sinusoidal" + MLP, or "mlp" on t / T (the original's)
    temporal_conv: bool = True  # the (3, 1, 1) branch of every convolution
    temporal_attention: bool = True  # attention over frames at `attention_levels`
    coord_channels: bool = True  # input channels holding the row and the frame position
    film: bool = False  # per-frame scale-and-shift conditioning on (timestep, frame position) embeddings
    global_context: bool = False  # the coarsest level also sees each frame's spatial max (per channel)
    ink_distance: bool = False  # an input channel: the distance transform of the condition's ink
    conditional: bool = True  # an input channel holding the finished digit (image-to-video)
    known_frames: bool = False  # two input channels: the known frames and their mask (masked conditioning)
    labels: bool = False  # a class-label embedding: digits 0-9 and NO_LABEL (class-conditional generation)
    frames: int = 15
    size: int = 28
    prediction: str = "eps"  # what the network outputs: "eps", "v" or "x0"
    schedule: str = "linear"  # noise schedule: "linear" or "cosine"
    num_timesteps: int = 1000

    def __post_init__(self):
        self.channels = _integers("channels", self.channels)
        self.attention_levels = _integers("attention_levels", self.attention_levels)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
                raise ConfigError(f"{f.name} must be a positive integer, got {value!r}")
            if f.type == "bool" and not isinstance(value, bool):
                raise ConfigError(f"{f.name} must be True or False, got {value!r}")
        choices = {"norm": ("group", "batch"), "activation": ("silu", "relu"),
                   "time_embedding": ("sinusoidal", "mlp"), "prediction": PREDICTIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(f"channels must be positive widths, got {self.channels}")
        if self.norm == "group" and any(c % self.groups for c in self.channels):
            raise ConfigError(f"every width in channels {self.channels} must be divisible by groups={self.groups}")
        if any(c % self.attention_heads for c in self.channels):
            raise ConfigError(f"every width in channels {self.channels} must be divisible by attention_heads")
        if any(not 0 <= a < len(self.channels) for a in self.attention_levels):
            raise ConfigError(f"attention_levels {self.attention_levels} must lie in 0..{len(self.channels) - 1}")
        if self.known_frames and (self.conditional or self.ink_distance or self.labels):
            raise ConfigError("known_frames replaces the finished-digit condition and the label: set conditional, "
                              "ink_distance and labels to False")
        if self.known_frames and self.frames < 3:
            raise ConfigError(f"known_frames needs at least 3 frames (a known start, a gap, a known end), got {self.frames}")
        if self.patch < 1 or self.size % (self.patch * 2 ** (len(self.channels) - 1)):
            raise ConfigError(f"size {self.size} cannot be cut into {self.patch}-pixel patches and halved "
                              f"{len(self.channels) - 1} times")
        NoiseSchedule(self.schedule, self.num_timesteps)  # validates the schedule's name and length

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        return from_known_fields(cls, values, "model")


def from_known_fields(cls, values: dict, what: str):
    """A configuration dataclass from a dict of its fields; an unknown key is a ConfigError naming it (a
    misspelt setting must not be dropped silently)."""
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {what} settings: {', '.join(sorted(unknown))}")
    return cls(**values)


def _integers(name: str, values) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise ConfigError(f"{name} must be a sequence of integers, got {values!r}")
    return tuple(int(v) for v in values)


# A 2D digit model, the base of tinydiff.cascade's first stage: the finished digit as a one-frame video, drawn
# from nothing; the default network at twice its width (one frame costs a fifteenth of a video, and this stage
# decides the digit), without the condition, the label, the ink-distance hint or anything temporal. Not shipped
# without labels: a labelled one draws digits the classifier reads more often (RESULTS.md).
_DIGITS = ModelConfig(channels=(32, 64), patch=2, attention_levels=(1,), film=True, global_context=True,
                      conditional=False, frames=1, prediction="x0", schedule="cosine", temporal_conv=False,
                      temporal_attention=False)

# Moving digits (tinydiff.moving) at 64x64, 20 frames, conditioned on any known frames through a mask
# (tinydiff.motion): 4x4 patches, so the U-Net runs at 16, 8 and 4 px, with temporal attention at every level
# (RESULTS.md, "Moving digits": at 24/48/96 channels and attention at 8 and 4 px it did not learn to carry a digit
# from one frame to the next).
_MOTION = ModelConfig(channels=(32, 64, 96), patch=4, attention_levels=(0, 1, 2), film=True, global_context=True,
                      conditional=False, known_frames=True, frames=20, size=64, prediction="x0", schedule="cosine")

PRESETS: dict[str, ModelConfig] = {
    # The original Tiny Diffusion network: BatchNorm3d + ReLU, an MLP on the timestep, no attention.
    "original": ModelConfig(channels=(32, 64, 128), blocks_per_level=1, attention_levels=(), norm="batch",
                            activation="relu", time_embedding="mlp", temporal_attention=False,
                            coord_channels=False),
    # The course's default (see RESULTS.md): 2x2 patches, so the U-Net runs at 14 and 7 px; temporal
    # attention at 7 px; x0-prediction, cosine schedule; per-frame FiLM, global context, ink distance;
    # a label embedding for "write me a 7". 16 and 32 channels: a quarter of 32 and 64's arithmetic and about
    # 2.5 times their training speed, so twice the steps reach the same quality in three quarters of the
    # time (RESULTS.md, "A network four times cheaper").
    "default": ModelConfig(channels=(16, 32), patch=2, attention_levels=(1,), film=True, global_context=True,
                           ink_distance=True, labels=True, prediction="x0", schedule="cosine"),
    # The ablations of the temporal-consistency chapter, identical but for what mixes frames.
    "per-frame": ModelConfig(channels=(16, 32), patch=2, attention_levels=(1,), film=True, global_context=True,
                             ink_distance=True, labels=True, prediction="x0", schedule="cosine", temporal_conv=False,
                             temporal_attention=False),
    "temporal-conv": ModelConfig(channels=(16, 32), patch=2, attention_levels=(1,), film=True,
                                 global_context=True, ink_distance=True, labels=True, prediction="x0", schedule="cosine",
                                 temporal_attention=False),
    "digits": _DIGITS,
    "motion": _MOTION,
    # Its baselines, identical but for what mixes frames: no attention (temporal convolutions only), and
    # nothing at all (every frame on its own: it cannot see the known frames of any other).
    "motion-no-attention": replace(_MOTION, temporal_attention=False),
    "motion-per-frame": replace(_MOTION, temporal_conv=False, temporal_attention=False),
    # The same with a label embedding, trained with the label dropped half the time for classifier-free
    # guidance: the shipped cascade's first stage, for "write me a 7" and, through a label drawn from the
    # training frequencies, for any digit (RESULTS.md).
    "digits-labelled": replace(_DIGITS, labels=True),
    # Test-sized (10,896 parameters), with every component `default` uses: 2x2 patches, temporal
    # attention at the coarsest level, FiLM, global context, ink distance, labels, x0-prediction, cosine.
    "tiny": ModelConfig(channels=(4, 8), patch=2, attention_levels=(1,), attention_heads=2, groups=2, film=True,
                        global_context=True, ink_distance=True, labels=True, prediction="x0", schedule="cosine"),
}


def preset(name: str, **overrides) -> ModelConfig:
    """A named configuration, optionally with some fields replaced."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
    return ModelConfig.from_dict({**PRESETS[name].to_dict(), **overrides})


# -- building blocks ---------------------------------------------------------------------------------


class FrameGroupNorm(nn.Module):
    """GroupNorm computed separately for every frame, so that normalising never mixes frames."""

    def __init__(self, groups: int, channels: int, eps: float = 1e-5):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        g = self.groups
        # Statistics in fp32 whatever x's dtype: a bf16 variance loses the small differences it measures.
        xf = x.float()
        var, mean = torch.var_mean(xf.reshape(b, g, c // g, t, h * w), dim=(2, 4), keepdim=True, unbiased=False)
        # Fold the normalisation and the affine map into one scale and shift per (sample, channel,
        # frame): a single fused pass over x instead of four.
        scale = torch.rsqrt(var + self.eps) * self.weight.float().view(1, g, c // g, 1, 1)  # (B, G, C/G, T, 1)
        shift = self.bias.float().view(1, g, c // g, 1, 1) - mean * scale
        return torch.addcmul(shift.reshape(b, c, t, 1, 1), xf, scale.reshape(b, c, t, 1, 1)).to(x.dtype)


def make_norm(cfg: ModelConfig, channels: int) -> nn.Module:
    return FrameGroupNorm(cfg.groups, channels) if cfg.norm == "group" else nn.BatchNorm3d(channels)


def make_activation(cfg: ModelConfig) -> nn.Module:
    return nn.SiLU() if cfg.activation == "silu" else nn.ReLU()


class DualConv(nn.Module):
    """A 3x3x3 convolution split into a spatial (1, 3, 3) and a temporal (3, 1, 1) branch, summed.

    (B, C_in, T, H, W) -> (B, C_out, T, H, W). 12 C_in C_out weights per output instead of 27 C_in C_out.
    """

    def __init__(self, c_in: int, c_out: int, temporal: bool = True):
        super().__init__()
        self.spatial = nn.Conv3d(c_in, c_out, (1, 3, 3), padding=(0, 1, 1))
        self.temporal = nn.Conv3d(c_in, c_out, (3, 1, 1), padding=(1, 0, 0), bias=False) if temporal else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.spatial(x)
        return out if self.temporal is None else out + self.temporal(x)


class ResBlock(nn.Module):
    """norm -> act -> DualConv -> + time embedding -> norm -> act -> DualConv, plus a skip connection."""

    def __init__(self, cfg: ModelConfig, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1, self.norm2 = make_norm(cfg, c_in), make_norm(cfg, c_out)
        self.act = make_activation(cfg)
        self.conv1 = DualConv(c_in, c_out, cfg.temporal_conv)
        self.conv2 = DualConv(c_out, c_out, cfg.temporal_conv)
        self.film = cfg.film
        self.emb = nn.Linear(emb_dim, 2 * c_out if cfg.film else c_out)
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """x: (B, C_in, T, H, W); emb: (B, T, D), one embedding per sample and frame."""
        h = self.conv1(self.act(self.norm1(x)))
        e = self.emb(emb).transpose(1, 2)[..., None, None]  # (B, T, C') -> (B, C', T, 1, 1)
        if self.film:  # improved-diffusion's scale-shift norm, per frame
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.act(h))
        return h + self.skip(x)


def sinusoidal_embedding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sin/cos features: (N,) float -> (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)
    angles = positions.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TemporalAttention(nn.Module):
    """Self-attention over frames: each pixel (b, h, w) attends over its T frames.

    (B, C, T, H, W) -> (B, C, T, H, W), residual; the output projection starts at zero so that a new
    block begins as the identity. Frame positions enter as fixed sinusoidal features.
    """

    def __init__(self, channels: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        tokens = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)  # 'b c t h w -> (b h w) t c'
        frames = sinusoidal_embedding(torch.arange(t, device=x.device), c).to(x.dtype)
        q, k, v = self.qkv(self.norm(tokens) + frames).chunk(3, dim=-1)
        q, k, v = (z.reshape(b * h * w, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        # Softmax in fp32 (autocast would run it in half precision); over T = 15 frames this costs little.
        with torch.autocast(x.device.type, enabled=False):
            attended = F.scaled_dot_product_attention(q.float(), k.float(), v.float())  # (BHW, heads, T, C/heads)
        attended = self.out(attended.to(v.dtype).transpose(1, 2).reshape(b * h * w, t, c))
        return x + attended.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2)  # back to (B, C, T, H, W)


class TimeEmbedding(nn.Module):
    """Timestep t (B,) long -> (B, dim): an MLP on t / T (the original's choice) or on sinusoidal features."""

    def __init__(self, cfg: ModelConfig, dim: int):
        super().__init__()
        self.kind, self.num_timesteps, self.dim = cfg.time_embedding, cfg.num_timesteps, dim
        self.mlp = nn.Sequential(nn.Linear(1 if self.kind == "mlp" else dim, dim), make_activation(cfg),
                                 nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if self.kind == "mlp":  # scaled to [0, 1): a raw integer timestep would saturate the first layer
            return self.mlp((t.float() / self.num_timesteps)[:, None])
        return self.mlp(sinusoidal_embedding(t, self.dim))


class Level(nn.Module):
    """The residual blocks (and attention) of one resolution level on one side of the U."""

    def __init__(self, cfg: ModelConfig, c_in: int, c_out: int, emb_dim: int, attention: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            ResBlock(cfg, c_in if i == 0 else c_out, c_out, emb_dim) for i in range(cfg.blocks_per_level)
        )
        self.attention = TemporalAttention(c_out, cfg.attention_heads) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, emb)
        return x if self.attention is None else self.attention(x)


def space_to_depth(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C p^2, T, H/p, W/p): each p x p patch of a frame becomes channels."""
    if patch == 1:
        return x
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // patch, patch, w // patch, patch)
    return x.permute(0, 1, 4, 6, 2, 3, 5).reshape(b, c * patch * patch, t, h // patch, w // patch)


def depth_to_space(x: torch.Tensor, patch: int) -> torch.Tensor:
    """The inverse of `space_to_depth`: (B, C p^2, T, H, W) -> (B, C, T, H p, W p)."""
    if patch == 1:
        return x
    b, cpp, t, h, w = x.shape
    c = cpp // (patch * patch)
    x = x.reshape(b, c, patch, patch, t, h, w).permute(0, 1, 4, 5, 2, 6, 3)
    return x.reshape(b, c, t, h * patch, w * patch)


def ink_distance(condition: torch.Tensor, scale: float = 4.0) -> torch.Tensor:
    """The Euclidean distance transform of the condition's ink, divided by `scale`: (B, 1, H, W).

    Each ink pixel's distance to the nearest paper pixel, exactly as scipy's distance_transform_edt,
    computed on any device by brute force in two separable passes: the squared distance to the nearest
    paper pixel in the same row (a minimum over all W columns), then, for each pixel, the minimum over
    all H rows of that row distance plus the squared row offset; O(H W (H + W)) work, no loops in
    Python. Ink is condition > 0, so a dropped (zero) condition gives zeros; an image without any
    paper reads as deep as it is large.
    """
    b, _, h, w = condition.shape
    paper = condition[:, 0] <= 0  # (B, H, W)
    far = float(h * h + w * w)
    cols = torch.arange(w, device=condition.device, dtype=torch.float32)
    rows = torch.arange(h, device=condition.device, dtype=torch.float32)
    across = (cols[:, None] - cols[None, :]).square()  # (W, W): squared column offsets
    # Pass 1: squared distance to the nearest paper pixel in the same row, (B, H, W).
    along_row = torch.where(paper[:, :, None, :], across, torch.full_like(across, far)).amin(dim=3)
    # Pass 2: over all rows r', the row distance at r' plus the squared row offset, (B, H, W).
    down = (rows[:, None] - rows[None, :]).square()  # (H, H)
    squared = (along_row[:, None, :, :] + down[None, :, :, None]).amin(dim=2)
    return (squared.clamp(max=far).sqrt() * ~paper / scale)[:, None].to(condition.dtype)


# -- the network -------------------------------------------------------------------------------------


class VideoUNet(nn.Module):
    """The denoiser: (x_t (B, 1, T, H, W), t (B,), condition (B, 1, H, W) or None, label (B,) or None)
    -> (B, 1, T, H, W).

    The output is the prediction named by `cfg.prediction`. condition=None (or zeros) means no
    condition; label=None (or NO_LABEL entries) means no label; with neither, the prediction is
    unconditional.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        widths = cfg.channels
        emb_dim = 4 * widths[0]
        attention = [cfg.temporal_attention and i in cfg.attention_levels for i in range(len(widths))]
        extra = int(cfg.conditional) * (1 + int(cfg.ink_distance)) + 2 * int(cfg.known_frames) + 2 * int(cfg.coord_channels)
        in_channels = (1 + extra) * cfg.patch**2
        self.time = TimeEmbedding(cfg, emb_dim)
        self.label = nn.Embedding(CLASSES + 1, emb_dim) if cfg.labels else None
        self.frame = nn.Linear(emb_dim, emb_dim) if cfg.film else None
        self.context = nn.Conv3d(widths[-1], widths[-1], 1) if cfg.global_context else None
        if self.context is not None:
            nn.init.zeros_(self.context.weight)
        self.stem = DualConv(in_channels, widths[0], cfg.temporal_conv)
        self.down = nn.ModuleList(
            Level(cfg, widths[max(i - 1, 0)], w, emb_dim, attention[i]) for i, w in enumerate(widths)
        )
        self.middle = Level(cfg, widths[-1], widths[-1], emb_dim, attention[-1])
        self.up = nn.ModuleList(Level(cfg, 2 * w, w, emb_dim, attention[i]) for i, w in enumerate(widths))
        # Up-sampling from level i + 1 to level i: nearest neighbour in space, then a spatial conv.
        self.upsample = nn.ModuleList(nn.Conv3d(widths[i + 1], widths[i], (1, 3, 3), padding=(0, 1, 1))
                                      for i in range(len(widths) - 1))
        self.head = nn.Sequential(make_norm(cfg, widths[0]), make_activation(cfg),
                                  DualConv(widths[0], cfg.patch**2, cfg.temporal_conv))

    def _inputs(self, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        b, _, t, h, w = x.shape
        parts = [x]
        if self.cfg.conditional:
            cond = torch.zeros(b, 1, h, w, dtype=x.dtype, device=x.device) if condition is None else condition
            parts.append(cond.to(x.dtype)[:, :, None].expand(b, 1, t, h, w))  # the digit in every frame
            if self.cfg.ink_distance:
                parts.append(ink_distance(cond).to(x.dtype)[:, :, None].expand(b, 1, t, h, w))
        if self.cfg.known_frames:  # (B, 2, T, H, W): the known frames (zero elsewhere) and the mask (1 = known)
            parts.append(torch.zeros(b, 2, t, h, w, dtype=x.dtype, device=x.device) if condition is None
                         else condition.to(x.dtype))
        if self.cfg.coord_channels:
            rows = torch.linspace(1, -1, h, dtype=x.dtype, device=x.device).view(1, 1, 1, h, 1)
            # torch.linspace(-1, 1, 1) is [-1]; spelled out for one frame, as ONNX's linspace divides by t - 1
            frame = (torch.linspace(-1, 1, t, dtype=x.dtype, device=x.device) if t > 1 else
                     torch.full((1,), -1.0, dtype=x.dtype, device=x.device)).view(1, 1, t, 1, 1)
            parts += [rows.expand(b, 1, t, h, w), frame.expand(b, 1, t, h, w)]
        return torch.cat(parts, dim=1)  # (B, C_in, T, H, W)

    def forward(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None = None,
                label: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time(t)
        if self.label is not None:
            if label is None:
                label = torch.full(t.shape, NO_LABEL, dtype=torch.long, device=t.device)
            emb = emb + self.label(label)
        elif label is not None:
            raise ConfigError("this model has no label embedding (it was trained without labels)")
        emb = emb[:, None]  # (B, 1, D): the same for every frame ...
        if self.frame is not None:  # ... unless frames get their own position embedding: (B, T, D)
            positions = sinusoidal_embedding(torch.arange(x.shape[2], device=x.device), emb.shape[-1])
            emb = emb + self.frame(positions.to(emb.dtype))[None]
        h = self.stem(space_to_depth(self._inputs(x, condition), self.cfg.patch))
        skips = []
        for i, level in enumerate(self.down):
            h = level(h, emb)
            skips.append(h)
            if i < len(self.down) - 1:
                h = F.avg_pool3d(h, (1, 2, 2))  # halve H and W, keep T
        if self.context is not None:  # global context: each frame's max over space, per channel
            h = h + self.context(h.amax(dim=(3, 4), keepdim=True))
        h = self.middle(h, emb)
        for i in reversed(range(len(self.up))):
            if i < len(self.up) - 1:
                h = self.upsample[i](F.interpolate(h, scale_factor=(1, 2, 2), mode="nearest"))
            h = self.up[i](torch.cat([h, skips.pop()], dim=1), emb)
        return depth_to_space(self.head(h), self.cfg.patch)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def frame_influence(model: VideoUNet, frame: int, seed: int = 0) -> torch.Tensor:
    """How much each output frame moves when only input frame `frame` is perturbed: (T,) max |change|.

    Zero everywhere but `frame` means the network is per-frame; the spread shows its reach in time.
    """
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 1, cfg.frames, cfg.size, cfg.size, generator=g)
    condition = torch.randn(1, 1, cfg.size, cfg.size, generator=g).sign()
    t = torch.tensor([cfg.num_timesteps // 2])
    nudged = x.clone()
    nudged[:, :, frame] += torch.randn(nudged[:, :, frame].shape, generator=g)
    was_training = model.training
    model.eval()
    change = (model(nudged, t, condition) - model(x, t, condition)).abs().amax(dim=(0, 1, 3, 4))
    model.train(was_training)
    return change


REACHED = 1e-6  # an output frame is reached when it moves by more than this share of the nudged frame's change


def frames_reached(model: VideoUNet, frame: int, seed: int = 0) -> torch.Tensor:
    """Which output frames a nudge to input frame `frame` reaches: (T,) bool.

    The course's one definition of reach in time: an output frame moves by more than REACHED times what
    the nudged frame itself moves (far above float32 round-off, so a per-frame network reaches 1 frame;
    far below what a viewer could see, so stacked temporal convolutions count as far as their
    fading tail carries).
    """
    change = frame_influence(model, frame, seed)
    return change > REACHED * change[frame]
