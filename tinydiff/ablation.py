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
# What the seed table shows (chapter 4 and the command line): the measures chapter 4 draws conclusions from.
SEED_MEASURES = (("image-to-video", "iou"), ("class-conditional", "read"), ("class-conditional", "stable"),
                 ("class-conditional", "consistent"), ("unconditional", "stable"), ("unconditional", "consistent"))
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


def _read_checked(filename: str, path, what: str, stale: str) -> dict:
    """A measurements file (the package's own `filename`, or `path`): its JSON, checked to hold "settings" and
    "models" and to match the classifier and sampling settings shipped now."""
    try:
        if path is None:
            with resources.as_file(resources.files("tinydiff") / "weights" / filename) as shipped:
                results = json.loads(shipped.read_text())
        else:
            results = json.loads(Path(path).read_text())
        settings, models = results["settings"], results["models"]
        if not isinstance(settings, dict) or not isinstance(models, dict):
            raise TypeError("settings and models must be objects")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"no readable {what} at {path or filename} ({error}): {stale}") from error
    for key, value in _fingerprint().items():
        if settings.get(key) != value:
            raise ConfigError(f"the {what} were taken with another {key}: {stale}")
    return results


def load_measured(path: str | Path | None = None) -> dict:
    """The shipped measurements (or those at `path`), checked to belong to the weights, the classifier and
    the sampling settings shipped now."""
    stale = "rerun `python -m tinydiff.ablation measure` (make ablation-measure)"
    results = _read_checked(MEASURED, path, "ablation measurements", stale)
    for name, model in results["models"].items():
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
    """Train (or resume) every ablation network with its shipped recipe and each of `seeds` instead of its own.

    Returns {(name, seed): SHA-256 of its EMA weights}, exported beside its checkpoint as NAME.pt.
    """
    from .checkpoint import export_weights
    from .model import preset
    from .ship import train_config
    from .train import train

    digests = {}
    for seed in seeds:
        for name in ABLATION:
            if seed == MODELS[name].recipe.seed:
                raise InputError(f"seed {seed} is {name}'s own: the shipped network already is that run")
            folder = seed_run(name, seed, runs)
            result = train(preset(MODELS[name].recipe.preset), train_config(name, folder, data_root, seed=seed),
                           progress=progress)
            digests[name, seed] = export_weights(result.checkpoint, folder / f"{name}.pt")
    return digests


def task_means(results: dict) -> dict:
    """`measure`'s (or `load_measured`'s) per-video values reduced to means: {name: {task: {measure: mean}}}."""
    return {name: {task: {key: sum(values) / len(values) for key, values in model[task].items()} for task in TASKS}
            for name, model in results["models"].items()}


def measure_seeds(runs: str | Path, classifier, heldout, seeds=EXTRA_SEEDS, progress: bool = True) -> dict:
    """Measure the networks `train_seeds` wrote, on the shipped measurements' videos and seeds.

    Returns {"settings": ..., "models": {name: {seed: {"sha256", task: {measure: mean}}}}}, seeds as strings
    (JSON keys). The shipped networks' own seed is not in it: `load_seeds` takes it from MEASURED.
    """
    from .checkpoint import sha256

    videos = load_measured()["settings"]["videos"]
    models = {name: {} for name in ABLATION}
    for seed in seeds:
        files = {name: seed_run(name, seed, runs) / f"{name}.pt" for name in ABLATION}
        missing = [str(path) for path in files.values() if not path.exists()]
        if missing:
            raise InputError(f"no trained weights at {', '.join(missing)}: train them first "
                             "(python -m tinydiff.ablation seeds)")
        pipes = {name: Pipeline.from_checkpoint(path, device="cpu") for name, path in files.items()}
        for name, means in task_means(measure(pipes, classifier, heldout, videos, progress)).items():
            models[name][str(seed)] = {"sha256": sha256(files[name]), **means}
    return {"settings": {"videos": videos, **_fingerprint()}, "models": models}


