"""The CUDA paths, run on a real GPU: resume, DDP (gloo for --device cpu on a GPU host, NCCL with one GPU
per process), CPU-vs-CUDA sampling agreement, half-precision training, and the precisions refused.

Every test pins its device. Skipped as a whole where torch sees no CUDA GPU (CI); `make gpu-check` runs
them on a GPU machine. What can be checked without a GPU is in test_device.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tinydiff import ConfigError, DataError, Pipeline, VideoUNet, preset, pretrained
from tinydiff.checkpoint import load_checkpoint
from tinydiff.data import load_mnist, writing_videos
from tinydiff.device import native_bf16, resolve_precision
from tinydiff.metrics import frame_iou
from tinydiff.train import TrainConfig, train

from .conftest import synthetic_digits

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda", 0)

# CPU and CUDA run the same fp32 arithmetic in another order (TF32 is off in fp32: tinydiff.device), and
# DDIM carries those rounding differences through 50 steps; only pixels within that error of the 0.5 ink
# threshold can flip, so at most a few per frame.
AGREEMENT_IOU = 0.98
# bf16 / fp16 keep 8 / 11 bits of mantissa in the convolutions: the videos move, the quality must not.
HALF_IOU_DROP = 0.02


def config(out_dir: Path, data_root: Path, **overrides) -> TrainConfig:
    settings = dict(out_dir=str(out_dir), steps=4, batch_size=4, data_root=str(data_root), checkpoint_every=2,
                    warmup_steps=2, device="cuda:0", precision="fp32")
    return TrainConfig(**{**settings, **overrides})


def test_resume_on_cuda(tmp_path, fake_mnist, tiny_config):
    straight = train(tiny_config, config(tmp_path / "a", fake_mnist), progress=False)
    paused = train(tiny_config, config(tmp_path / "b", fake_mnist), progress=False, until=2)
    saved = load_checkpoint(paused.checkpoint, map_location=None)  # tensors where they were saved from
    assert saved["step"] == 2 and saved["precision"] == "fp32"
    assert saved["rng"].device.type == "cpu" and saved["rng"].dtype == torch.uint8  # torch.set_rng_state needs it
    resumed = train(tiny_config, config(tmp_path / "b", fake_mnist), progress=False)

    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert a["step"] == b["step"] == 4 and len(straight.losses) == len(resumed.losses) == 4
    assert resumed.losses[:2] == paused.losses
    # Same data, timesteps and noise in both runs, but CUDA's backward kernels (atomic adds in the
    # convolutions' weight gradients) sum in a varying order: float32 rounding, ~1e-6 relative per
    # gradient. AdamW turns a gradient into a step of about lr * sign, so a rounding difference moves a
    # weight by ~lr * 1e-6; atol = 1e-4 is 5 % of one full step at lr 2e-3 (a real resume bug, such
    # as a skipped or repeated step, moves weights by whole steps), rtol = 1e-3 for the larger weights.
    torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(straight.losses), rtol=1e-4, atol=1e-6)
    for part in ("model", "ema"):
        for name in a[part]:
            torch.testing.assert_close(b[part][name], a[part][name], rtol=1e-3, atol=1e-4,
                                       msg=lambda m, part=part, name=name: f"{part}.{name}: {m}")
    torch.testing.assert_close(b["optimizer"]["state"][0]["exp_avg"], a["optimizer"]["state"][0]["exp_avg"],
                               rtol=1e-3, atol=1e-5)


# Runs `tinydiff train` under torchrun and reports, per rank, the backend it asked for and its GPU.
SPY = textwrap.dedent("""
    import os, sys
    import torch
    import torch.distributed as dist
    from tinydiff.cli import main

    init = dist.init_process_group

    def spy(backend=None, *args, **kwargs):
        gpu = torch.cuda.current_device() if torch.cuda.is_available() else None
        print(f"rank {os.environ['RANK']}: backend {backend}, current cuda device {gpu}", flush=True)
        return init(backend, *args, **kwargs)

    dist.init_process_group = spy
    sys.exit(main(sys.argv[1:]))
