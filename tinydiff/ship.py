"""Retrain a shipped model with its declared recipe (`tinydiff.registry`), export it into the package, record it.

    python -m tinydiff.ship list               # every shipped model, its recipe and its manifest entry
    python -m tinydiff.ship motion             # `make motion`: train runs/motion (resuming), export, record
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, fields, replace
from pathlib import Path

from .checkpoint import export_weights, load_checkpoint
from .errors import ConfigError, TinydiffError
from .model import count_parameters, preset
from .registry import MANIFEST, MODELS, TRAINED_ON, manifest, record, shipped, weights_folder
from .train import TrainConfig, train


def train_config(name: str, out_dir: str | Path, data_root=None, **changes):
    """The TrainConfig of a shipped denoiser's recipe, writing to `out_dir`; `changes` replace any of its
    fields (chapter 4's other training seeds: `seed=1`; a GPU run: `device="cuda", steps=...`)."""
    recipe = shipped(name).recipe
    if recipe is None:
        raise ConfigError(f"{name!r} is not a denoiser trained by tinydiff.train")
    cfg = TrainConfig(out_dir=str(out_dir), data_root=data_root, **recipe.train_settings(), **TRAINED_ON)
    unknown = sorted(set(changes) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ConfigError(f"no training setting {', '.join(unknown)}")
    return replace(cfg, **changes)


def train_and_ship(name: str, runs: str | Path = "runs", data_root=None, progress: bool = True) -> str:
    """Train (or resume) a shipped denoiser with its recipe in runs/NAME, export its EMA weights into the
    package and record them in the manifest. Returns the SHA-256."""
    recipe = shipped(name).recipe
    cfg = train_config(name, Path(runs) / name, data_root)
    result = train(preset(recipe.preset), cfg, progress=progress)
    target = weights_folder() / f"{name}.pt"
    digest = export_weights(result.checkpoint, target)
    state = load_checkpoint(result.checkpoint)
    record(name, digest, recipe=asdict(recipe), step=state["step"], train_minutes=round(state["elapsed_s"] / 60, 1),
           last_loss=round(sum(state["losses"][-100:]) / len(state["losses"][-100:]), 5),
           parameters=count_parameters(result.ema))
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinydiff.ship", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", metavar="NAME", help="'list', or denoisers to retrain: " + ", ".join(
        name for name, m in MODELS.items() if m.recipe is not None))
    parser.add_argument("--runs", default="runs", help="folder of the training runs (default: runs)")
    parser.add_argument("--data-root", help="MNIST root (default: $TINYDIFF_DATA, else the per-user cache)")
    args = parser.parse_args(argv)
    try:
        if args.names == ["list"]:
            entries = manifest()
            for name, model in MODELS.items():
                print(f"{name} ({model.kind}): {model.summary}")
                if model.recipe:
                    print(f"  recipe: {model.recipe}")
                if model.stages:
                    print(f"  stages: {' -> '.join(model.stages)}")
                if name in entries:
                    print(f"  manifest: {entries[name]}")
            return 0
        for name in args.names:
            train_config(name, args.runs)  # refuse a name without a recipe before hours of training
        for name in args.names:
            digest = train_and_ship(name, args.runs, args.data_root)
            print(f"{name}: exported to tinydiff/weights/{name}.pt (SHA-256 {digest}), recorded in {MANIFEST}")
    except TinydiffError as error:
        print(f"python -m tinydiff.ship: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
