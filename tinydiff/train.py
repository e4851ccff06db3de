"""Training: sample t, teleport to x_t with q(x_t | x_0), regress the prediction target with MSE.

One function, `train`, runs on a CPU, on a GPU (bf16 autocast) and under
`torchrun --nproc_per_node=N` (DistributedDataParallel, gloo on CPUs, NCCL on GPUs). Every random draw
of a step comes from a generator seeded by (seed, step, rank) and the data order is a function of the
step, so a run resumed from a checkpoint continues exactly as if it had never stopped.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .data import WritingVideos
from .errors import CheckpointError, ConfigError, TrainingError
from .model import ModelConfig, VideoUNet
from .schedule import NoiseSchedule

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Optimisation settings; stored in every checkpoint beside the model's configuration."""

    out_dir: str = "runs/writer"  # checkpoint.pt is written and resumed here
    steps: int = 2000  # optimiser steps in total
    batch_size: int = 16  # videos per step and per process
    lr: float = 2e-3  # AdamW peak learning rate
    weight_decay: float = 0.0
    warmup_steps: int = 100  # linear warm-up, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm
    ema_decay: float = 0.999  # EMA of weights, warmed up as min(decay, (1 + step) / (10 + step))
    cond_drop: float = 0.1  # probability of training a sample without its condition (for guidance)
    loss_weighting: str = "uniform"  # "uniform" or "min-snr" (Hang et al. 2023, gamma = 5)
    seed: int = 0
    checkpoint_every: int = 250  # steps between checkpoints (and one at the end)
    data_root: str | None = None  # MNIST root; None: $TINYDIFF_DATA or the per-user cache
    train_limit: int | None = None  # use only the first N training digits
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    threads: int | None = None  # CPU threads (torch.set_num_threads); None leaves torch's default

    def __post_init__(self):
        positive = ("steps", "batch_size", "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        for name in ("cond_drop", "ema_decay", "min_lr_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if self.loss_weighting not in ("uniform", "min-snr"):
            raise ConfigError(f"loss_weighting must be 'uniform' or 'min-snr', got {self.loss_weighting!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class TrainResult:
    checkpoint: Path  # the final checkpoint
    losses: list[float]  # training loss of every step since the run began (resumed runs included)
    ema: VideoUNet  # the EMA network, in eval mode


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
        return torch.ones(t.shape, dtype=torch.float32)
    snr = schedule.snr(t.cpu())
    clipped = snr.clamp(max=5.0)
    per_target = {"eps": clipped / snr, "v": clipped / (snr + 1), "x0": clipped}
    return per_target[prediction].float()


def step_seed(seed: int, step: int, rank: int) -> int:
    """The seed of one step's random draws on one rank: a function of (seed, step, rank) alone."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1, np.uint64)[0] >> 1)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for, but torch sees no CUDA GPU; use --device cpu")
    return device


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank), starting the process group when run under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _finite_everywhere(loss: torch.Tensor, world: int) -> bool:
    """Whether the loss is finite on every rank (all ranks must stop together, or the others hang)."""
    bad = (~torch.isfinite(loss.detach())).float()
    if world > 1:
        dist.all_reduce(bad)
    return bad.item() == 0


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
          until: int | None = None) -> TrainResult:
    """Train (or resume training) a denoiser; returns the final checkpoint's path, losses and EMA model.

    Checkpoints go to `cfg.out_dir/checkpoint.pt` every `cfg.checkpoint_every` steps and at the end,
    holding both configurations, the weights, the EMA, the optimiser, the step and the RNG state.
    With `resume`, an existing checkpoint there is continued exactly. `until` pauses the run after
    that step (checkpointed, the learning-rate schedule still planned for `cfg.steps`), so a run can
    be trained in chunks and evaluated in between.
    """
    rank, world, local_rank = _distributed()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
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
    step, losses, elapsed = 0, [], 0.0
    if resume and path.exists():
        state = load_checkpoint(path, map_location=device)
        if ModelConfig.from_dict(state.get("model_config") or {}) != model_cfg:
            raise CheckpointError(f"{path} holds a different model configuration; use another out_dir "
                                  "or start afresh (resume=False, --no-resume)")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        step, losses, elapsed = state["step"], list(state["losses"]), state["elapsed_s"]
        torch.set_rng_state(state["rng"])

    dataset = WritingVideos(train=True, root=cfg.data_root, limit=cfg.train_limit, frames=model_cfg.frames)
    if len(dataset) < cfg.batch_size * world:
        raise ConfigError(f"{len(dataset)} training videos cannot fill a batch of {cfg.batch_size} x {world}")
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True)
    per_epoch = len(sampler) // cfg.batch_size
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    model.train()

    def save() -> None:
        if rank == 0:
            save_checkpoint({"model_config": model_cfg.to_dict(), "train_config": asdict(cfg),
                             "model": model.state_dict(), "ema": ema.state_dict(),
                             "optimizer": optimizer.state_dict(), "step": step, "losses": losses,
                             "elapsed_s": elapsed, "rng": torch.get_rng_state()}, path)
        if world > 1:
            dist.barrier()

    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not progress or rank != 0)
    order, order_epoch = None, None
    stop = cfg.steps if until is None else min(until, cfg.steps)
    while step < stop:
        started = time.perf_counter()
        epoch, position = divmod(step, per_epoch)
        if epoch != order_epoch:
            sampler.set_epoch(epoch)
            order, order_epoch = torch.tensor(list(sampler)), epoch
        index = order[position * cfg.batch_size:(position + 1) * cfg.batch_size]
        x0 = dataset.videos[index].to(device)  # (B, 1, T, H, W)
        condition = dataset.conditions[index].to(device)  # (B, 1, H, W)

        g = torch.Generator().manual_seed(step_seed(cfg.seed, step, rank))
        t = torch.randint(0, schedule.num_timesteps, (len(index),), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        keep = (torch.rand(len(index), generator=g) >= cfg.cond_drop).float().view(-1, 1, 1, 1)
        t, noise, keep = t.to(device), noise.to(device), keep.to(device)

        x_t = schedule.q_sample(x0, t, noise)
        target = schedule.training_target(model_cfg.prediction, x0, noise, t)
        with autocast:
            output = net(x_t, t, condition * keep)
        per_sample = F.mse_loss(output.float(), target, reduction="none").mean(dim=(1, 2, 3, 4))
        weights = loss_weights(schedule, model_cfg.prediction, cfg.loss_weighting, t).to(device)
        loss = (weights * per_sample).mean()
        if not _finite_everywhere(loss, world):
            # The weights that gave this loss were updated by finite steps only: keep them if they are sound.
            if all(torch.isfinite(p).all() for p in model.parameters()):
                save()
            raise TrainingError(f"the loss is not finite at step {step + 1}; training stopped and {path} "
                                f"holds the last good state (step {_saved_step(path)}): lower --lr or check the data")

        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        update_ema(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))

        step += 1
        logged = loss.detach()
        if world > 1:  # log the loss of the whole global batch, the same on every rank
            dist.all_reduce(logged)
            logged /= world
        losses.append(logged.item())
        seconds = time.perf_counter() - started
        elapsed += seconds
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", videos_per_s=f"{len(index) * world / seconds:.1f}")
        if step % cfg.checkpoint_every == 0 or step == stop:
            save()
    bar.close()
    if world > 1:
        dist.destroy_process_group()
    return TrainResult(path, losses, ema)
