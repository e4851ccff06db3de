"""The cascade baseline of issue 11 (RESULTS.md, "A cascade baseline"): a 2D diffusion model draws the
finished digit, then the shipped writer animates it (image-to-video, DDIM-10).

    python tools/cascade_baseline.py train --steps 5000 --batch-size 128 --out runs/cascade
    python tools/cascade_baseline.py measure --out runs/cascade --videos 500
    python tools/cascade_baseline.py train --smoke --out runs/cascade-smoke   # tiny sizes, to test this script

The 2D model is the writer's own network with one frame and nothing to condition on: a writing video of
one frame is the whole binarised digit (frame k of F shows the ink above (1 - k/F) of the top priority),
so `tinydiff.train` trains it unchanged. `measure` judges its 500 animated samples exactly as the
benchmark judges the writer's unconditional videos (`tinydiff.metrics.generation_report`), and writes
OUT/measured.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def digit_model(smoke: bool):
    """The 2D stage: one frame, no condition, no labels, nothing temporal."""
    from tinydiff.model import preset

    return preset("tiny" if smoke else "default", frames=1, conditional=False, ink_distance=False, labels=False,
                  temporal_conv=False, temporal_attention=False)


def train_digits(args) -> None:
    from tinydiff.model import VideoUNet, count_parameters
    from tinydiff.train import TrainConfig, train

    model_cfg = digit_model(args.smoke)
    print(f"2D digit model: {count_parameters(VideoUNet(model_cfg)):,} parameters", flush=True)
    cfg = TrainConfig(out_dir=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=0,
                      cond_drop=1.0, label_share=0.0, checkpoint_every=args.chunk, device="cpu", precision="fp32",
                      threads=args.threads, train_limit=64 if args.smoke else None)
    started = time.time()
    result = train(model_cfg, cfg, progress=False)
    minutes = (time.time() - started) / 60
    print(f"trained {len(result.losses)} steps in {minutes:.1f} min, loss of the last 100 steps "
          f"{np.mean(result.losses[-100:]):.4f}", flush=True)


def measure(args) -> None:
    from tinydiff.bench import generated, rewritten
    from tinydiff.classifier import pretrained_classifier
    from tinydiff.data import load_mnist
    from tinydiff.metrics import generation_report
    from tinydiff.pipeline import Pipeline, pretrained
    from tinydiff.train import CHECKPOINT_NAME

    torch.set_num_threads(args.threads)
    draw = Pipeline.from_checkpoint(Path(args.out) / CHECKPOINT_NAME, device="cpu")
    writer = pretrained("writer", device="cpu")
    classifier = pretrained_classifier()
    training_digits = load_mnist("train")[0]
    # The benchmark's own two passes: digits drawn in seeded batches, then each animated (DDIM-10).
    drawn, draw_seconds = generated(draw, args.videos, batch=args.batch, steps=args.steps)  # (N, 1, 28, 28)
    began = time.perf_counter()
    videos = rewritten(writer, drawn, batch=args.batch)  # (N, T, 28, 28)
    seconds = {"draw": draw_seconds, "animate": time.perf_counter() - began}
    report = generation_report(videos, classifier, training_digits)
    report["seconds"] = seconds
    report["draw_steps"] = args.steps
    print(json.dumps(report, indent=1), flush=True)
    (Path(args.out) / "measured.json").write_text(json.dumps(report, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("train", "measure"))
    parser.add_argument("--out", default="runs/cascade")
    parser.add_argument("--smoke", action="store_true", help="tiny network, 64 training digits")
    parser.add_argument("--steps", type=int, default=5000, help="train: optimiser steps; measure: DDIM steps of the 2D stage")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--chunk", type=int, default=250, help="steps between checkpoints")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--videos", type=int, default=500)
    parser.add_argument("--batch", type=int, default=50, help="measure: videos per sampling batch")
    args = parser.parse_args()
    train_digits(args) if args.command == "train" else measure(args)


if __name__ == "__main__":
    main()
