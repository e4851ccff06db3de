"""Training: sample t, teleport to x_t with q(x_t | x_0), regress the prediction target with MSE.

One function, `train`, runs on a CPU, on a GPU (in fp32, bf16 or fp16: see `tinydiff.device`) and
under `torchrun --nproc_per_node=N` (DistributedDataParallel: gloo on CPUs, NCCL with one GPU per
process). Every random draw of a step comes from a generator seeded by (seed, step, rank) on the
training device, and the data order is a function of the step, so a run resumed from a checkpoint
continues as if it had never stopped (bit for bit in fp32 on a CPU; see `tinydiff.device`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .data import WritingVideos
from .device import autocast, check_precision, no_tf32, resolve_device, resolve_precision
from .errors import CheckpointError, ConfigError, TrainingError
from .model import CLASSES, NO_LABEL, ModelConfig, VideoUNet, from_known_fields
from .motion import known_condition, training_masks, unknown_weights
from .moving import MovingDigitsStream
from .schedule import NoiseSchedule

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Optimisation settings; stored in every checkpoint beside the model's configuration."""

    out_dir: str = "runs/train"  # checkpoint.pt is written and resumed here (no `make` target writes here)
    steps: int = 2000  # optimiser steps in total
    batch_size: int = 16  # videos per step and per process
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 0.0
    warmup_steps: int = 100  # linear warm-up, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm
    ema_decay: float = 0.999  # EMA of weights, warmed up as min(decay, (1 + step) / (10 + step))
    # Conditioning modes (one per sample): nothing (cond_drop), the class label only (label_share), or
    # the finished digit (the rest, image-to-video). Guidance needs the unconditional mode. The defaults
    # are the shipped writer's (RESULTS.md, "Generation from noise").
    cond_drop: float = 0.2  # probability of training a sample without any condition
    label_share: float | None = None  # probability of a sample with its label alone; None: LABEL_SHARE with labels, else 0
    loss_weighting: str = "uniform"  # "uniform" or "min-snr" (Hang et al. 2023, gamma = 5)
    # Timesteps are drawn as floor(T u^(1/p)), u uniform in [0, 1): density proportional to t^(p-1). 1 is the
    # uniform draw; above 1, noisier levels more often, where a prediction from the known frames is made
    # (RESULTS.md, "Moving digits").
    timestep_power: float = 1.0
    seed: int = 0
    checkpoint_every: int = 250  # steps between checkpoints (and one at the end)
    data_root: str | None = None  # MNIST root; None: $TINYDIFF_DATA or the per-user cache
    train_limit: int | None = None  # use only the first N training digits
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ... (under torchrun: each process's own GPU)
    precision: str = "auto"  # "auto", "fp32", "bf16" or "fp16" (see tinydiff.device)
    threads: int | None = None  # CPU threads (torch.set_num_threads); None leaves torch's default

    def __post_init__(self):
        positive = ("steps", "batch_size", "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("cond_drop", "label_share", "ema_decay", "min_lr_ratio"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {value!r}")
        check_precision(self.precision)
        if isinstance(self.timestep_power, bool) or not (isinstance(self.timestep_power, (int, float))
                                                         and 0 < self.timestep_power < math.inf):
            raise ConfigError(f"timestep_power must be a positive number, got {self.timestep_power!r}")
        if self.loss_weighting not in ("uniform", "min-snr"):
            raise ConfigError(f"loss_weighting must be 'uniform' or 'min-snr', got {self.loss_weighting!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        return from_known_fields(cls, values, "training")


# Settings that say where and how a run executes, not what it learns: a run may resume with other values.
# Everything else but `steps` is the recipe, and resuming under another recipe is refused (`train`).
EXECUTION = ("out_dir", "data_root", "device", "precision", "threads", "checkpoint_every")


def recipe_changes(saved: dict, cfg: TrainConfig) -> list[str]:
    """The recipe settings in which `cfg` differs from a checkpoint's recorded training config, as
    "name saved -> new" (empty when they agree)."""
    saved = {**asdict(TrainConfig()), **saved}  # a setting added since the checkpoint: it trained at the default
    return [f"{name} {saved[name]!r} -> {value!r}" for name, value in asdict(cfg).items()
            if name not in (*EXECUTION, "steps") and saved[name] != value]


@dataclass
class TrainResult:
    checkpoint: Path  # the final checkpoint
    losses: list[float]  # training loss of every step since the run began (resumed runs included)
    ema: VideoUNet  # the EMA network, in eval mode


LABEL_SHARE = 0.4  # the default share of label-only videos for a model with labels


def conditioning_shares(cfg: TrainConfig, model_cfg: ModelConfig) -> float:
    """The share of label-only training videos (cfg.label_share, or its default), checked against the model."""
    share = cfg.label_share if cfg.label_share is not None else LABEL_SHARE if model_cfg.labels else 0.0
    if share > 0 and not model_cfg.labels:
        raise ConfigError("label_share > 0 needs a model with a label embedding (labels=True)")
    if cfg.cond_drop + share > 1.0:
        raise ConfigError(f"cond_drop + label_share must be at most 1 (the rest trains image-to-video), "
                          f"got {cfg.cond_drop} + {share}")
    return share


# The conditioning modes a model can be asked for, by what it trained on: a video from nothing ("noise", which
# classifier-free guidance also pushes from), from a class label ("label"), from the finished digit ("image"),
# from some of its frames ("frames", a moving-digits model).
# Each with how a message names training on it, and asking for it.
MODES = {"noise": ("videos from nothing", "a video from nothing (any digit)"),
         "label": ("videos from a class label", "a digit by its label"),
         "image": ("videos of a finished digit (image-to-video)", "the video of a finished digit"),
         "frames": ("videos with some frames known (masked conditioning)", "frames given as known")}


def mode_shares(cfg: TrainConfig, model_cfg: ModelConfig) -> dict[str, float]:
    """The share of training videos in each conditioning mode (`MODES`), as `train` draws them: nothing below
    cond_drop, the label alone up to cond_drop + label_share, the finished digit above (known frames, for a
    model with `known_frames`); a model without a condition trains those last ones from nothing."""
    label_share = conditioning_shares(cfg, model_cfg)
    rest = 1.0 - (cfg.cond_drop + label_share)
    if model_cfg.known_frames:
        return {"noise": cfg.cond_drop, "label": label_share, "image": 0.0, "frames": rest}
    if not model_cfg.conditional:
        return {"noise": cfg.cond_drop + rest, "label": label_share, "image": 0.0, "frames": 0.0}
    return {"noise": cfg.cond_drop, "label": label_share, "image": rest, "frames": 0.0}


def trained_modes(train_config: dict, model_cfg: ModelConfig) -> frozenset[str]:
    """The conditioning modes a checkpoint's training configuration gave any of its videos."""
    shares = mode_shares(TrainConfig.from_dict(train_config), model_cfg)
    return frozenset(mode for mode, share in shares.items() if share > 0)


def load_trained(path, use_ema: bool = True) -> tuple[dict, VideoUNet, frozenset[str] | None]:
    """A checkpoint for sampling: (its payload, its network with the EMA weights by default, the conditioning
    modes its recorded training configuration gave its videos, or None when it records none)."""
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload, use_ema=use_ema)
    if not isinstance(payload.get("train_config"), dict):
        return payload, model, None
    try:
        return payload, model, trained_modes(payload["train_config"], model.cfg)
    except ConfigError as error:
        raise CheckpointError(f"{path} records an unusable training configuration: {error}") from None


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay from lr to min_lr_ratio * lr at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def loss_weights(schedule: NoiseSchedule, prediction: str, weighting: str, t: torch.Tensor) -> torch.Tensor:
    """Per-sample loss weights (B,): 1, or min-SNR-5 expressed for the prediction target."""
    if weighting == "uniform":
        return torch.ones(t.shape, dtype=torch.float32, device=t.device)
    snr = schedule.snr(t)
    clipped = snr.clamp(max=5.0)
    per_target = {"eps": clipped / snr, "v": clipped / (snr + 1), "x0": clipped}
    return per_target[prediction].float()


def draw_timesteps(n: int, num_timesteps: int, power: float, generator: torch.Generator,
                   device: torch.device | str) -> torch.Tensor:
    """n training timesteps (n,) long in [0, T): uniform for power 1, else floor(T u^(1/power))."""
    if power == 1:
        return torch.randint(0, num_timesteps, (n,), generator=generator, device=device)
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    return (u ** (1 / power) * num_timesteps).long().clamp(max=num_timesteps - 1)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of one step's random draws on one rank: a function of (seed, step, rank) alone."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0] >> 1)


def _distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, this process's device), starting the process group when run under torchrun.

    On GPUs each process takes the GPU of its local rank and talks over NCCL; on CPUs, over gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        if device.type == "cuda":
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(f"process {local_rank} has no GPU of its own: torch sees {torch.cuda.device_count()}; "
                                  "start at most that many processes per node, or train with --device cpu")
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return int(os.environ.get("RANK", "0")), world, device


def _global_loss(loss: torch.Tensor, world: int) -> float:
    """The loss averaged over ranks, read in one host sync; non-finite if it is on any rank (so that
    all ranks stop together, or the others would hang). MSE losses are >= 0, so inf never cancels."""
    total = loss.detach().float().clone()
    if world > 1:
        dist.all_reduce(total)
    return total.item() / world


def _saved_step(path: Path) -> int | str:
    try:
        return load_checkpoint(path)["step"]
    except CheckpointError:
        return "none"


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def train(model_cfg: ModelConfig, cfg: TrainConfig, resume: bool = True, progress: bool = True,
          until: int | None = None, force_resume: bool = False) -> TrainResult:
    """Train (or resume training) a denoiser; returns the final checkpoint's path, losses and EMA model.

    Checkpoints go to `cfg.out_dir/checkpoint.pt` every `cfg.checkpoint_every` steps and at the end,
    holding both configurations, the weights, the EMA, the optimiser, the step and the RNG state.
    With `resume`, an existing checkpoint there is continued exactly; one trained under another recipe
    (any setting but `steps` and those in `EXECUTION`) is refused, unless `force_resume`, which continues it
    under the new settings and records them. `until` pauses the run after
    that step (checkpointed, the learning-rate schedule still planned for `cfg.steps`), so a run can
    be trained in chunks and evaluated in between.
    """
    label_share = conditioning_shares(cfg, model_cfg)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)  # before any process group: a refusal leaves none
    rank, world, device = _distributed(device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    schedule = NoiseSchedule(model_cfg.schedule, model_cfg.num_timesteps)
    path = Path(cfg.out_dir) / CHECKPOINT_NAME

    if rank == 0:  # a run killed while writing a checkpoint leaves its temporary file behind
        for stale in path.parent.glob(f"{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = VideoUNet(model_cfg).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    # fp16 needs its gradients scaled up (or small ones flush to zero); bf16 has fp32's range.
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    step, losses, elapsed = 0, [], 0.0
    if resume and path.exists():
        # On the CPU: the RNG state must stay a CPU tensor; load_state_dict moves weights to the device.
        state = load_checkpoint(path, map_location="cpu")
        if ModelConfig.from_dict(state.get("model_config") or {}) != model_cfg:
            raise CheckpointError(f"{path} holds a different model configuration; use another out_dir "
                                  "or start afresh (resume=False, --no-resume)")
        changes = recipe_changes(state.get("train_config") or {}, cfg)
        if changes and not force_resume:
            raise CheckpointError(f"{path} was trained with other settings ({'; '.join(changes)}); use another "
                                  "out_dir, start afresh (--no-resume), or continue under the new ones (--force-resume)")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        saved = state.get("precision")  # recorded since tinydiff 0.2
        if saved is not None and saved != precision:
            warnings.warn(f"{path} was trained in {saved} and continues in {precision}: the run goes on, but "
                          f"not as it would have without the stop (set the precision to {saved} for that)",
                          stacklevel=2)
        step, losses, elapsed = state["step"], list(state["losses"]), state["elapsed_s"]
        torch.set_rng_state(state["rng"])

    # Writing videos are built once and shuffled by epoch; moving digits are drawn afresh every step.
    stream = dataset = None
    if model_cfg.known_frames:
        stream = MovingDigitsStream("train", root=cfg.data_root, limit=cfg.train_limit)
    else:
        dataset = WritingVideos("train", root=cfg.data_root, limit=cfg.train_limit, frames=model_cfg.frames)
        if len(dataset) < cfg.batch_size * world:
            raise ConfigError(f"{len(dataset)} training videos cannot fill a batch of {cfg.batch_size} x {world}")
        if device.type == "cuda":
            dataset.to(device)
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed,
                                     drop_last=True)
        per_epoch = len(sampler) // cfg.batch_size
    # The digits' frequencies in the training data: a labelled model's prior p(label), with which its
    # class-conditional samples add up to samples of the whole data (tinydiff.cascade).
    label_counts = torch.bincount(dataset.labels.cpu(), minlength=CLASSES).tolist() if model_cfg.labels and dataset else None
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    model.train()

    def save() -> None:
        if rank == 0:
            save_checkpoint({"model_config": model_cfg.to_dict(), "train_config": asdict(cfg),
                             "precision": precision, "model": model.state_dict(), "ema": ema.state_dict(),
                             "optimizer": optimizer.state_dict(),
                             "scaler": scaler.state_dict() if scaler.is_enabled() else None, "step": step,
                             "losses": losses, "elapsed_s": elapsed, "rng": torch.get_rng_state(),
                             "label_counts": label_counts}, path)
        if world > 1:
            dist.barrier()

    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not progress or rank != 0)
    order, order_epoch = None, None
    stop = cfg.steps if until is None else min(until, cfg.steps)
    with no_tf32(device) if precision == "fp32" else contextlib.nullcontext():  # backward passes too
        while step < stop:
            started = time.perf_counter()
            seed = step_seed(cfg.seed, step, rank)
            if stream is not None:
                x0 = stream.batch(cfg.batch_size, model_cfg.frames, seed).to(device)  # (B, 1, T, H, W)
            else:
                epoch, position = divmod(step, per_epoch)
                if epoch != order_epoch:
                    sampler.set_epoch(epoch)
                    order, order_epoch = torch.tensor(list(sampler)).to(dataset.ink.device), epoch
                index = order[position * cfg.batch_size:(position + 1) * cfg.batch_size]
                x0, condition = dataset.batch(index, device)  # (B, 1, T, H, W), (B, 1, H, W)
                label = dataset.labels[index.to(dataset.labels.device)].to(device)  # (B,)

            # Drawn on the training device (no host-to-device copies). A CPU and a GPU generator draw
            # different numbers for one seed; on one device, a step's draws depend on (seed, step, rank) only.
            g = torch.Generator(device).manual_seed(seed)
            n = len(x0)
            t = draw_timesteps(n, schedule.num_timesteps, cfg.timestep_power, g, device)
            noise = torch.randn(x0.shape, generator=g, device=device)
            if stream is not None:  # a random mask of known frames per video; the loss is on the others
                known = training_masks(n, model_cfg.frames, cfg.cond_drop, g, device)  # (B, T)
                condition, label, frame_weights = known_condition(x0, known), None, unknown_weights(known)
            else:
                mode = torch.rand(n, generator=g, device=device)  # [0, cond_drop): nothing; then the label; then the image
                image = (mode >= cfg.cond_drop + label_share).float().view(-1, 1, 1, 1)
                labelled = (mode >= cfg.cond_drop) & (mode < cfg.cond_drop + label_share)
                label = torch.where(labelled, label, NO_LABEL) if model_cfg.labels else None
                condition, frame_weights = condition * image, torch.full((n, x0.shape[2]), 1.0 / x0.shape[2], device=device)

            x_t = schedule.q_sample(x0, t, noise)
            target = schedule.training_target(model_cfg.prediction, x0, noise, t)
            with autocast(device, precision):
                output = net(x_t, t, condition, label)
            per_frame = F.mse_loss(output.float(), target, reduction="none").mean(dim=(1, 3, 4))  # (B, T)
            per_sample = (per_frame * frame_weights).sum(dim=1)
            loss = (loss_weights(schedule, model_cfg.prediction, cfg.loss_weighting, t) * per_sample).mean()
            logged = _global_loss(loss, world)  # a host sync (fp16's scaler.step adds another)
            if not math.isfinite(logged):
                # The weights that gave this loss were updated by finite steps only: keep them if they are sound.
                if all(torch.isfinite(p).all() for p in model.parameters()):
                    save()
                raise TrainingError(f"the loss is not finite at step {step + 1}; training stopped and {path} "
                                    f"holds the last good state (step {_saved_step(path)}): lower --lr or check the data")

            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients (a no-op outside fp16)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)  # in fp16, skipped when the scaled gradients overflowed
            scaler.update()
            update_ema(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))

            step += 1
            losses.append(logged)
            seconds = time.perf_counter() - started
            elapsed += seconds
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", videos_per_s=f"{n * world / seconds:.1f}")
            if step % cfg.checkpoint_every == 0 or step == stop:
                save()
    bar.close()
    if world > 1:
        dist.destroy_process_group()
    return TrainResult(path, losses, ema)
