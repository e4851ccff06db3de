"""The benchmark: speed and quality of the default model against the original Tiny Diffusion network.

    python -m tinydiff.bench            # or: tinydiff bench
    python -m tinydiff.bench --quick    # a few-minute smoke run with smaller samples

Measures, in one run on one machine: training throughput of the default and original configurations;
training minutes for the default configuration to reach a frame IoU from scratch; DDIM-50 wall time for 16
videos against the original network's 50 forward passes; image-to-video quality of the shipped writer at
DDIM 10, DDIM 50 and DDPM 1000, and of the animator (the cascade's writing stage) at DDIM 10 and 50;
generation from noise judged by the shipped digit classifier (unconditional and class-conditional per
digit, by the writer and by the cascade; and quality against the sampler and its steps); and moving digits
predicted 10 -> 10 and extended to 100 frames by the shipped motion model and its baselines
(`tinydiff.motion_eval`; `--motion-only` re-measures that section alone). Writes a markdown report
(BENCHMARKS.md) and prints it.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path

import torch

from .cascade import Cascade
from .checkpoint import load_checkpoint
from .classifier import pretrained_classifier
from .data import load_mnist, writing_videos
from .device import add_device_options, autocast, resolve_device, resolve_precision
from .errors import ConfigError, InputError
from .metrics import CONFIDENT, MEMORISED, frame_iou, generation_report, last_frame_fidelity, vanishing_ink
from .model import VideoUNet, preset
from .pipeline import LABEL_GUIDANCE, Pipeline, pretrained
from .registry import CASCADE, MODELS
from .train import TrainConfig, train


def training_throughput(name: str, workdir: Path, data_root, batch_size: int, steps: int, device: str = "auto",
                        precision: str = "auto") -> float:
    """Training videos/s of a preset through the real training loop (after 3 warm-up steps)."""
    cfg = TrainConfig(out_dir=str(workdir / name), steps=3 + steps, batch_size=batch_size, data_root=data_root,
                      checkpoint_every=10**9, train_limit=batch_size * (3 + steps), device=device,
                      precision=precision)
    model_cfg = preset(name)
    train(model_cfg, cfg, progress=False, until=3)
    warm = load_checkpoint(workdir / name / "checkpoint.pt")["elapsed_s"]
    train(model_cfg, cfg, progress=False)
    total = load_checkpoint(workdir / name / "checkpoint.pt")["elapsed_s"]
    return batch_size * steps / (total - warm)


def evaluate(pipe: Pipeline, digits: torch.Tensor, truth: torch.Tensor, batch: int = 128, **sampling) -> dict:
    """Mean frame IoU, vanishing ink and last-frame fidelity of animated digits, and the seconds taken."""
    started, videos = time.perf_counter(), []
    for i in range(0, len(digits), batch):
        videos.append(pipe.animate(digits[i:i + batch], seed=i, **sampling))
    videos = torch.cat(videos)
    return {"iou": frame_iou(videos, truth).mean().item(), "vanish": vanishing_ink(videos).mean().item(),
            "last": last_frame_fidelity(videos, digits).mean().item(), "seconds": time.perf_counter() - started}


def minutes_to_iou(target: float, budget_min: float, workdir: Path, data_root, digits, truth,
                   chunk: int, planned_steps: int, device: str = "auto",
                   precision: str = "auto") -> tuple[float | None, list[tuple[int, float, float]]]:
    """Train the default preset from scratch, evaluating (DDIM-50) every `chunk` steps.

    Returns the training minutes (evaluation excluded) at which the frame IoU first reached `target`
    (None if not within `budget_min`) and the curve [(step, minutes, IoU)].
    """
    cfg = TrainConfig(out_dir=str(workdir / "from-scratch"), steps=planned_steps, data_root=data_root,
                      checkpoint_every=chunk, device=device, precision=precision)
    model_cfg, curve, step = preset("default"), [], 0
    while step < planned_steps:
        step += chunk
        result = train(model_cfg, cfg, progress=False, until=step)
        minutes = load_checkpoint(result.checkpoint)["elapsed_s"] / 60
        iou = evaluate(Pipeline(result.ema, device, precision), digits, truth, steps=50)["iou"]
        curve.append((step, minutes, iou))
        print(f"  from scratch: step {step}, {minutes:.1f} training min, frame IoU {iou:.3f}", flush=True)
        if iou >= target:
            return minutes, curve
        if minutes >= budget_min:
            break
    return None, curve


def sampling_times(pipe: Pipeline, digits: torch.Tensor) -> tuple[float, float]:
    """Seconds for DDIM-50 on these digits with `pipe`, and for 50 forward passes of the original network
    on the same device in the same precision; each after one warm-up run, waiting for the GPU to finish."""
    original = VideoUNet(preset("original")).eval().to(pipe.device)
    x = torch.randn(len(digits), 1, 15, 28, 28, device=pipe.device)
    condition = torch.randn(len(digits), 1, 28, 28, device=pipe.device)

    def ddim() -> None:
        pipe.animate(digits, steps=50, seed=0)

    @torch.no_grad()
    def passes() -> None:
        with autocast(pipe.device, pipe.precision):
            for t in torch.linspace(999, 0, 50).long():
                original(x, t.repeat(len(digits)).to(pipe.device), condition)

    seconds = []
    for run in (ddim, passes):
        run()  # warm-up: kernel selection, allocator, caches
        _synchronize(pipe.device)
        started = time.perf_counter()
        run()
        _synchronize(pipe.device)
        seconds.append(time.perf_counter() - started)
    return seconds[0], seconds[1]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# The settings of the quality-against-steps table: (sampler, steps), DDPM always taking all 1,000; a
# quick run keeps the cheap rows. And the guidance scales of the quality-against-guidance table.
STEPS_TABLE = (("ddpm", None), ("ddim", 5), ("ddim", 10), ("ddim", 20), ("ddim", 50), ("ddim", 100),
               ("dpm++2m", 10), ("dpm++2m", 20))
QUICK_STEPS_TABLE = (("ddim", 5), ("dpm++2m", 5))
GUIDANCE_TABLE = (0.0, 1.0, 2.0, 3.0, 4.0)
# DDIM steps for the class-conditional figures: the asked digit is read as well at 20 steps as at 50
# (chapter 2), and guidance doubles every step's cost.
CONDITIONAL_STEPS = 20


def generated(pipe: Pipeline | Cascade, n: int, digits: list[int] | None = None,
              batch: int = 50,  # faster than 100 on 2 cores
              **sampling) -> tuple[torch.Tensor, float]:
    """n videos from noise, (n, T, H, W) in [0, 1], in batches (seeded by their first index), and the
    seconds taken. digits: None (unconditional) or one digit per video."""
    started, videos = time.perf_counter(), []
    for i in range(0, n, batch):
        asked = None if digits is None else digits[i:i + batch]
        videos.append(pipe.generate(min(batch, n - i), digit=asked, seed=i, **sampling))
    return torch.cat(videos), time.perf_counter() - started


def rewritten(pipe: Pipeline, videos: torch.Tensor, batch: int = 50) -> torch.Tensor:
    """The two-pass sampler's second pass: each video's binarised last frame animated (DDIM-10)."""
    digits = (videos[:, -1] > 0.5).to(torch.uint8) * 255  # (N, 28, 28)
    return torch.cat([pipe.animate(digits[i:i + batch], steps=10, seed=i) for i in range(0, len(digits), batch)])


def generation_rows(pipe: Pipeline, cascade: Cascade, n_uncond: int, per_digit: int, n_table: int,
                    heldout: torch.Tensor, data_root, steps_table=STEPS_TABLE) -> tuple[list[tuple[str, str]], list[str]]:
    """The figures of generation from noise: rows of the main table (the real videos for scale,
    unconditional and class-conditional, by the writer and by the cascade) and the quality-against-steps and
    -guidance tables (markdown lines)."""
    classifier = pretrained_classifier()
    training_digits = load_mnist("train", root=data_root)[0]
    rows = []

    def judged(name: str, report: dict, read: str = "read") -> None:
        rows.append((f"{name}: {read} (p >= {CONFIDENT}) / entropy (nats) / classes present",
                     f"{report['confident_share']:.3f} / {report['entropy']:.2f} / {report['classes']} of 10"))
        rows.append((f"{name}: identity stable (frames 10-15 read like the last) / self-consistency (frame IoU) / "
                     f"vanishing ink / memorised (IoU >= {MEMORISED} to a training digit)",
                     f"{report['identity_stability']:.3f} / {report['self_consistency']:.3f} / "
                     f"{100 * report['vanishing_ink']:.2f} % / {100 * report['memorised_share']:.1f} %"))

    # For scale: the true writing videos of the held-out digits, judged the same way.
    judged(f"real writing videos of {len(heldout)} held-out digits",
           generation_report(writing_videos(heldout.numpy()), classifier, training_digits))
    videos, seconds = generated(pipe, n_uncond, steps=50)
    judged(f"unconditional, {n_uncond} videos (DDIM-50, {seconds:.0f} s)", generation_report(videos, classifier, training_digits))
    judged(f"unconditional, the same {n_uncond} last frames re-written by image-to-video (DDIM-10)",
           generation_report(rewritten(pipe, videos), classifier, training_digits))
    videos, seconds = generated(cascade, n_uncond, steps=50)
    how = ("a label drawn from the training frequencies, then the digit model at guidance 1,"
           if cascade.draws_labels else "digit model")
    judged(f"unconditional by the cascade, {n_uncond} videos ({how} DDIM-50, then the animator "
           f"DDIM-{cascade.write_steps}, {seconds:.0f} s)", generation_report(videos, classifier, training_digits))

    asked = torch.arange(10).repeat_interleave(per_digit)
    for by, model, how in (("", pipe, f"DDIM-{CONDITIONAL_STEPS}"),
                           (" by the cascade", cascade,
                            f"digit model DDIM-{CONDITIONAL_STEPS}, then the animator DDIM-{cascade.write_steps}")):
        videos, seconds = generated(model, len(asked), asked.tolist(), steps=CONDITIONAL_STEPS)
        report = generation_report(videos, classifier, training_digits, asked=asked)
        judged(f"class-conditional{by}, {per_digit} per digit (guidance {LABEL_GUIDANCE:g}, {how}, {seconds:.0f} s)",
               report, read="read as the asked digit")
        rows.append((f"class-conditional{by}: share read as the asked digit (p >= {CONFIDENT}), digits 0-9",
                     " ".join(f"{h:.2f}" for h in report["per_digit"]) + f" (lowest {min(report['per_digit']):.2f})"))

    asked = torch.arange(10).repeat_interleave(max(1, n_table // 10))
    header = ("| read as the asked digit | identity stable | self-consistency | vanishing ink | seconds per 16 videos |",
              "| --- | --- | --- | --- | --- | --- |")

    def row(name: str, report: dict, seconds: float) -> str:
        print(f"  {name}: {report}", flush=True)
        return (f"| {name} | {report['confident_share']:.3f} | {report['identity_stability']:.3f} | "
                f"{report['self_consistency']:.3f} | {100 * report['vanishing_ink']:.2f} % | {16 * seconds / len(asked):.1f} |")

    tables = [f"Quality against the sampler and its steps: {len(asked)} class-conditional videos ({len(asked) // 10} "
              f"per digit, guidance {LABEL_GUIDANCE:g}, the same seeds in every row), judged as above.", "",
              "| sampler " + header[0], header[1]]
    for sampler, steps in steps_table:
        sampling = dict(sampler=sampler) if steps is None else dict(sampler=sampler, steps=steps)
        videos, seconds = generated(pipe, len(asked), asked.tolist(), **sampling)
        name = "DDPM-1000" if steps is None else f"{'DDIM' if sampler == 'ddim' else 'DPM-Solver++(2M)'}-{steps}"
        tables.append(row(name, generation_report(videos, classifier, training_digits, asked=asked), seconds))
    tables += ["", f"Quality against the guidance scale: the same {len(asked)} videos' labels and seeds, DDIM-{CONDITIONAL_STEPS} "
               "(guidance 0 is the unconditional model, so its figure is the share that happens to be the asked digit).",
               "", "| guidance " + header[0], header[1]]
    for guidance in GUIDANCE_TABLE:
        videos, seconds = generated(pipe, len(asked), asked.tolist(), steps=CONDITIONAL_STEPS, guidance=guidance)
        tables.append(row(f"{guidance:g}", generation_report(videos, classifier, training_digits, asked=asked), seconds))
    return rows, tables


GPU_HEADING = "## On a GPU"
MOTION_HEADING = "## Moving digits"


def motion_section(args, device: str) -> list[str]:
    """The moving-digits section: the shipped motion model and its baselines (`tinydiff.motion_eval`)."""
    from .motion_eval import bench_section

    print("moving digits ...", flush=True)
    pipes = {name: pretrained(name, device=device, precision=args.precision)
             for name, model in MODELS.items() if model.kind == "motion"}
    sequences, extension, seeds = (16, 16, 1) if args.quick else (args.motion_sequences, args.motion_extension,
                                                                    args.motion_seeds)
    if min(sequences, extension, seeds) < 1:
        raise InputError("--motion-sequences, --motion-extension and --motion-seeds must be at least 1")
    return bench_section(pipes, pretrained_classifier(), sequences, extension, seeds, root=args.data_root,
                         progress=lambda line: print(line, flush=True))


def _motion_only(args, device: str) -> int:
    """Re-measure the moving-digits section of an existing report, keeping every other section as it is."""
    path = Path(args.out)
    text = path.read_text() if path.is_file() else "# Benchmarks\n\n"
    section = "\n".join(motion_section(args, device)) + "\n"
    if MOTION_HEADING in text:
        start = text.index(MOTION_HEADING)
        end = text.find("\n## ", start + len(MOTION_HEADING))
        text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
    elif GPU_HEADING in text:
        text = text.replace(GPU_HEADING, section + "\n" + GPU_HEADING, 1)
    else:
        text += "\n" + section
    path.write_text(text)
    print(section)
    return 0


def gpu_section(report: Path) -> str:
    """The GPU figures of an existing report (measured by `make gpu-check` on a CUDA machine, which this
    run may not have), kept as they are; "not measured" when there are none."""
    text = report.read_text() if report.is_file() else ""
    if GPU_HEADING in text:
        return text[text.index(GPU_HEADING):]
    return (f"{GPU_HEADING}\n\nNot measured: run `make gpu-check` on a CUDA machine and record its figures here.\n")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return f"{cpu}; {torch.get_num_threads()} torch threads; GPU: {gpu}; torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinydiff bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small samples: a smoke run of a few minutes")
    parser.add_argument("--out", default="BENCHMARKS.md", help="markdown report to write (default: BENCHMARKS.md)")
    parser.add_argument("--data-root", help="MNIST root (default: $TINYDIFF_DATA, else the per-user cache)")
    parser.add_argument("--target-iou", type=float, default=0.90)
    parser.add_argument("--budget-min", type=float, default=20.0, help="training minutes allowed to reach it")
    parser.add_argument("--ddim10-digits", type=int, help="held-out digits for DDIM-10 (default: all 1,000)")
    parser.add_argument("--ddim50-digits", type=int, default=256, help="held-out digits for DDIM-50 (default: 256)")
    parser.add_argument("--ddpm-digits", type=int, default=8, help="held-out digits for DDPM-1000 (default: 8)")
    parser.add_argument("--curve-digits", type=int, default=64,
                        help="held-out digits evaluated (DDIM-50) during the from-scratch run (default: 64)")
    parser.add_argument("--generated", type=int, default=500,
                        help="unconditional videos judged by the digit classifier (default: 500)")
    parser.add_argument("--per-digit", type=int, default=100,
                        help="class-conditional videos per digit at the default guidance (default: 100)")
    parser.add_argument("--table-videos", type=int, default=50,
                        help="class-conditional videos per row of the steps and guidance tables, a multiple of 10 "
                             "(default: 50)")
    add_device_options(parser)
    parser.add_argument("--skip-from-scratch", action="store_true", help="skip the from-scratch training run")
    parser.add_argument("--motion-only", action="store_true",
                        help="measure the moving-digits models alone and replace only their section of the report")
    parser.add_argument("--motion-sequences", type=int, default=256,
                        help="held-out sequences predicted 10 -> 10 per moving-digits model (default: 256)")
    parser.add_argument("--motion-seeds", type=int, default=3,
                        help="sampling seeds for the shipped motion model's 10 -> 10 figures (default: 3)")
    parser.add_argument("--motion-extension", type=int, default=64,
                        help="held-out sequences extended from 10 to 100 frames (default: 64)")
    args = parser.parse_args(argv)

    device = str(resolve_device(args.device))  # checked before any work: a bad setting costs nothing
    resolve_precision(args.precision, torch.device(device))
    for option in ("generated", "per_digit", "table_videos", "ddim50_digits", "ddpm_digits", "curve_digits"):
        if getattr(args, option) < 1:
            raise InputError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    if args.table_videos % 10:
        raise InputError(f"--table-videos must be a multiple of 10 (the same number of each digit), got {args.table_videos}")
    quick = args.quick
    if args.motion_only:
        return _motion_only(args, device)
    heldout, _ = load_mnist("heldout", root=args.data_root)
    n_ddim10 = min(args.ddim10_digits or len(heldout), len(heldout))
    n_ddim50, n_ddpm, n_curve = (32, 2, 16) if quick else (args.ddim50_digits, args.ddpm_digits, args.curve_digits)
    n_ddim10 = 32 if quick else n_ddim10
    n_eval = max(n_ddim10, n_ddim50, n_ddpm, n_curve)
    digits = heldout[:n_eval]
    truth = writing_videos(digits.numpy())
    pipe = pretrained("writer", device=device, precision=args.precision)
    if not pipe.cfg.labels:
        raise ConfigError("the shipped writer has no label embedding: the generation figures need one (reinstall tinydiff)")
    rows = []

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        print("training throughput ...", flush=True)
        speed = {name: training_throughput(name, workdir, args.data_root, 16, 3 if quick else 15, device,
                                           args.precision)
                 for name in ("default", "original")}
        rows.append(("training videos/s, default config (batch 16)", f"{speed['default']:.1f}"))
        rows.append(("training videos/s, original network (batch 16)", f"{speed['original']:.1f}"))
        rows.append(("throughput ratio (target >= 10x)", f"{speed['default'] / speed['original']:.1f}x"))
        print(f"  videos/s: {speed}", flush=True)

        print("sampling time ...", flush=True)
        ddim, original = sampling_times(pipe, digits[:16])
        rows.append(("DDIM-50, 16 videos, shipped writer (s)", f"{ddim:.2f}"))
        rows.append(("50 forward passes of the original network, same batch (s)", f"{original:.2f}"))
        rows.append(("sampling speed-up (target >= 10x)", f"{original / ddim:.1f}x"))
        print(f"  DDIM-50 {ddim:.2f} s, original network 50 passes {original:.2f} s", flush=True)

        print("image-to-video quality ...", flush=True)
        cascade = pretrained(CASCADE, device=device, precision=args.precision)
        ddim10, ddim50 = ((f"DDIM-10, {n_ddim10} held-out digits", n_ddim10, dict(steps=10)),
                          (f"DDIM-50, {n_ddim50} held-out digits", n_ddim50, dict(steps=50)))
        ddpm = (f"DDPM-1000, {n_ddpm} held-out digits", n_ddpm, dict(sampler="ddpm"))
        for name, model, settings in (("writer", pipe, (ddim10, ddim50, ddpm)),
                                      ("animator (the cascade's writing stage)", cascade.write, (ddim10, ddim50))):
            for label, n, sampling in settings:
                r = evaluate(model, digits[:n], truth[:n], **sampling)
                rows.append((f"{name} {label}: frame IoU / vanishing ink / last-frame IoU",
                             f"{r['iou']:.3f} / {100 * r['vanish']:.2f} % / {r['last']:.3f} ({r['seconds']:.0f} s)"))
                print(f"  {name} {label}: {r}", flush=True)

        print("generation from noise, judged by the digit classifier ...", flush=True)
        n_uncond, per_digit, n_table = (20, 2, 10) if quick else (args.generated, args.per_digit, args.table_videos)
        generation, steps_table = generation_rows(pipe, cascade, n_uncond, per_digit, n_table, heldout, args.data_root,
                                                  QUICK_STEPS_TABLE if quick else STEPS_TABLE)
        rows += generation

        curve = []
        if not args.skip_from_scratch:
            print("training from scratch to the target IoU ...", flush=True)
            minutes, curve = minutes_to_iou(args.target_iou, 1.0 if quick else args.budget_min, workdir,
                                            args.data_root, digits[:n_curve], truth[:n_curve], 25 if quick else 500,
                                            50 if quick else 4000, device, args.precision)
            reached = (f"{minutes:.1f}" if minutes is not None else
                       f"not within {curve[-1][1]:.1f} min (best {max(c[2] for c in curve):.3f})")
            rows.append((f"training minutes to frame IoU {args.target_iou:.2f} from scratch "
                         f"(DDIM-50, {n_curve} digits)", reached))

    date = datetime.date.today().isoformat()
    lines = [f"# Benchmarks{' (quick run)' if quick else ''}", "",
             f"Measured {date} with `python -m tinydiff.bench{' --quick' if quick else ''}` on: {machine()}; "
             f"run on {device} in {pipe.precision}.", "",
             "| measure | value |", "| --- | --- |", *[f"| {a} | {b} |" for a, b in rows], ""]
    lines += [*steps_table, ""]
    if curve:
        lines += ["Training curve of the from-scratch run:", "", "| step | training minutes | frame IoU |",
                  "| --- | --- | --- |", *[f"| {s} | {m:.1f} | {i:.3f} |" for s, m, i in curve], ""]
    lines += motion_section(args, device)
    report = "\n".join(lines) + "\n" + gpu_section(Path(args.out))
    Path(args.out).write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
