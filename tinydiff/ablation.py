"""The temporal-consistency ablation: three networks that differ only in how their frames talk.

    ablation-per-frame      spatial 1x3x3 convolutions only: every frame is denoised on its own
    ablation-temporal-conv  + the temporal 3x1x1 branch in every block (a few neighbouring frames)
    ablation-attention      + temporal attention at 7 px (every frame sees all 15; the writer's design)

All three are trained with the same budget (`BUDGET`, `make ablation`) and ship inside the package:
`tinydiff.pretrained("ablation-per-frame")` and so on. `compare` samples them all from the same noise
and measures what chapter 4 of the course tabulates.
"""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from .errors import InputError
from .metrics import flicker, frame_iou, identity_switches, last_frame_fidelity, vanishing_ink
from .pipeline import Pipeline, pretrained

# Shipped name -> the model preset it was trained from.
VARIANTS: dict[str, str] = {
    "ablation-per-frame": "per-frame",
    "ablation-temporal-conv": "temporal-conv",
    "ablation-attention": "default",
}
# The one training budget all three share (the tinydiff train options of `make ablation`).
BUDGET = {"steps": 1000, "batch_size": 16, "lr": 2e-3, "seed": 0}

# metric key -> (column heading, format). Two decimals: a few dozen videos measure a mean
# no closer than about 0.01, and a third digit would change with the order of float sums on another CPU.
COLUMNS = {
    "iou": ("frame IoU", "{:.2f}"),
    "last": ("last-frame IoU", "{:.2f}"),
    "vanish": ("vanishing ink", "{:.1%}"),
    "flicker": ("flicker", "{:.2f}"),
    "switches": ("identity switches / video", "{:.2f}"),
    "switched": ("videos that switch", "{:.0%}"),
    "seconds": ("sampling s", "{:.1f}"),
}


def load_variants(device=None) -> dict[str, Pipeline]:
    """The three shipped ablation models, in the order of `VARIANTS`, each checked against its SHA-256."""
    return {name: pretrained(name, device=device) for name in VARIANTS}


def consistency(videos: torch.Tensor, classifier, truth: torch.Tensor | None = None,
                digits: torch.Tensor | None = None) -> dict[str, float]:
    """Means over videos (N, T, H, W) in [0, 1]: vanishing ink, flicker, identity switches (and the share
    of videos with at least one), plus frame IoU against `truth` and last-frame IoU against `digits`
    when given."""
    switches = identity_switches(videos, classifier).double()
    row = {"vanish": vanishing_ink(videos).mean().item(), "flicker": flicker(videos).mean().item(),
           "switches": switches.mean().item(), "switched": (switches > 0).double().mean().item()}
    if truth is not None:
        row["iou"] = frame_iou(videos, truth).mean().item()
    if digits is not None:
        row["last"] = last_frame_fidelity(videos, digits).mean().item()
    return row


def compare(pipes: dict[str, Pipeline], classifier, digits=None, truth=None, n: int | None = None,
            steps: int = 20, seed: int = 0, progress: bool = True) -> tuple[dict, dict]:
    """Sample every model from the same noise and measure it.

    Pass `digits` ((N, 28, 28) uint8) and their true videos `truth` (N, T, 28, 28) to animate them, or
    `n` for unconditional videos. Returns ({name: metrics}, {name: videos (N, T, 28, 28)}).
    """
    if (digits is None) == (n is None):
        raise InputError("pass either digits (to animate) or n (to generate), not both")
    if digits is not None and truth is None:
        raise InputError("pass the true videos of the digits as truth, to measure frame IoU")
    if not pipes:
        raise InputError("no models to compare")
    rows, videos = {}, {}
    for name, pipe in tqdm(pipes.items(), desc="models", disable=not progress):
        started = time.perf_counter()
        if digits is not None:
            videos[name] = pipe.animate(digits, steps=steps, seed=seed)
        else:
            videos[name] = pipe.generate(n, steps=steps, seed=seed)
        seconds = time.perf_counter() - started
        rows[name] = {**consistency(videos[name], classifier, truth, digits), "seconds": seconds}
    return rows, videos


def table(rows: dict[str, dict[str, float]], columns=None) -> str:
    """A markdown table of `compare`'s rows: one line per model, the metrics in `columns` (keys of
    COLUMNS; default: every metric the first row has)."""
    if not rows:
        raise InputError("no rows to tabulate")
    first = next(iter(rows.values()))
    keys = [key for key in COLUMNS if key in first] if columns is None else list(columns)
    unknown = [key for key in keys if key not in COLUMNS]
    if unknown:
        raise InputError(f"unknown columns {unknown}; known: {', '.join(COLUMNS)}")
    lines = ["| model | " + " | ".join(COLUMNS[key][0] for key in keys) + " |",
             "| --- |" + " ---: |" * len(keys)]
    for name, row in rows.items():
        cells = [COLUMNS[key][1].format(row[key]) if key in row else "–" for key in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
