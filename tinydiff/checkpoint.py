"""Checkpoints: written atomically, read without executing pickled code, self-describing.

A checkpoint is a dict of plain values and tensors: {"format", "model_config", "model", "ema", ...}. Since tinydiff
0.2, a model with labels also records how often each digit came up in its training data ("label_counts").
`torch.load(..., weights_only=True)` refuses anything else, so a hostile file cannot run code.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from importlib import resources
from pathlib import Path
from typing import Callable, TypeVar

import torch

from .errors import CheckpointError, ConfigError
from .model import CLASSES, ModelConfig, VideoUNet
from .registry import MODELS, recorded_sha256

FORMAT = "tinydiff-checkpoint-1"

def save_checkpoint(payload: dict, path: str | os.PathLike) -> None:
    """Write `payload` to `path` atomically: a temporary file in the same folder, then a rename.

    A crash at any moment leaves either the previous checkpoint or the new one, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a checkpoint is an ordinary file
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint`; any other file raises CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:  # weights_only refused a global: not plain data
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unsupported content"
        raise CheckpointError(f"{path} was refused: it holds more than weights ({first[:160]})") from None
    except Exception as error:  # torch raises many kinds for a damaged file (RuntimeError, KeyError, ...)
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or not a torch file: "
                              f"{type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a tinydiff checkpoint")
    return payload


def model_from_checkpoint(payload: dict, use_ema: bool = True) -> VideoUNet:
    """Rebuild the network a checkpoint describes and load its (EMA) weights."""
    try:
        cfg = ModelConfig.from_dict(payload["model_config"])
    except (KeyError, TypeError, ValueError) as error:  # ConfigError is a ValueError
        raise CheckpointError(f"the checkpoint's model configuration is unusable: {error}") from None
    model = VideoUNet(cfg)
    weights = payload.get("ema") if use_ema and payload.get("ema") is not None else payload.get("model")
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as error:
        summary = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"the checkpoint's weights do not fit its configuration: {summary}") from None
    return model.eval()


def label_frequencies(counts) -> torch.Tensor:
    """How often each digit 0-9 came up (counts, or frequencies) as frequencies (CLASSES,) float64 on the
    CPU summing to 1; anything else is a one-line ConfigError."""
    try:
        frequencies = torch.as_tensor(counts, dtype=torch.float64, device="cpu")
    except (TypeError, ValueError, RuntimeError):
        frequencies = None
    if frequencies is None or frequencies.shape != (CLASSES,) or not torch.isfinite(frequencies).all() \
            or (frequencies < 0).any() or frequencies.sum() <= 0:
        raise ConfigError(f"label frequencies must be {CLASSES} non-negative numbers, not all zero, got {counts!r:.80}")
    return frequencies / frequencies.sum()


def label_prior_of(payload: dict) -> torch.Tensor | None:
    """The training label frequencies a checkpoint records (`label_frequencies`), or None when it records
    none (a model without labels, or one trained before tinydiff recorded them)."""
    if payload.get("label_counts") is None:
        return None
    try:
        return label_frequencies(payload["label_counts"])
    except ConfigError as error:
        raise CheckpointError(f"the checkpoint's label counts are unusable: {error}") from None


Loaded = TypeVar("Loaded")


def load_shipped(name: str, load: Callable[[Path], Loaded]) -> Loaded:
    """Verify a file shipped inside the package against the SHA-256 its manifest records, then `load(path)` it."""
    if name not in MODELS or not MODELS[name].has_weights:
        shipped = [n for n, m in MODELS.items() if m.has_weights]
        raise ConfigError(f"no weights called {name!r} are shipped; shipped: {', '.join(shipped)}")
    weights = resources.files("tinydiff") / "weights" / f"{name}.pt"
    if not weights.is_file():
        raise CheckpointError(f"{name!r} is not shipped with this copy of tinydiff (tinydiff/weights/{name}.pt "
                              "is missing); reinstall tinydiff")
    with resources.as_file(weights) as path:
        if sha256(path) != recorded_sha256(name):
            raise CheckpointError(f"the shipped weights {path} do not match their recorded SHA-256: the file is "
                                  "damaged or was replaced; reinstall tinydiff")
        return load(path)


def sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def export_weights(src: str | os.PathLike, dst: str | os.PathLike) -> str:
    """Write an inference checkpoint: the EMA weights as "model", the configurations, the step, the training
    seconds and the training label counts.

    Drops the optimiser state and the raw weights (a third of the size). Returns the file's SHA-256.
    """
    state = load_checkpoint(src)
    model = model_from_checkpoint(state)  # validates that the weights fit the configuration
    label_prior_of(state)  # and that the label counts are usable
    save_checkpoint({"model_config": state["model_config"], "train_config": state.get("train_config"),
                     "precision": state.get("precision"), "model": model.state_dict(), "ema": None,
                     "step": state.get("step"), "elapsed_s": state.get("elapsed_s"),
                     "label_counts": state.get("label_counts")}, dst)
    return sha256(dst)
