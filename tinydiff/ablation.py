"""The temporal-consistency ablation: three networks that differ only in how their frames talk.

    ablation-per-frame      spatial 1x3x3 convolutions only: every frame is denoised on its own
    ablation-temporal-conv  + the temporal 3x1x1 branch in every block (one frame further per layer)
    ablation-attention      + temporal attention at 7 px (every frame sees all 15; the writer's design)

All three are trained with the writer's recipe on one shared, shorter budget (their recipes in
`tinydiff.registry`) and ship inside the package: `tinydiff.pretrained("ablation-per-frame")` and so on. `measure` samples every model on the same
seeds for the three tasks of `TASKS` and keeps every video's measures, so that chapter 4 can put
bootstrap confidence intervals on the means; the shipped measurements (`MEASURED`) are what

    python -m tinydiff.ablation train     # `make ablation`: about 80 minutes on 2 CPU cores
    python -m tinydiff.ablation measure   # `make ablation-measure`: about 8 minutes; writes MEASURED

produce (training records the new weights in the manifest, tinydiff/weights/manifest.json). Each shipped
network was trained once, with seed 0; how far a second training run moves its means is measured by

    python -m tinydiff.ablation seeds     # `make ablation-seeds`: the three recipes with seeds 1 and 2,
                                          # measured like the shipped ones; writes SEEDS_MEASURED
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import resources
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import load_mnist, writing_videos
from .errors import ConfigError, InputError, TinydiffError
from .metrics import (CONFIDENT, bootstrap_interval, flicker, frame_iou, identity_stability, identity_switches,
                      read_as_asked, self_consistency, vanishing_ink)
from .pipeline import LABEL_GUIDANCE, Pipeline, pretrained
from .registry import ABLATION, CLASSIFIER, MODELS, recorded_sha256
from .report import markdown_table

# What each model is asked for, and how it is sampled. Video i of a task uses seed (i // BATCH) * BATCH,
# so the first k * BATCH videos of a longer run are exactly a shorter run's.
TASKS: dict[str, dict] = {
    "image-to-video": {"steps": 10},  # held-out digit i, judged against its true label and writing video
    "class-conditional": {"steps": 20, "guidance": LABEL_GUIDANCE},  # "write me an (i mod 10)"
    "unconditional": {"steps": 20},
}
VIDEOS, BATCH = 256, 16
MEASURED = "ablation-measured.json"  # in tinydiff/weights/, beside the weights it was measured on
# Training seeds beside the shipped networks' seed 0: each changes the initial weights, the data order and
# every draw of training, so their spread is what "trained once" leaves unknown (chapter 4).
EXTRA_SEEDS = (1, 2)
SEEDS_MEASURED = "ablation-seeds.json"  # in tinydiff/weights/: the mean of every measure, per network and seed

# per-video measure -> (column heading, format of the mean and its interval)
COLUMNS = {
    "read": (f"last frame read (p >= {CONFIDENT})", "{:.2f}"),
    "iou": ("frame IoU with the truth", "{:.3f}"),
    "stable": ("identity stable (frames 10-15)", "{:.2f}"),
    "consistent": ("self-consistency", "{:.2f}"),
    "flicker": ("flicker", "{:.3f}"),
    "vanish": ("vanishing ink", "{:.2%}"),
    "switches": ("identity switches / video", "{:.2f}"),
}


def load_variants(device=None) -> dict[str, Pipeline]:
    """The three shipped ablation models, in the order of `ABLATION`, each checked against its SHA-256."""
    return {name: pretrained(name, device=device) for name in ABLATION}


def per_video(videos: torch.Tensor, classifier, asked=None, truth: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every measure of `COLUMNS` for each video (N, T, H, W) in [0, 1]: {measure: (N,) float64}.

    read: the last frame read with p >= CONFIDENT (as `asked`, (N,) labels, when given); stable: share
    of frames 10-15 read like the last; consistent: frame IoU with the writing video of the video's own last
    frame; flicker, vanish, switches: see `tinydiff.metrics`; iou: frame IoU with `truth` when given.
    """
    rows = {"read": read_as_asked(videos, classifier, asked), "stable": identity_stability(videos, classifier),
            "consistent": self_consistency(videos), "flicker": flicker(videos), "vanish": vanishing_ink(videos),
            "switches": identity_switches(videos, classifier)}
    if truth is not None:
        rows["iou"] = frame_iou(videos, truth)
    return {key: value.double().cpu() for key, value in rows.items()}


