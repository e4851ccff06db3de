"""Compare training recipes for generation from noise, side by side, on one machine (RESULTS.md logs them).

    python tools/recipe_sweep.py --device cuda --steps 2000 --deadline 390 --out runs/sweep
    python tools/recipe_sweep.py --smoke                  # tiny sizes on a CPU, to test this script

Each recipe in RECIPES trains in its own process (all at once: on a GPU, small batches leave it mostly
idle), for the same number of steps, in chunks, and stops early at the deadline (seconds after the
start) if it has not finished; then its EMA network is judged by `tinydiff.metrics.generation_report`
with the shipped classifier: 500 unconditional videos (DDIM-50), 100 videos of each digit at each
guidance scale (DDIM-50), and image-to-video frame IoU on the 1,000 held-out digits (DDIM-10).
Written per recipe under OUT: NAME.json (figures, steps reached, training minutes), NAME.pt (the
exported EMA weights) and NAME.npz (the last frames, for judging again with another classifier).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

# name: (model overrides of the `default` preset, TrainConfig overrides). Every recipe has the label
# embedding; image-to-video takes what cond_drop and label_share leave.
RECIPES: dict[str, tuple[dict, dict]] = {
    "x0-mix": (dict(prediction="x0"), dict(cond_drop=0.2, label_share=0.4)),
    "v-mix": (dict(prediction="v"), dict(cond_drop=0.2, label_share=0.4, loss_weighting="min-snr")),
    "eps-mix": (dict(prediction="eps"), dict(cond_drop=0.2, label_share=0.4, loss_weighting="min-snr")),
    "v-gen": (dict(prediction="v"), dict(cond_drop=0.3, label_share=0.5, loss_weighting="min-snr")),
}
GUIDANCE = (1.0, 2.0, 3.0)


def train_recipe(name: str, args) -> dict:
    from tinydiff.model import preset
    from tinydiff.train import TrainConfig, train

    model_overrides, train_overrides = RECIPES[name]
    model_cfg = preset("tiny" if args.smoke else "default", labels=True, **model_overrides)
    cfg = TrainConfig(out_dir=str(Path(args.out) / name), steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      seed=0, checkpoint_every=args.chunk, device=args.device, precision=args.precision,
                      threads=args.threads, train_limit=64 if args.smoke else None, **train_overrides)
    started, step, result = time.time(), 0, None
    while step < args.steps and (result is None or time.time() - args.start < args.deadline):  # one chunk at least
        result = train(model_cfg, cfg, resume=step > 0, progress=False, until=step + args.chunk)
        step = len(result.losses)
        print(f"{name}: step {step} loss {np.mean(result.losses[-50:]):.4f} "
              f"({step / (time.time() - started):.1f} steps/s)", flush=True)
    return {"steps": step, "planned_steps": args.steps, "train_wall_s": time.time() - started,
            "loss_last_100": float(np.mean(result.losses[-100:]))}


def judge(name: str, args, save) -> dict:
    from tinydiff.checkpoint import export_weights
    from tinydiff.classifier import pretrained_classifier
    from tinydiff.data import load_mnist, writing_videos
    from tinydiff.metrics import frame_iou, generation_report
    from tinydiff.pipeline import Pipeline

    if not (args.judge_only and (Path(args.out) / f"{name}.pt").exists()):
        export_weights(Path(args.out) / name / "checkpoint.pt", Path(args.out) / f"{name}.pt")
    pipe = Pipeline.from_checkpoint(Path(args.out) / f"{name}.pt", device=args.device, precision=args.precision)
    classifier = pretrained_classifier()
    training_digits = load_mnist("train")[0]
    n, per_digit = (8, 2) if args.smoke else (500, 100)
    figures, frames = {}, {}
    videos = pipe.generate(n, steps=50, seed=0)
    figures["unconditional"] = generation_report(videos, classifier, training_digits)
    frames["unconditional"] = (videos[:, -1] * 255).round().to(torch.uint8).numpy()
    save(figures)
    if RECIPES[name][1].get("label_share", 0) > 0:
        asked = torch.arange(10).repeat_interleave(per_digit)
        for g in args.guidance:
            videos = pipe.generate(len(asked), digit=asked.tolist(), guidance=g, steps=50, seed=1)
            figures[f"guidance_{g:g}"] = generation_report(videos, classifier, training_digits, asked=asked)
            frames[f"guidance_{g:g}"] = (videos[:, -1] * 255).round().to(torch.uint8).numpy()
            save(figures)
    digits = load_mnist("heldout")[0][:16 if args.smoke else 1000]
    videos = pipe.animate(digits, steps=10, seed=0)
    figures["i2v_ddim10_frame_iou"] = float(frame_iou(videos, writing_videos(digits.numpy())).mean())
    np.savez_compressed(Path(args.out) / f"{name}.npz", **frames)
    return figures


def one(name: str, args) -> None:
    record = {"recipe": {"model": RECIPES[name][0], "train": RECIPES[name][1]}, "batch_size": args.batch_size,
              "lr": args.lr, "device": args.device, "precision": args.precision}
    if not args.judge_only:
        record.update(train_recipe(name, args))
    started = time.time()
    record.update(judge(name, args, lambda figures: (Path(args.out) / f"{name}.json").write_text(
        json.dumps({**record, **figures}, indent=1))))
    record["judge_wall_s"] = time.time() - started
    (Path(args.out) / f"{name}.json").write_text(json.dumps(record, indent=1))
    print(f"{name}: done {json.dumps(record)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--chunk", type=int, default=250, help="steps between deadline checks")
    parser.add_argument("--deadline", type=float, default=360.0, help="seconds after the start to stop training")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=os.environ.get("OUT", "runs/sweep"))
    parser.add_argument("--smoke", action="store_true", help="tiny preset, 64 digits, few videos")
    parser.add_argument("--guidance", type=float, nargs="+", default=GUIDANCE)
    parser.add_argument("--judge-only", action="store_true", help="judge the checkpoints already in OUT")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.start = args.start or time.time()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.one:
        one(args.one, args)
        return 0
    procs = {name: subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--one", name, "--start", str(args.start)])
             for name in args.recipes}
    failed = [name for name, proc in procs.items() if proc.wait() != 0]
    print(f"recipe_sweep: {len(procs) - len(failed)} of {len(procs)} recipes done; failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
