"""ONNX export: every shipped network, run by onnxruntime, gives what PyTorch gives; bad requests are refused."""

import numpy as np
import onnxruntime
import pytest
import torch

from tinydiff.cli import main
from tinydiff.onnx_export import example_inputs, export_onnx, load_network
from tinydiff.registry import MODELS

NETWORKS = [name for name, model in MODELS.items() if model.has_weights and model.kind != "classifier"]


@pytest.mark.parametrize("name", NETWORKS)
def test_every_shipped_network_runs_in_onnxruntime_as_in_pytorch(name, tmp_path):
    torch.manual_seed(0)
    model = load_network(name).cpu().eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cfg = model.cfg
    expected = ["x", "t"] + ["condition"] * (cfg.conditional or cfg.known_frames) + ["label"] * cfg.labels
    assert [i.name for i in session.get_inputs()] == expected
    assert [o.name for o in session.get_outputs()] == ["prediction"]
    for batch in (1, 3):  # the batch size is free, whatever the batch it was traced with
        inputs = example_inputs(cfg, batch=batch, seed=batch)
        with torch.no_grad():
            reference = model(inputs["x"], inputs["t"], inputs.get("condition"), inputs.get("label")).numpy()
        (output,) = session.run(None, {key: value.numpy() for key, value in inputs.items()})
        assert output.shape == (batch, 1, cfg.frames, cfg.size, cfg.size)
        assert np.abs(output - reference).max() <= 1e-4


def test_the_command_exports_a_shipped_network(tmp_path, capsys):
    out = tmp_path / "animator.onnx"
    assert main(["export", "animator", str(out)]) == 0
    assert "inputs x, t, condition, label" in capsys.readouterr().out
    assert [i.name for i in onnxruntime.InferenceSession(str(out)).get_inputs()] == ["x", "t", "condition", "label"]


@pytest.mark.parametrize("source, output, message", [
    ("cascade", "c.onnx", "export its stages one by one: digits-labelled, animator"),
    ("classifier", "c.onnx", "not a denoiser"),
    ("banana", "b.onnx", "neither a checkpoint file nor a shipped network"),
    ("writer", "writer.pt", "not a checkpoint file"),
    ("writer", "no-such-folder/writer.onnx", "does not exist"),
])
def test_bad_exports_end_in_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, source, output, message):
    monkeypatch.chdir(tmp_path)
    assert main(["export", source, output]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