def sample(pipe: Pipeline, task: str, start: int, count: int, heldout=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Videos start..start+count-1 of a task (one batch: `start` is its seed): ((count, T, H, W), asked (count,)).

    heldout: (digits (M, 28, 28) uint8, labels (M,)), needed for "image-to-video" only.
    """
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    if task == "image-to-video":
        if heldout is None or len(heldout[0]) < start + count:
            raise InputError(f"image-to-video needs held-out digits up to number {start + count}")
        digits, labels = heldout
        return pipe.animate(digits[start:start + count], seed=start, **TASKS[task]), labels[start:start + count]
    if task == "class-conditional":
        asked = torch.arange(start, start + count) % 10
        return pipe.generate(count, seed=start, digit=asked, **TASKS[task]), asked
    return pipe.generate(count, seed=start, **TASKS[task]), None


def _check_videos(videos: int) -> None:
    if videos < BATCH or videos % BATCH:
        raise InputError(f"videos must be a positive multiple of {BATCH}, got {videos}")


def measure(pipes: dict[str, Pipeline], classifier, heldout, videos: int = VIDEOS, progress: bool = True) -> dict:
    """Sample every model on the same seeds for every task and measure each video.

    heldout: (digits, labels) as `load_mnist("heldout")` returns them. videos: per model and task, a
    multiple of BATCH. Returns {"settings": ..., "models": {name: {"seconds": {task: sampling seconds},
    task: {measure: [one float per video]}}}}.
    """
    _check_videos(videos)
    if not pipes:
        raise InputError("no models to measure")
    results = {"settings": {"videos": videos, "batch": BATCH, "tasks": TASKS}, "models": {}}
    bar = tqdm(total=len(pipes) * len(TASKS) * videos, desc="videos", disable=not progress)
    for name, pipe in pipes.items():
        model = results["models"][name] = {"seconds": {}}
        for task in TASKS:
            seconds, rows = 0.0, []
            for start in range(0, videos, BATCH):
                started = time.perf_counter()
                clips, asked = sample(pipe, task, start, BATCH, heldout)
                seconds += time.perf_counter() - started
                truth = writing_videos(heldout[0][start:start + BATCH].numpy()) if task == "image-to-video" else None
                rows.append(per_video(clips, classifier, asked, truth))
                bar.update(BATCH)
            model["seconds"][task] = seconds
            model[task] = {key: torch.cat([row[key] for row in rows]).tolist() for key in rows[0]}
    bar.close()
    return results


def _fingerprint() -> dict:
    """What the measurements depend on besides each model's weights: the judge and the sampling settings."""
    return {"classifier_sha256": recorded_sha256(CLASSIFIER), "batch": BATCH, "tasks": TASKS}


def save_measured(results: dict, path: str | Path) -> None:
    """Write `measure`'s results as JSON, each model tagged with the SHA-256 of its shipped weights and the
    whole with the classifier's SHA-256 and the sampling settings (values rounded to 6 decimals)."""
    unshipped = [name for name in results["models"] if name not in MODELS]
    if unshipped:
        raise InputError(f"only shipped models can be saved with their SHA-256; not shipped: {', '.join(unshipped)}")
    models = {name: {"sha256": recorded_sha256(name), "seconds": model["seconds"],
                     **{task: {key: [round(v, 6) for v in values] for key, values in model[task].items()}
                        for task in TASKS}}
              for name, model in results["models"].items()}
    settings = {**results["settings"], **_fingerprint()}
    Path(path).write_text(json.dumps({"settings": settings, "models": models}, indent=1) + "\n")


def load_measured(path: str | Path | None = None) -> dict:
    """The shipped measurements (or those at `path`), checked to belong to the weights, the classifier and
    the sampling settings shipped now."""
    stale = "rerun `python -m tinydiff.ablation measure` (make ablation-measure)"
    try:
        if path is None:
            with resources.as_file(resources.files("tinydiff") / "weights" / MEASURED) as shipped:
                results = json.loads(shipped.read_text())
        else:
            results = json.loads(Path(path).read_text())
        settings, models = results["settings"], results["models"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"no readable ablation measurements at {path or MEASURED} ({error}): {stale}") from error
    for key, value in _fingerprint().items():
        if settings.get(key) != value:
            raise ConfigError(f"the ablation measurements were taken with another {key}: {stale}")
    for name, model in models.items():
        if name not in MODELS or model.get("sha256") != recorded_sha256(name):
            raise ConfigError(f"the measurements of {name!r} were taken on other weights than those shipped: {stale}")
    return results


def summary(results: dict, task: str, columns=None, level: float = 0.95) -> str:
    """A markdown table of one task: per model, each measure's mean and its bootstrap interval [low, high]."""
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    if not results.get("models"):
        raise InputError("no models to tabulate")
    first = next(iter(results["models"].values()))[task]
    keys = [key for key in COLUMNS if key in first] if columns is None else list(columns)
    unknown = [key for key in keys if key not in COLUMNS or key not in first]
    if unknown:
        raise InputError(f"no measure {unknown} for {task}; measured: {', '.join(first)}")
    rows = []
    for name, model in results["models"].items():
        cells = []
        for key in keys:
            values, fmt = model[task][key], COLUMNS[key][1]
            low, high = bootstrap_interval(values, level)
            cells.append(f"{fmt.format(sum(values) / len(values))} [{fmt.format(low)}, {fmt.format(high)}]")
        rows.append([name, *cells])
    lines = markdown_table(["model", *(COLUMNS[key][0] for key in keys)], rows)
    return "\n".join(lines)


def seed_run(name: str, seed: int, runs: str | Path = "runs") -> Path:
    """The training folder of an ablation network retrained with another seed."""
    return Path(runs) / "ablation-seeds" / f"{name}-seed{seed}"


def train_seeds(runs: str | Path = "runs", seeds=EXTRA_SEEDS, data_root=None, progress: bool = True) -> dict:
    """Train (or resume) every ablation network with its shipped recipe and each of `seeds` instead of 0.

    Returns {(name, seed): SHA-256 of its EMA weights}, exported beside its checkpoint as NAME.pt.
    """
    from .checkpoint import export_weights
    from .model import preset
    from .ship import train_config
    from .train import train

    digests = {}
    for seed in seeds:
        for name in ABLATION:
            folder = seed_run(name, seed, runs)
            cfg = train_config(name, folder, data_root, seed=seed)
            result = train(preset(MODELS[name].recipe.preset), cfg, progress=progress)
            digests[name, seed] = export_weights(result.checkpoint, folder / f"{name}.pt")
    return digests


def means(results: dict) -> dict:
    """`measure`'s (or `load_measured`'s) per-video values reduced to means: {name: {task: {measure: mean}}}."""
    return {name: {task: {key: sum(values) / len(values) for key, values in model[task].items()} for task in TASKS}
            for name, model in results["models"].items()}


def measure_seeds(runs: str | Path, classifier, heldout, seeds=EXTRA_SEEDS, videos: int = VIDEOS,
                  progress: bool = True) -> dict:
    """Measure the networks `train_seeds` wrote on the shipped measurements' seeds and videos, beside the
    shipped ones (seed 0, from MEASURED): {"settings": ..., "models": {name: {seed: {"sha256", task: {measure:
    mean}}}}}, seeds as strings (JSON keys)."""
    from .checkpoint import sha256

    _check_videos(videos)
    shipped = load_measured()
    if shipped["settings"]["videos"] != videos:
        raise InputError(f"the shipped networks were measured on {shipped['settings']['videos']} videos; "
                         f"measure the seeds on as many, not {videos}")
    models = {name: {"0": {"sha256": recorded_sha256(name), **task_means}}
              for name, task_means in means(shipped).items() if name in ABLATION}
    for seed in seeds:
        files = {name: seed_run(name, seed, runs) / f"{name}.pt" for name in ABLATION}
        missing = [str(path) for path in files.values() if not path.exists()]
        if missing:
            raise InputError(f"no trained weights at {', '.join(missing)}: train them first "
                             "(python -m tinydiff.ablation seeds)")
        pipes = {name: Pipeline.from_checkpoint(path, device="cpu") for name, path in files.items()}
        for name, task_means in means(measure(pipes, classifier, heldout, videos, progress)).items():
            models[name][str(seed)] = {"sha256": sha256(files[name]), **task_means}
    return {"settings": {"videos": videos, **_fingerprint()}, "models": models}


def load_seeds(path: str | Path | None = None) -> dict:
    """The shipped measurements over training seeds (or those at `path`), checked to belong to the shipped
    seed-0 weights, the classifier and the sampling settings."""
    stale = "rerun `python -m tinydiff.ablation seeds` (make ablation-seeds)"
    try:
        if path is None:
            with resources.as_file(resources.files("tinydiff") / "weights" / SEEDS_MEASURED) as shipped:
                results = json.loads(shipped.read_text())
        else:
            results = json.loads(Path(path).read_text())
        settings, models = results["settings"], results["models"]
        zero = {name: models[name]["0"]["sha256"] for name in ABLATION}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"no readable seed measurements at {path or SEEDS_MEASURED} ({error}): {stale}") from error
    for key, value in _fingerprint().items():
        if settings.get(key) != value:
            raise ConfigError(f"the seed measurements were taken with another {key}: {stale}")
    for name, digest in zero.items():
        if digest != recorded_sha256(name):
            raise ConfigError(f"the seed measurements' seed 0 of {name!r} is not the shipped network: {stale}")
    return results