def load_seeds(path: str | Path | None = None) -> dict:
    """The means of every measure per ablation network and training seed: the shipped networks (their own
    seed, from MEASURED) and the retrained ones (SEEDS_MEASURED, or `path`), checked to be measured alike.

    Returns {"settings": ..., "models": {name: {seed: {task: {measure: mean}}}}}, seeds as strings, in order.
    """
    stale = "rerun `python -m tinydiff.ablation seeds` (make ablation-seeds)"
    shipped = load_measured()
    results = _read_checked(SEEDS_MEASURED, path, "seed measurements", stale)
    if results["settings"].get("videos") != shipped["settings"]["videos"]:
        raise ConfigError(f"the seed measurements were taken on {results['settings'].get('videos')} videos per task, "
                          f"the shipped ones on {shipped['settings']['videos']}: {stale}")
    zero = task_means(shipped)
    models = {}
    for name in ABLATION:
        retrained = results["models"].get(name)
        if not retrained:
            raise ConfigError(f"the seed measurements hold no retrained {name!r}: {stale}")
        own = str(MODELS[name].recipe.seed)
        models[name] = {own: zero[name], **{seed: {task: means[task] for task in TASKS}
                                            for seed, means in retrained.items() if seed != own}}
        models[name] = dict(sorted(models[name].items(), key=lambda item: int(item[0])))
    if len({tuple(seeds) for seeds in models.values()}) != 1:
        raise ConfigError(f"the networks were retrained with different seeds: {stale}")
    return {"settings": results["settings"], "models": models}


def _check_measure(results: dict, task: str, key: str) -> None:
    measured = next(iter(next(iter(results["models"].values())).values())).get(task, {})
    if task not in TASKS or key not in measured:
        raise InputError(f"no measure {key!r} of task {task!r}; measured: {', '.join(measured) or 'none'}")


def seed_table(results: dict, measures) -> str:
    """A markdown table: per (task, measure) and network, the mean of each training seed and their range."""
    if not measures or not results.get("models"):
        raise InputError("no measures or no networks to tabulate")
    models = results["models"]
    seeds = list(next(iter(models.values())))
    rows = []
    for task, key in measures:
        _check_measure(results, task, key)
        fmt = COLUMNS[key][1]
        for name, model in models.items():
            values = [model[seed][task][key] for seed in seeds]
            rows.append([f"{task}, {COLUMNS[key][0]}", name, *(fmt.format(v) for v in values),
                         fmt.format(max(values) - min(values))])
    header = ["measure", "network", *(f"seed {seed}" for seed in seeds), "range"]
    return "\n".join(markdown_table(header, rows))


def _seed_models(results: dict, *names: str) -> dict:
    """The seed measurements of the named networks, refused with a one-line error when one is missing."""
    missing = [name for name in names if name not in results.get("models", {})]
    if missing:
        raise InputError(f"no seed measurements of {', '.join(missing)}; measured: {', '.join(results.get('models', {}))}")
    return results["models"]


def seed_mean(results: dict, name: str, task: str, key: str) -> float:
    """A network's mean of one measure over its training seeds."""
    models = _seed_models(results, name)
    _check_measure(results, task, key)
    values = [seed[task][key] for seed in models[name].values()]
    return sum(values) / len(values)


def seed_verdict(results: dict, a: str, b: str, task: str, key: str) -> tuple[float, float, str]:
    """Does network `a` differ from `b` on one measure whatever their training seeds? The difference a - b over
    every pair (a seed of `a`, a seed of `b`): (smallest, largest, "higher" when every difference is above 0,
    "lower" when every one is below, else "within the seed spread"). For flicker, vanishing ink and switches,
    lower is better."""
    models = _seed_models(results, a, b)
    _check_measure(results, task, key)
    differences = [x[task][key] - y[task][key] for x in models[a].values() for y in models[b].values()]
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
    p.add_argument("--seeds", type=int, nargs="+", default=list(EXTRA_SEEDS),
                   help=f"training seeds (default: {' '.join(map(str, EXTRA_SEEDS))}); others already measured are kept")
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
        load_measured()  # the shipped measurements must be current before hours of training
        for (name, seed), digest in train_seeds(args.runs, args.seeds, args.data_root).items():
            print(f"{name}, seed {seed}: SHA-256 {digest}")
        results = measure_seeds(args.runs, pretrained_classifier(), load_mnist("heldout", root=args.data_root),
                                args.seeds)
        out = Path(args.out) if args.out else weights / SEEDS_MEASURED
        try:  # keep the seeds measured before and not asked for now
            earlier = _read_checked(SEEDS_MEASURED, out, "seed measurements", "")["models"]
        except ConfigError:
            earlier = {}
        for name, seeds in results["models"].items():
            results["models"][name] = dict(sorted({**earlier.get(name, {}), **seeds}.items(), key=lambda s: int(s[0])))
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(seed_table(load_seeds(out), SEED_MEASURES))
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
