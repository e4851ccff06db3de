"""Where the model runs and in what precision: the one place that decides both.

Precision names: "fp32" (the default on a CPU, and the only one there), "bf16" (the default on a CUDA
GPU that computes in bfloat16 natively: compute capability 8.0, Ampere, or newer) and "fp16" (the
default on older GPUs such as Colab's T4, with a gradient scaler in training). "auto" picks by device.
In bf16 and fp16 the convolutions and matrix products run in half precision under autocast; the
norms' statistics, the attention softmax, the loss and the sampler's arithmetic stay in fp32. fp32 on a
GPU is true fp32 (TF32 is switched off while the model runs).

What holds in which precision (tested in tests/test_device.py and, on a GPU, tests/test_cuda.py):
- same seed, same videos: in every precision, on one machine. The sampler's noise comes from a CPU
  generator, so a CPU and a GPU start from the same noise: in fp32 their videos agree to within float
  error; in bf16 or fp16 they differ by a few pixels (BENCHMARKS.md);
- exact resume (a run stopped and resumed equals the run that never stopped, bit for bit): fp32 on
  a CPU; on a GPU the resumed run draws the same data, timesteps and noise, but CUDA's backward
  kernels add in a varying order, so the weights agree to within float error, in any precision.
"""

from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """"auto" (or None): the CUDA GPU when torch sees one, else the CPU; otherwise the device named."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for, but torch sees no CUDA GPU; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} does not exist: torch sees {torch.cuda.device_count()} GPU(s)")
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether this device computes in bfloat16 natively (CUDA compute capability 8.0 or newer)."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def check_precision(name: str) -> None:
    """Refuse a precision name that is not one of PRECISIONS."""
    if name not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}; got {name!r}")


def resolve_precision(name: str, device: torch.device) -> str:
    """The precision to run in on `device`: "fp32", "bf16" or "fp16" (see the module's docstring)."""
    check_precision(name)
    if name == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if native_bf16(device) else "fp16"
    if name != "fp32" and device.type != "cuda":
        raise ConfigError(f"precision {name} needs a CUDA GPU; on the {device.type} use fp32")
    if name == "bf16" and not native_bf16(device):
        major, minor = torch.cuda.get_device_capability(device)
        raise ConfigError(f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor}) has no "
                          "native bf16; use fp16 or fp32")
    return name


def autocast(device: torch.device, precision: str):
    """The context a model runs in at a resolved precision: half-precision matmuls and convolutions
    under autocast for bf16 and fp16; for fp32 on a GPU, true fp32 (TF32 off for the duration)."""
    if precision != "fp32":
        return torch.autocast(device.type, dtype=DTYPES[precision])
    return no_tf32(device)


@contextlib.contextmanager
def no_tf32(device: torch.device):
    """fp32 means fp32: PyTorch lets cuDNN convolutions (and, if asked, matmuls) round their inputs to
    TF32's 10-bit mantissa on Ampere and newer, which would make "fp32" on a GPU disagree with a CPU.
    Switches TF32 off while the context lasts (forward and backward passes alike); a no-op off CUDA."""
    if device.type != "cuda":
        yield
        return
    # torch >= 2.9 has per-backend fp32_precision; reading the older allow_tf32 flags after a user has
    # set the new ones raises, so the new ones are used where they exist.
    new = (torch.backends.cuda.matmul, getattr(torch.backends.cudnn, "conv", None))
    if all(hasattr(switch, "fp32_precision") for switch in new):
        switches, name, off = new, "fp32_precision", "ieee"
    else:
        switches, name, off = (torch.backends.cuda.matmul, torch.backends.cudnn), "allow_tf32", False
    saved = [getattr(switch, name) for switch in switches]
    for switch in switches:
        setattr(switch, name, off)
    try:
        yield
    finally:
        for switch, value in zip(switches, saved):
            setattr(switch, name, value)


def add_device_options(parser) -> None:
    """--device and --precision, as every command that runs a model declares them (an argparse parser)."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: auto, CUDA if available)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto (fp32 on a CPU; bf16, else fp16, on a GPU), fp32, bf16 or fp16 (default: auto)")