def seed_table(results: dict, measures) -> str:
    """A markdown table: per (task, measure) and network, the mean of each training seed and their range."""
    if not measures:
        raise InputError("no measures to tabulate")
    models = results["models"]
    seeds = sorted(next(iter(models.values())), key=int)
    rows = []
    for task, key in measures:
        if task not in TASKS or key not in COLUMNS:
            raise InputError(f"no measure {key!r} of task {task!r}")
        fmt = COLUMNS[key][1]
        for name, model in models.items():
            values = [model[seed][task][key] for seed in seeds]
            rows.append([f"{task}, {COLUMNS[key][0]}", name, *(fmt.format(v) for v in values),
                         fmt.format(max(values) - min(values))])
    header = ["measure", "network", *(f"seed {seed}" for seed in seeds), "range"]
    return "\n".join(markdown_table(header, rows))


def seed_verdict(results: dict, better: str, worse: str, task: str, key: str) -> tuple[float, float, str]:
    """Does `better` beat `worse` on one measure whatever the training seeds? Every seed of one against every
    seed of the other: (smallest difference, largest, "higher" / "lower" when all differences share a sign,
    else "within the seed spread")."""
    models = results["models"]
    differences = [a[task][key] - b[task][key] for a in models[better].values() for b in models[worse].values()]
    low, high = min(differences), max(differences)
    return low, high, "higher" if low > 0 else "lower" if high < 0 else "within the seed spread"


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except TinydiffError as error:  # a bad setting or missing data: one line, as the tinydiff command does
        print(f"python -m tinydiff.ablation: error: {error}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    from .classifier import pretrained_classifier
    from .ship import train_and_ship

    parser = argparse.ArgumentParser(prog="python -m tinydiff.ablation", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train the three networks with their recipes and export them into the package")
    p.add_argument("--runs", default="runs", help="folder for the training runs (default: runs)")
    p = sub.add_parser("seeds", help=f"train the three recipes with seeds {', '.join(map(str, EXTRA_SEEDS))} "
                       "(resuming) and measure them; writes the shipped seed measurements")
    p.add_argument("--runs", default="runs", help="folder for the training runs (default: runs)")
    p.add_argument("--data-root", help="MNIST root (default: $TINYDIFF_DATA, else the per-user cache)")
    p.add_argument("--out", help="JSON file to write (default: the package's own, tinydiff/weights/" + SEEDS_MEASURED + ")")
    p = sub.add_parser("measure", help="measure the shipped networks and the writer; writes the shipped measurements")
    p.add_argument("--videos", type=int, default=VIDEOS, help=f"videos per model and task (default: {VIDEOS})")
    p.add_argument("--data-root", help="MNIST root (default: $TINYDIFF_DATA, else the per-user cache)")
    p.add_argument("--out", help="JSON file to write (default: the package's own, tinydiff/weights/" + MEASURED + ")")
    args = parser.parse_args(argv)
    weights = Path(__file__).parent / "weights"
    if args.command == "train":
        for name in ABLATION:
            print(f"{name}: SHA-256 {train_and_ship(name, args.runs)}, recorded in the manifest")
        print("then measure them: python -m tinydiff.ablation measure")
        return 0
    if args.command == "seeds":
        load_measured()  # the shipped seed-0 measurements must be current before an hour of training
        for (name, seed), digest in train_seeds(args.runs, data_root=args.data_root).items():
            print(f"{name}, seed {seed}: SHA-256 {digest}")
        results = measure_seeds(args.runs, pretrained_classifier(), load_mnist("heldout", root=args.data_root))
        out = Path(args.out) if args.out else weights / SEEDS_MEASURED
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(seed_table(results, [(task, key) for task in TASKS for key in ("iou", "read", "stable", "consistent")
                                   if key != "iou" or task == "image-to-video"]))
        return 0
    _check_videos(args.videos)  # before minutes of loading and sampling
    heldout = load_mnist("heldout", root=args.data_root)
    pipes = {**load_variants(device="cpu"), "writer": pretrained("writer", device="cpu")}
    results = measure(pipes, pretrained_classifier(), heldout, args.videos)
    save_measured(results, args.out or weights / MEASURED)
    for task in TASKS:
        print(f"\n{task}\n\n{summary(results, task)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
