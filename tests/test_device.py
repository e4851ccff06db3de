"""Device and precision choice (tinydiff.device), the distributed set-up, and sampling seeds: the parts of
the CUDA paths that can be checked on a CPU by standing in for what torch reports. The CUDA runs
themselves are in test_cuda.py."""

from __future__ import annotations

import pytest
import torch

import tinydiff.train as train_module
from tinydiff import ConfigError, Pipeline, VideoUNet, preset
from tinydiff.checkpoint import load_checkpoint
from tinydiff.device import resolve_device, resolve_precision
from tinydiff.train import TrainConfig, train


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch reports CUDA GPUs (one by default) of the given compute capability (nothing runs on them)."""

    def install(capability: tuple[int, int], count: int = 1):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")

    return install


def test_auto_device_is_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "mps", ""])
def test_unknown_devices_are_refused(name):
    with pytest.raises(ConfigError):
        resolve_device(name)


def test_missing_gpu_index_is_refused(fake_gpu):
    fake_gpu((8, 0))
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="1 GPU"):
        resolve_device("cuda:3")


def test_cpu_precision_is_fp32_only():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("fp32", cpu) == "fp32"
    for half in ("bf16", "fp16"):
        with pytest.raises(ConfigError, match="needs a CUDA GPU"):
            resolve_precision(half, cpu)
    with pytest.raises(ConfigError, match="precision must be one of"):
        resolve_precision("fp64", cpu)


@pytest.mark.parametrize("capability, auto", [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_gpu_precision_follows_native_bf16(fake_gpu, capability, auto):
    """Turing (7.5, Colab's T4) has no bf16 units: auto means fp16 there, bf16 from Ampere (8.0) on."""
    fake_gpu(capability)
    gpu = torch.device("cuda")
    assert resolve_precision("auto", gpu) == auto
    assert resolve_precision("fp16", gpu) == "fp16" and resolve_precision("fp32", gpu) == "fp32"
    if auto == "fp16":
        with pytest.raises(ConfigError, match=r"T4 \(compute capability 7.5\) has no native bf16"):
            resolve_precision("bf16", gpu)


def test_torchrun_on_a_gpu_host_with_device_cpu_uses_gloo(fake_gpu, monkeypatch):
    """The backend follows the training device, not whether the host has a GPU."""
    fake_gpu((8, 0))
    backends = []
    monkeypatch.setattr(train_module.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(train_module.dist, "init_process_group", lambda backend: backends.append(backend))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert train_module._distributed(torch.device("cpu")) == (1, 2, torch.device("cpu"))
    assert backends == ["gloo"]


def test_torchrun_on_gpus_gives_each_process_its_own_gpu(fake_gpu, monkeypatch):
    fake_gpu((8, 0), count=2)
    backends, current = [], []
    monkeypatch.setattr(train_module.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(train_module.dist, "init_process_group", lambda backend: backends.append(backend))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(device))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert train_module._distributed(torch.device("cuda")) == (1, 2, torch.device("cuda", 1))
    assert backends == ["nccl"] and current == [torch.device("cuda", 1)]


def test_more_processes_than_gpus_is_a_clear_error(fake_gpu, monkeypatch):
    fake_gpu((8, 0), count=1)
    monkeypatch.setattr(train_module.dist, "init_process_group", lambda backend: pytest.fail("started a group"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ConfigError, match="process 1 has no GPU of its own: torch sees 1"):
        train_module._distributed(torch.device("cuda"))


def test_one_process_starts_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(train_module.dist, "init_process_group", lambda backend: pytest.fail("started a group"))
    assert train_module._distributed(torch.device("cpu")) == (0, 1, torch.device("cpu"))


def test_precision_setting_is_validated_and_recorded(fake_mnist, tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="half")
    cfg = TrainConfig(out_dir=str(tmp_path), steps=1, batch_size=4, data_root=str(fake_mnist), device="cpu")
    train(tiny_config, cfg, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["precision"] == "fp32" and state["scaler"] is None
    assert state["rng"].device.type == "cpu" and state["rng"].dtype == torch.uint8


def test_half_precision_on_the_cpu_is_refused_before_training(fake_mnist, tiny_config, tmp_path):
    cfg = TrainConfig(out_dir=str(tmp_path), steps=1, batch_size=4, data_root=str(fake_mnist), device="cpu",
                      precision="bf16")
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        train(tiny_config, cfg, progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        Pipeline(VideoUNet(preset("tiny")), device="cpu", precision="fp16")


def test_seed_none_leaves_the_global_rng_alone():
    """generate(seed=None) must not re-seed the caller's torch.manual_seed stream (torch.seed() did)."""
    pipe = Pipeline(VideoUNet(preset("tiny")), device="cpu")
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    first = pipe.generate(1, steps=2, seed=None)
    second = pipe.generate(1, steps=2, seed=None)
    assert torch.equal(torch.rand(4), expected)
    assert not torch.equal(first, second), "seed=None draws fresh noise each time"


def test_resuming_in_another_precision_warns(fake_mnist, tiny_config, tmp_path):
    """A run continued in another precision goes on, but says that it is no longer the same run; a
    checkpoint from before precisions were recorded (no key) continues silently."""
    import warnings

    from tinydiff.checkpoint import save_checkpoint

    cfg = TrainConfig(out_dir=str(tmp_path), steps=1, batch_size=4, data_root=str(fake_mnist), device="cpu")
    train(tiny_config, cfg, progress=False)
    path = tmp_path / "checkpoint.pt"
    state = load_checkpoint(path)
    save_checkpoint({**state, "precision": "bf16"}, path)
    longer = TrainConfig(**{**cfg.__dict__, "steps": 2})
    with pytest.warns(UserWarning, match="trained in bf16 and continues in fp32"):
        train(tiny_config, longer, progress=False)
    state = load_checkpoint(path)
    del state["precision"]
    save_checkpoint(state, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(tiny_config, TrainConfig(**{**cfg.__dict__, "steps": 3}), progress=False)


def test_fp32_on_a_gpu_switches_tf32_off_and_back():
    """The switches are plain settings, so this runs without a GPU: off inside, as they were after."""
    from tinydiff.device import no_tf32

    switches = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    before = [s.fp32_precision for s in switches]
    with no_tf32(torch.device("cuda")):
        assert [s.fp32_precision for s in switches] == ["ieee", "ieee"]
    assert [s.fp32_precision for s in switches] == before
    with no_tf32(torch.device("cpu")):
        assert [s.fp32_precision for s in switches] == before
