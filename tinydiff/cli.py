"""The `tinydiff` command: a thin layer over the library (the notebooks call the same functions)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .device import add_device_options
from .errors import InputError, TinydiffError


def _train(args) -> None:
    from .model import preset
    from .train import TrainConfig, train

    overrides = {k: getattr(args, k) for k in ("prediction", "schedule") if getattr(args, k) is not None}
    model_cfg = preset(args.preset, **overrides)
    cfg = TrainConfig(out_dir=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, checkpoint_every=args.checkpoint_every, data_root=args.data_root,
                      train_limit=args.train_limit, device=args.device, precision=args.precision,
                      threads=args.threads, cond_drop=args.cond_drop, label_share=args.label_share,
                      ema_decay=args.ema_decay, loss_weighting=args.loss_weighting,
                      timestep_power=args.timestep_power)
    result = train(model_cfg, cfg, resume=not args.no_resume, progress=not args.quiet, force_resume=args.force_resume)
    if result.losses and os.environ.get("RANK", "0") == "0":
        print(f"trained to step {len(result.losses)}; last loss {result.losses[-1]:.4f}; "
              f"checkpoint: {result.checkpoint}")


def _generate(args) -> None:
    import numpy as np

    from .cascade import Cascade
    from .data import HELDOUT, load_mnist, writing_videos
    from .metrics import frame_iou
    from .pipeline import default_guidance, digit_labels
    from .viz import check_output, save_video

    out = Path(args.output)
    if out.suffix != ".npy":
        check_output(out)
    if args.heldout_digits is not None and not 1 <= args.heldout_digits <= len(HELDOUT):
        raise InputError(f"--heldout-digits must be 1..{len(HELDOUT)}, got {args.heldout_digits}")
    n = args.n if args.n is not None else len(args.digit) if args.digit and len(args.digit) > 1 else 16
    if n < 1:
        raise InputError(f"-n must be a positive number of videos, got {n}")
    digit = None
    if args.digit is not None:
        if args.heldout_digits is not None:
            raise InputError("--digit asks for videos from noise; --heldout-digits animates real digits: choose one")
        digit = args.digit[0] if len(args.digit) == 1 else args.digit
        digit_labels(digit, n)  # checked before the model loads
    pipe = _pipeline(args)
    options = dict(steps=args.steps, sampler=args.sampler, seed=args.seed, progress=not args.quiet)
    if args.heldout_digits is not None:
        digits = load_mnist("heldout", root=args.data_root)[0][:args.heldout_digits]
        videos = pipe.animate(digits, guidance=args.guidance, **options)
        iou = frame_iou(videos, writing_videos(digits.numpy())).mean().item()
        print(f"animated {len(digits)} held-out digits; mean frame IoU against the true videos: {iou:.3f}")
    else:
        videos = pipe.generate(n, digit=digit, guidance=args.guidance, **options)
        if digit is not None:
            asked = f"class-conditional videos (guidance {default_guidance(args.guidance, True):g})"
        elif isinstance(pipe, Cascade) and pipe.draws_labels_at(args.guidance):
            asked = "videos of any digit (each label drawn from the training frequencies, then its digit)"
        else:
            asked = "unconditional videos"
        print(f"generated {n} {asked}")
    if out.suffix == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, videos.numpy())
    else:
        save_video(videos, out)
    print(f"wrote {out}")


def _pipeline(args):
    from .pipeline import Pipeline, pretrained

    if args.checkpoint:
        return Pipeline.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    return pretrained(args.pretrained, device=args.device, precision=args.precision)


def _animate(args) -> None:
    from .drawing import digit_from_image
    from .viz import FORMATS, beside_inputs, check_output, interpolate, save_video

    for name, value, low in (("--interpolate", args.interpolate, 0), ("--scale", args.scale, 1)):
        if value < low:
            raise InputError(f"{name} must be at least {low}, got {value}")
    if not args.fps > 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    out = Path(args.output)
    if out.suffix.lower() in FORMATS or (out.suffix and not out.is_dir()):  # one file holding every animation
        targets = [check_output(out)]
    else:  # a folder: one file per image, named after it
        if out.exists() and not out.is_dir():
            raise InputError(f"{out} is a file; give a .gif/.mp4 name or a folder for one file per image")
        targets, taken = [], set()
        for image in args.images:
            stem = name = Path(image).stem
            copy = 1
            while name in taken:  # two inputs with one name (a/1.png, b/1.png) get 1.gif and 1-2.gif
                copy += 1
                name = f"{stem}-{copy}"
            taken.add(name)
            targets.append(check_output(out / f"{name}{args.format}"))
    # Read and check every image before the (slow) sampling, so one bad file costs nothing.
    digits = [digit_from_image(image) for image in args.images]
    pipe = _pipeline(args)
    videos = pipe.animate(digits, steps=args.steps, sampler=args.sampler, seed=args.seed, guidance=args.guidance,
                          progress=not args.quiet)
    shown = beside_inputs(videos, digits) if args.side_by_side else videos
    shown = interpolate(shown, args.interpolate)
    fps = args.fps * (args.interpolate + 1)  # the same writing speed, smoother
    hold = 5 * (args.interpolate + 1)
    if len(targets) == 1:
        save_video(shown, targets[0], fps=fps, scale=args.scale, hold_last=hold)
    else:
        for video, target in zip(shown, targets):
            save_video(video[None], target, fps=fps, scale=args.scale, hold_last=hold)
    for target in targets:
        print(f"wrote {target}")


MIN_KNOWN = 2  # frames `tinydiff extend` needs: one frame shows where the digits are, two how they move


def _extend(args) -> None:
    import numpy as np
    import torch

    from .motion_pipeline import MotionPipeline
    from .registry import MODELS
    from .viz import check_output, read_video, save_video

    for name, value in (("--frames", args.frames), ("--steps", args.steps), ("--scale", args.scale)):
        if value < 1:
            raise InputError(f"{name} must be a positive integer, got {value}")
    if not args.fps > 0:
        raise InputError(f"--fps must be positive, got {args.fps}")
    out = Path(args.output)
    if out.suffix.lower() not in (".gif", ".mp4", ".npy"):
        raise InputError(f"cannot write {out}: the output must end in .gif, .mp4 or .npy")
    if out.suffix.lower() != ".npy":
        check_output(out)
    elif out.is_dir():
        raise InputError(f"cannot write {out}: it is a directory")
    if args.checkpoint:
        pipe = MotionPipeline.from_checkpoint(args.checkpoint, device=args.device, precision=args.precision)
    elif args.pretrained in MODELS and MODELS[args.pretrained].kind == "motion":
        pipe = _pipeline(args)
    else:
        motion = ", ".join(name for name, model in MODELS.items() if model.kind == "motion")
        raise InputError(f"--pretrained {args.pretrained} is not a moving-digits model; extend takes {motion}")
    video = read_video(args.video, pipe.cfg.size)  # (K, H, W) in [0, 1]
    if len(video) < MIN_KNOWN:
        raise InputError(f"{args.video} holds {len(video)} frame(s); extending needs at least {MIN_KNOWN} to see "
                         "the motion")
    if args.context is not None and not 1 <= args.context < pipe.window:
        raise InputError(f"--context must be 1 to {pipe.window - 1} frames, got {args.context}")
    new = pipe.predict(video[None], frames=args.frames, steps=args.steps, sampler=args.sampler, seed=args.seed,
                       context=args.context, progress=not args.quiet)
    whole = torch.cat([video[None], new], dim=1)
    if out.suffix.lower() == ".npy":
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "wb") as file:  # a file, not a name: np.save would add ".npy" to "OUT.NPY"
                np.save(file, whole[0].numpy())
        except OSError as error:
            raise InputError(f"cannot write {out}: {error.strerror or error}") from None
    else:
        save_video(whole, out, fps=args.fps, scale=args.scale, hold_last=0)
    print(f"extended {len(video)} frames by {args.frames}; wrote {out} ({whole.shape[1]} frames)")


def _export(args) -> None:
    if Path(args.output).suffix.lower() == ".onnx":
        from .onnx_export import export_onnx, input_names, load_network

        model = load_network(args.source)
        export_onnx(model, args.output)
        print(f"wrote {args.output} (ONNX; inputs {', '.join(input_names(model.cfg))}; output prediction)")
        return
    from .checkpoint import export_weights

    if not Path(args.source).is_file():
        raise InputError(f"{args.source} is not a checkpoint file (a shipped model's weights are already exported; "
                         "to write one as ONNX, give an output ending in .onnx)")
    digest = export_weights(args.source, args.output)
    print(f"wrote {args.output} (sha256 {digest})")


def _bench(args) -> None:
    from .bench import main as bench_main

    bench_main(args.options)


def _sampling_options(model: str) -> argparse.ArgumentParser:
    """The options every sampling command shares (generate, animate): one declaration of each. `model`: the
    shipped model a command uses unless told otherwise."""
    from .registry import PRETRAINED
    from .pipeline import LABEL_GUIDANCE
    from .sampling import SAMPLERS

    shared = argparse.ArgumentParser(add_help=False)
    source = shared.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="a checkpoint written by `tinydiff train`")
    source.add_argument("--pretrained", default=model,
                        help=f"a model shipped with the package: {', '.join(PRETRAINED)} (default: {model})")
    shared.add_argument("--steps", type=int, default=50, help="DDIM or DPM-Solver++ steps; DDPM takes all (default: 50)")
    shared.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    shared.add_argument("--guidance", type=float,
                        help=f"classifier-free guidance scale: 1 = the plain conditional model, 0 = unconditional "
                             f"(default: 1 for a drawing, {LABEL_GUIDANCE} for --digit)")
    shared.add_argument("--seed", type=int, default=0)
    add_device_options(shared)
    shared.add_argument("--quiet", action="store_true", help="no progress bar")
    return shared


def build_parser() -> argparse.ArgumentParser:
    from .motion_pipeline import STEPS as MOTION_STEPS
    from .registry import CASCADE
    from .sampling import SAMPLERS
    from .model import PRESETS
    from .schedule import PREDICTIONS
    from .train import LABEL_SHARE, TrainConfig
    from .viz import FORMATS

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="tinydiff", description="Tiny video diffusion: MNIST digits written frame by frame.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a denoiser (resumes from OUT/checkpoint.pt if present)",
                       description="Train a video denoiser: on MNIST writing videos, or on moving digits with "
                                   "--preset motion. Runs under torchrun too.")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="model configuration (default: default)")
    p.add_argument("--out", default=defaults.out_dir, help=f"run folder holding checkpoint.pt (default: {defaults.out_dir})")
    p.add_argument("--steps", type=int, default=2000, help="total optimiser steps (default: 2000)")
    p.add_argument("--batch-size", type=int, default=16, help="videos per step and process (default: 16)")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate (default: 2e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prediction", choices=PREDICTIONS, help="override the preset's prediction target")
    p.add_argument("--schedule", choices=("linear", "cosine"), help="override the preset's noise schedule")
    p.add_argument("--loss-weighting", choices=("uniform", "min-snr"), default="uniform")
    p.add_argument("--timestep-power", type=float, default=defaults.timestep_power,
                   help="draw training timesteps as T u^(1/p): 1 is uniform, above 1 favours the noisier levels "
                        f"(default: {defaults.timestep_power:g})")
    p.add_argument("--cond-drop", type=float, default=defaults.cond_drop,
                   help=f"probability of training a video without any condition (default: {defaults.cond_drop})")
    p.add_argument("--label-share", type=float,
                   help="probability of training a video on its class label alone "
                        f"(default: {LABEL_SHARE} for a model with labels, else 0); the rest learn image-to-video")
    p.add_argument("--ema-decay", type=float, default=defaults.ema_decay,
                   help=f"decay of the weights' moving average (default: {defaults.ema_decay})")
    p.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints (default: 250)")
    p.add_argument("--data-root", help="MNIST root (default: $TINYDIFF_DATA, else ~/.cache/tinydiff/data)")
    p.add_argument("--train-limit", type=int, help="use only the first N training digits")
    add_device_options(p)
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT/checkpoint.pt exists")
    p.add_argument("--force-resume", action="store_true",
                   help="continue OUT/checkpoint.pt even if it was trained with other settings (they are replaced)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_train)

    # Generation goes to the cascade by default: from noise it writes digits the classifier reads far more
    # often than the writer alone does, and it animates real digits with the animator (BENCHMARKS.md).
    p = sub.add_parser("generate", help="sample videos from a checkpoint into a GIF",
                       parents=[_sampling_options(CASCADE)],
                       description="Generate writing videos from noise (-n, optionally --digit D) or animate "
                                   "held-out MNIST digits (--heldout-digits K).")
    what = p.add_mutually_exclusive_group()
    what.add_argument("-n", type=int, help="number of videos generated from noise (default: one per --digit given, else 16)")
    what.add_argument("--heldout-digits", type=int, metavar="K",
                      help="animate the first K held-out MNIST digits (official test digits 7000-7999) instead")
    p.add_argument("--digit", type=int, nargs="+", metavar="D",
                   help="write this digit (0-9) in every video, or give one digit per video (default: any digit)")
    p.add_argument("--data-root", help="MNIST root for --heldout-digits")
    p.add_argument("-o", "--output", default="samples.gif", help="output .gif (or .npy for the raw frames)")
    p.set_defaults(run=_generate)

    # Drawings go to the animator by default: it writes a given digit better than the writer (RESULTS.md).
    p = sub.add_parser("animate", help="animate your own drawings of digits into a GIF or MP4",
                       parents=[_sampling_options("animator")],
                       description="Animate drawings of digits (PNG, JPEG, GIF, ... any size, either polarity): "
                                   "each is made MNIST-like (cropped, fitted to 20x20, centred), then written "
                                   "frame by frame by the model.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, one digit each")
    p.add_argument("-o", "--output", default="animation.gif",
                   help="a .gif or .mp4 file holding all animations, or a folder for one file per image "
                        "(default: animation.gif)")
    p.add_argument("--format", choices=FORMATS, default=".gif", help="file type when OUTPUT is a folder")
    p.add_argument("--interpolate", type=int, default=0, metavar="K",
                   help="K blended frames between each pair of frames, for smooth motion (default: 0)")
    p.add_argument("--side-by-side", action="store_true", help="show the digit the model saw beside its animation")
    p.add_argument("--fps", type=float, default=8.0, help="frames per second before interpolation (default: 8)")
    p.add_argument("--scale", type=int, default=8, help="enlarge each pixel this many times (default: 8)")
    p.set_defaults(run=_animate)

    p = sub.add_parser("extend", help="continue a video of moving digits (GIF, MP4 or .npy) by predicted frames",
                       description="Predict what comes next in a video of moving digits (64 x 64 frames, or "
                                   "enlarged by a whole factor), window after window, and write the given frames "
                                   "followed by the new ones.")
    p.add_argument("video", help="a .gif, .mp4 or .npy video of moving digits, at least two frames")
    p.add_argument("-o", "--output", required=True, help="the extended video: .gif, .mp4 or .npy")
    p.add_argument("--frames", type=int, default=20, help="new frames to predict (default: 20)")
    p.add_argument("--context", type=int, help="frames each window is conditioned on (default: half the window)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", help="a moving-digits checkpoint written by `tinydiff train --preset motion`")
    source.add_argument("--pretrained", default="motion", help="a shipped moving-digits model (default: motion)")
    p.add_argument("--steps", type=int, default=MOTION_STEPS, help=f"DDIM steps per window (default: {MOTION_STEPS})")
    p.add_argument("--sampler", choices=SAMPLERS, default="ddim")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=8.0, help="frames per second of a GIF or MP4 (default: 8)")
    p.add_argument("--scale", type=int, default=4, help="enlarge each pixel this many times (default: 4)")
    add_device_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_extend)

    p = sub.add_parser("export", help="a checkpoint's inference weights, or a network as an ONNX graph (OUT.onnx)",
                       description="Write a small inference checkpoint (the EMA weights and both configurations) "
                                   "from a training checkpoint; or, when OUTPUT ends in .onnx, a network (shipped or "
                                   "from a checkpoint) as an ONNX graph with inputs x, t and, where the network takes "
                                   "them, condition and label (see tinydiff.onnx_export).")
    p.add_argument("source", metavar="NAME_OR_CHECKPOINT",
                   help="a checkpoint written by `tinydiff train`; for an .onnx output, also a shipped network's name")
    p.add_argument("output", help="the file to write (.onnx: an ONNX graph)")
    p.set_defaults(run=_export)

    p = sub.add_parser("bench", help="measure speed and quality; writes BENCHMARKS.md", add_help=False,
                       description="Run the benchmark (python -m tinydiff.bench --help for its options).")
    p.add_argument("options", nargs=argparse.REMAINDER, help="options of python -m tinydiff.bench")
    p.set_defaults(run=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["bench"]:  # argparse's REMAINDER would refuse the benchmark's own --options
            from .bench import main as bench_main

            return bench_main(argv[1:])
        args = build_parser().parse_args(argv)
        args.run(args)
    except TinydiffError as error:
        print(f"tinydiff: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinydiff: interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130
    return 0
