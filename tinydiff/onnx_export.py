"""The networks as ONNX graphs, for onnxruntime and for the book's pages (onnxruntime-web).

A graph takes the inputs its network takes, named as `VideoUNet.forward` names them:

- `x`: x_t, (B, 1, T, H, W) float32;
- `t`: the timesteps, (B,) int64;
- `condition`, for a network that takes one: the finished digit (B, 1, H, W) in [-1, 1], zeros for none;
  or, for a moving-digits network, the known frames and their mask (B, 2, T, H, W) (`tinydiff.motion`);
- `label`, for a network with a label embedding: (B,) int64, `NO_LABEL` (10) for none.

Its one output, `prediction` (B, 1, T, H, W), is what the network predicts (`cfg.prediction`). The batch
size is free; frames and size are the network's own.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .checkpoint import load_shipped
from .errors import ConfigError, InputError
from .model import NO_LABEL, ModelConfig, VideoUNet
from .registry import MODELS
from .train import load_trained

OPSET = 18  # run by onnxruntime 1.32 and by onnxruntime-web 1.31 (WebAssembly) alike


def input_names(cfg: ModelConfig) -> list[str]:
    """The graph's inputs, in order."""
    return ["x", "t"] + ["condition"] * (cfg.conditional or cfg.known_frames) + ["label"] * cfg.labels


def example_inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs of the right shapes and types, {name: tensor}: what the graph is traced with and tested on."""
    g = torch.Generator().manual_seed(seed)
    size, frames = cfg.size, cfg.frames
    inputs = {"x": torch.randn(batch, 1, frames, size, size, generator=g),
              "t": torch.randint(0, cfg.num_timesteps, (batch,), generator=g)}
    if cfg.conditional:
        inputs["condition"] = torch.rand(batch, 1, size, size, generator=g).round() * 2 - 1
    if cfg.known_frames:
        known = torch.rand(batch, 1, frames, 1, 1, generator=g).round()
        frames_given = torch.rand(batch, 1, frames, size, size, generator=g) * 2 - 1
        inputs["condition"] = torch.cat([frames_given * known, known.expand(-1, -1, -1, size, size)], dim=1)
    if cfg.labels:
        inputs["label"] = torch.randint(0, NO_LABEL + 1, (batch,), generator=g)
    return inputs


def load_network(source: str | os.PathLike) -> VideoUNet:
    """A shipped network by name (its file verified against the manifest), or a checkpoint's EMA network."""
    name = str(source)
    if name in MODELS:
        model = MODELS[name]
        if model.kind == "classifier":
            raise InputError(f"{name!r} is the digit classifier, not a denoiser; export a denoiser")
        if model.kind == "cascade":
            raise InputError(f"{name!r} is two networks; export its stages one by one: {', '.join(model.stages)}")
        return load_shipped(name, lambda path: load_trained(path)[1])
    if not Path(source).is_file():
        shipped = [n for n, m in MODELS.items() if m.has_weights and m.kind != "classifier"]
        raise InputError(f"{source} is neither a checkpoint file nor a shipped network ({', '.join(shipped)})")
    return load_trained(source)[1]


class _Graph(nn.Module):
    """The network with exactly the inputs the graph has (no optional arguments)."""

    def __init__(self, model: VideoUNet):
        super().__init__()
        self.model, self.names = model, input_names(model.cfg)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        named = dict(zip(self.names, inputs))
        return self.model(named["x"], named["t"], named.get("condition"), named.get("label"))


def export_onnx(model: VideoUNet, path: str | os.PathLike) -> Path:
    """Write `model` (on the CPU, in fp32, in eval mode) as an ONNX graph to `path`. Returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise InputError(f"an ONNX graph is written to a .onnx file, got {path}")
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: the folder {path.parent} does not exist")
    try:
        import onnx  # noqa: F401  (torch's ONNX exporter writes through it)
    except ImportError:
        raise ConfigError("exporting to ONNX needs the onnx package: pip install onnx") from None
    model = model.cpu().float().eval()
    inputs = example_inputs(model.cfg)
    # The TorchScript exporter: torch.export's (dynamo=True) takes minutes per network on 2 cores, and
    # without its optimiser writes a graph onnxruntime refuses. The graph is traced, so the shapes that
    # become constants in it (frames, size) are the network's own; the batch stays free.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the exporter's notice that dynamo is the default
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # sizes traced as constants, as intended
        torch.onnx.export(_Graph(model), tuple(inputs.values()), str(path), dynamo=False, opset_version=OPSET,
                          input_names=list(inputs), output_names=["prediction"],
                          dynamic_axes={name: {0: "batch"} for name in [*inputs, "prediction"]})
    return path