""")


def torchrun_train(tmp_path: Path, data_root: Path, device: str) -> tuple[subprocess.CompletedProcess, Path]:
    script = tmp_path / "spy.py"
    script.write_text(SPY)
    out = tmp_path / f"ddp-{device}"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
               "train", "--preset", "tiny", "--steps", "3", "--batch-size", "2", "--checkpoint-every", "2",
               "--data-root", str(data_root), "--out", str(out), "--quiet", "--device", device]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done, out / "checkpoint.pt"


def check_ddp_checkpoint(path: Path) -> None:
    state = load_checkpoint(path)
    assert state["step"] == 3 and len(state["losses"]) == 3
    assert all(torch.isfinite(torch.tensor(state["losses"])))


def test_torchrun_on_the_cpu_of_a_gpu_host_uses_gloo(tmp_path, fake_mnist):
    # The GPU is visible; --device cpu must still give gloo (NCCL cannot reduce CPU tensors).
    done, checkpoint = torchrun_train(tmp_path, fake_mnist, "cpu")
    assert done.stdout.count("backend gloo") == 2, done.stdout
    assert "nccl" not in done.stdout
    assert done.stdout.count("trained to step 3") == 1, "only rank 0 reports"
    check_ddp_checkpoint(checkpoint)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs (one per process for NCCL)")
def test_torchrun_with_one_gpu_per_process_uses_nccl(tmp_path, fake_mnist):
    done, checkpoint = torchrun_train(tmp_path, fake_mnist, "cuda")
    assert done.stdout.count("backend nccl") == 2, done.stdout
    assert "current cuda device 0" in done.stdout and "current cuda device 1" in done.stdout, done.stdout
    check_ddp_checkpoint(checkpoint)


def eight_digits():
    """Held-out MNIST digits when $TINYDIFF_DATA holds them, else the synthetic digits of conftest."""
    if os.environ.get("TINYDIFF_DATA"):
        try:
            return load_mnist("heldout", download=False)[0][:8].numpy()
        except DataError:
            pass
    return synthetic_digits(8, seed=3)[0]


def test_cpu_and_cuda_sample_the_same_videos():
    digits = eight_digits()
    truth = writing_videos(digits)
    on_cpu = pretrained("writer", device="cpu", precision="fp32").animate(digits, steps=50, seed=0)
    on_cuda = pretrained("writer", device=CUDA, precision="fp32").animate(digits, steps=50, seed=0)
    agreement = frame_iou(on_cuda, on_cpu).mean().item()
    assert agreement >= AGREEMENT_IOU, f"CPU and CUDA fp32 videos agree to frame IoU {agreement:.4f}"

    half = resolve_precision("auto", CUDA)  # bf16 where native (compute capability >= 8.0), else fp16
    in_half = pretrained("writer", device=CUDA, precision=half).animate(digits, steps=50, seed=0)
    assert torch.isfinite(in_half).all()
    again = pretrained("writer", device=CUDA, precision=half).animate(digits, steps=50, seed=0)
    assert torch.equal(in_half, again), "same seed, same videos on one GPU"
    fp32_iou = frame_iou(on_cuda, truth).mean().item()
    half_iou = frame_iou(in_half, truth).mean().item()
    assert abs(half_iou - fp32_iou) <= HALF_IOU_DROP, f"frame IoU {half}: {half_iou:.4f}, fp32: {fp32_iou:.4f}"


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_training(tmp_path, fake_mnist, precision):
    if precision == "bf16" and not native_bf16(CUDA):
        pytest.skip("this GPU has no native bf16 (compute capability < 8.0)")
    cfg = config(tmp_path / precision, fake_mnist, steps=10, checkpoint_every=10, precision=precision)
    result = train(preset("default"), cfg, progress=False)
    assert len(result.losses) == 10 and all(torch.isfinite(torch.tensor(result.losses)))
    state = load_checkpoint(result.checkpoint)
    assert state["precision"] == precision
    if precision == "fp16":  # the gradient scaler's state is saved for an exact resume
        assert isinstance(state["scaler"], dict) and state["scaler"]["scale"] > 0
    else:  # bf16 has fp32's range: no scaler
        assert state["scaler"] is None
    for name, tensor in state["model"].items():  # autocast keeps the master weights in fp32
        assert tensor.dtype in (torch.float32, torch.int64) and torch.isfinite(tensor.float()).all(), name

    pipe = Pipeline.from_checkpoint(result.checkpoint, device=CUDA, precision=precision)
    videos = pipe.animate(synthetic_digits(2, seed=4)[0], steps=5, seed=0)
    assert videos.shape == (2, 15, 28, 28) and torch.isfinite(videos).all()


def test_auto_precision_on_cuda():
    expected = "bf16" if torch.cuda.get_device_capability(CUDA) >= (8, 0) else "fp16"
    assert resolve_precision("auto", CUDA) == expected
    assert Pipeline(VideoUNet(preset("tiny")), device=CUDA).precision == expected


@pytest.mark.skipif(torch.cuda.is_available() and native_bf16(CUDA), reason="this GPU computes in bf16 natively")
def test_bf16_is_refused_without_native_support(tmp_path, fake_mnist, tiny_config):
    with pytest.raises(ConfigError, match="bf16"):
        Pipeline(VideoUNet(tiny_config), device=CUDA, precision="bf16")
    with pytest.raises(ConfigError, match="bf16"):
        train(tiny_config, config(tmp_path, fake_mnist, precision="bf16"), progress=False)

