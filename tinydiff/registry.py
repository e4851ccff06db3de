"""The shipped models, each declared once: what it is, how it was trained, what `pretrained(NAME)` builds.

Recipes are code, as nanoGPT keeps its configurations. `python -m tinydiff.ship NAME` (what `make NAME`
runs) trains a model with its recipe, exports its EMA weights to tinydiff/weights/NAME.pt and records them
in the manifest (tinydiff/weights/manifest.json): SHA-256, the recipe as trained, the step, the training
minutes and the last loss. Every load checks the file against the manifest's SHA-256. This module reads
declarations and the manifest only, so that any other module may import it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

from .errors import ConfigError
from .report import markdown_table

MANIFEST = "manifest.json"  # in tinydiff/weights/, beside the weights it describes


@dataclass(frozen=True)
class Recipe:
    """How a shipped denoiser was trained: a model preset and the TrainConfig fields that differ per model.

    Every shipped model trained on 2 CPU threads in fp32 (`TRAINED_ON`), so that its run can be repeated
    bit for bit on any CPU.
    """

    preset: str
    steps: int
    batch_size: int
    lr: float
    cond_drop: float
    label_share: float | None = None
    seed: int = 0
    checkpoint_every: int = 200
    timestep_power: float = 1.0

    def train_settings(self) -> dict:
        """The TrainConfig fields this recipe sets (everything but the preset)."""
        return {key: value for key, value in asdict(self).items() if key != "preset"}


TRAINED_ON = {"device": "cpu", "precision": "fp32", "threads": 2}


@dataclass(frozen=True)
class Shipped:
    """One artefact shipped inside the package.

    kind: "denoiser" (a `Pipeline`), "motion" (a `MotionPipeline`), "cascade" (a `Cascade` of `stages`:
    the drawer, then the writer of the drawing) or "classifier" (the judge of every figure).
    """

    name: str
    kind: str
    summary: str
    recipe: Recipe | None = None
    stages: tuple[str, ...] = ()

    @property
    def has_weights(self) -> bool:
        return self.kind != "cascade"


# The writer's recipe; the animator and the ablation networks are variations of it.
_WRITER = Recipe("default", steps=4800, batch_size=64, lr=3e-3, cond_drop=0.2, label_share=0.4)
_MOTION = Recipe("motion", steps=2500, batch_size=16, lr=2e-3, cond_drop=0.1, checkpoint_every=250,
                 timestep_power=3.0)  # RESULTS.md, "Moving digits": timesteps drawn toward high noise

MODELS: dict[str, Shipped] = {m.name: m for m in (
    Shipped("writer", "denoiser", "the course's video model: image-to-video, class-conditional and from noise "
            "(modes 20 % nothing, 40 % label, 40 % finished digit)", _WRITER),
    Shipped("animator", "denoiser", "the writer's network trained on image-to-video alone: the cascade's writing stage",
            Recipe("default", steps=4400, batch_size=64, lr=3e-3, cond_drop=0.0, label_share=0.0)),
    Shipped("digits-labelled", "denoiser", "a 2D digit model with a label (dropped half the time for guidance): "
            "the cascade's drawing stage",
            Recipe("digits-labelled", steps=5000, batch_size=128, lr=3e-3, cond_drop=0.5, label_share=0.5,
                   checkpoint_every=500)),
    Shipped("cascade", "cascade", "a digit drawn by digits-labelled, then written by the animator",
            stages=("digits-labelled", "animator")),
    # Chapter 4's ablation: the writer's recipe on one shorter budget, networks differing only in what mixes frames.
    Shipped("ablation-per-frame", "denoiser", "ablation: spatial convolutions only (every frame on its own)",
            Recipe("per-frame", steps=2000, batch_size=64, lr=3e-3, cond_drop=0.2, label_share=0.4)),
    Shipped("ablation-temporal-conv", "denoiser", "ablation: + the temporal 3x1x1 branch",
            Recipe("temporal-conv", steps=2000, batch_size=64, lr=3e-3, cond_drop=0.2, label_share=0.4)),
    Shipped("ablation-attention", "denoiser", "ablation: + temporal attention (the writer's design)",
            Recipe("default", steps=2000, batch_size=64, lr=3e-3, cond_drop=0.2, label_share=0.4)),
    Shipped("motion", "motion", "moving digits at 64x64: predicts, fills gaps and generates, from any known frames",
            _MOTION),
    # Its baselines for chapter 5 ("what does temporal modelling buy when things move?"), on a shorter budget.
    Shipped("motion-no-attention", "motion", "baseline: the motion network without temporal attention",
            replace(_MOTION, preset="motion-no-attention", steps=250)),
    Shipped("motion-per-frame", "motion", "baseline: the motion network without anything that mixes frames",
            replace(_MOTION, preset="motion-per-frame", steps=250)),
    Shipped("classifier", "classifier", "the digit classifier that judges every figure (python -m tinydiff.classifier)"),
)}
CLASSIFIER, CASCADE = "classifier", "cascade"
PRETRAINED = tuple(name for name, m in MODELS.items() if m.kind != "classifier")  # what pretrained() offers
ABLATION = ("ablation-per-frame", "ablation-temporal-conv", "ablation-attention")


def shipped(name: str) -> Shipped:
    if name not in MODELS:
        raise ConfigError(f"nothing called {name!r} is shipped; shipped: {', '.join(MODELS)}")
    return MODELS[name]


def weights_folder() -> Path:
    return Path(str(resources.files("tinydiff") / "weights"))


def manifest(path: str | Path | None = None) -> dict:
    """The manifest of the shipped weights: {name: {"sha256", "recipe", "step", "train_minutes", ...}}."""
    path = Path(path) if path is not None else weights_folder() / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"the manifest of the shipped weights ({path}) is unreadable ({error}); reinstall tinydiff") from None


def recorded_sha256(name: str) -> str:
    """The SHA-256 the manifest records for a shipped file."""
    entry = manifest().get(shipped(name).name)
    if not entry or "sha256" not in entry:
        raise ConfigError(f"the manifest records no weights for {name!r}; train them: make {name}")
    return entry["sha256"]


def record(name: str, sha256: str, path: str | Path | None = None, **facts) -> None:
    """Write (or replace) one model's manifest entry; keys stay sorted so that diffs stay small."""
    path = Path(path) if path is not None else weights_folder() / MANIFEST
    entries = manifest(path) if path.exists() else {}
    entries[name] = {"sha256": sha256, **facts}
    path.write_text(json.dumps(dict(sorted(entries.items())), indent=1) + "\n")


def shipped_table(entries: dict | None = None) -> str:
    """The "as shipped" table of RESULTS.md: each model's recipe and what the manifest records (a test keeps
    the document equal to it)."""
    entries = manifest() if entries is None else entries
    rows = []
    for name, model in MODELS.items():
        recipe, entry = model.recipe, entries.get(name, {})
        if recipe is None:
            continue
        label = recipe.label_share or 0.0
        rest = "frames" if model.kind == "motion" else "finished digit"
        rows.append([name, recipe.preset, f"{recipe.steps:,} x {recipe.batch_size}", f"{recipe.lr:g}",
                     f"{recipe.cond_drop:g} / {label:g} / {1 - recipe.cond_drop - label:g} {rest}",
                     f"{entry['train_minutes']:g}" if "train_minutes" in entry else "not recorded",
                     f"{entry['parameters']:,}" if "parameters" in entry else ""])
    lines = markdown_table(["model", "preset", "steps x batch", "lr", "trained on (nothing / label / rest)",
                            "CPU minutes", "parameters"], rows, "llrrlrr")
    return "\n".join(lines)
