"""The book's sampler in the browser (book/_static/tinydiff.js) against the Python package.

Headless Chromium runs the page from disk (file://, so the base64 forms of the assets are what load) with
the shipped networks exported to ONNX and onnxruntime-web. Given the Python pipeline's own initial noise,
its DDIM videos must match the pipeline's (frame IoU >= 0.99). Without Chromium these tests skip, unless
$TINYDIFF_REQUIRE_BROWSER is set (CI sets it, and .ci/run installs Chromium).
"""

import base64
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tinydiff import ConfigError, pretrained
from tinydiff.classifier import pretrained_classifier
from tinydiff.data import load_mnist, writing_videos
from tinydiff.metrics import frame_iou
from tinydiff.schedule import NoiseSchedule
from tinydiff.sampling import timesteps
from tinydiff.web import (CARRIED, NETWORKS, _runtime_file, bare_page, browser_sample, call, python_noise,
                          write_assets)

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "book" / "_static"
VENDOR = ROOT / "book" / "vendor" / "onnxruntime-web"
SHAPE = (4, 1, 15, 28, 28)


@pytest.fixture(scope="module")
def page_assets(tmp_path_factory):
    """A folder holding _static/ with the assets written (the networks exported)."""
    folder = tmp_path_factory.mktemp("web")
    shutil.copytree(STATIC, folder / "_static")
    write_assets(folder / "_static" / "tinydiff", VENDOR, folder / "cache")
    return folder


@pytest.fixture(scope="module")
def page(page_assets, browser):
    """The browser on a page opened from disk that loads the book's scripts."""
    browser.get(bare_page(page_assets, page_assets / "_static").as_uri())
    return browser


def test_the_runtime_files_are_checked_against_their_recorded_hashes(tmp_path):
    vendor = tmp_path / "vendor"
    shutil.copytree(VENDOR, vendor)
    (vendor / "ort.wasm.min.js").write_text("// not onnxruntime-web")
    with pytest.raises(ConfigError, match="is not onnxruntime-web 1.31.1's ort.wasm.min.js"):
        write_assets(tmp_path / "out", vendor, tmp_path / "cache")
    (vendor / "ort-wasm-simd-threaded.mjs").unlink()
    with pytest.raises(ConfigError, match="ort-wasm-simd-threaded.mjs is missing"):
        _runtime_file(vendor, "ort-wasm-simd-threaded.mjs")


def test_each_binary_has_a_script_form_for_pages_opened_from_disk(page_assets):
    folder = page_assets / "_static" / "tinydiff"
    for name in [*(f"{n}.onnx" for n in NETWORKS), *CARRIED]:
        text = (folder / f"{name}.js").read_text()
        prefix = f'tinydiff._carry("{name}", "'
        assert text.startswith(prefix)
        assert base64.b64decode(text[len(prefix):].rstrip().removesuffix('");')) == (folder / name).read_bytes()


def test_schedule_and_timesteps_match_python(page):
    for name in ("linear", "cosine"):
        schedule = NoiseSchedule(name)
        ts = [0, 1, 250, 500, 998, 999]
        got = call(page, "args[1].map((t) => [tinydiff.schedule(args[0]).sa(t), tinydiff.schedule(args[0]).sb(t)])",
                   name, ts)
        for t, (sa, sb) in zip(ts, got):
            assert math.isclose(sa, schedule.alphas_cumprod[t].sqrt().item(), rel_tol=1e-12)
            assert math.isclose(sb, (1 - schedule.alphas_cumprod[t]).sqrt().item(), rel_tol=1e-12)
    for steps in (1, 7, 10, 20, 240, 304, 1000):  # 240 and 304: halves that float rounding would get wrong
        assert call(page, "tinydiff.timesteps(1000, args[0])", steps) == timesteps(1000, steps)


def test_writing_transform_matches_python(page):
    digits = load_mnist("heldout")[0][:20]  # (20, 28, 28) uint8
    expected = writing_videos(digits)  # (20, 15, 28, 28)
    got = call(page, "args[0].map((d) => Array.from(tinydiff.widgets.writingVideo(d.map((v) => v / 255))))",
               digits.reshape(20, -1).tolist())
    assert torch.equal(torch.tensor(got).view(20, 15, 28, 28), expected)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++2m"])
def test_writer_matches_pipeline_from_the_same_noise(page, sampler):
    writer = pretrained("writer", device="cpu")
    expected = writer.generate(4, digit=7, guidance=2.0, steps=10, sampler=sampler, seed=0)
    got = browser_sample(page, python_noise(SHAPE, 0), model="writer", n=4, digit=7, guidance=2.0, steps=10,
                         sampler=sampler)
    assert got.shape == expected.shape
    assert frame_iou(got, expected).min() >= 0.99


def test_animator_matches_pipeline_from_the_same_noise(page):
    digits = load_mnist("heldout")[0][:4]
    expected = pretrained("animator", device="cpu").animate(digits, steps=10, seed=3)
    images = [(d.flatten().float() / 255).tolist() for d in digits]
    got = browser_sample(page, python_noise(SHAPE, 3), model="animator", n=4, image=images, steps=10)
    assert frame_iou(got, expected).min() >= 0.99


def test_cascade_matches_pipeline_from_the_same_noise(page):
    expected = pretrained("cascade", device="cpu").generate(4, digit=3, steps=20, seed=5)
    noise = {"draw": python_noise((4, 1, 1, 28, 28), 5), "write": python_noise(SHAPE, 5)}  # each stage from the seed
    got = browser_sample(page, noise, model="cascade", n=4, digit=3, steps=20)
    assert frame_iou(got, expected).min() >= 0.99


def test_cascade_writes_the_digit_asked_for(page):
    classifier = pretrained_classifier()
    asked = [d for d in range(10) for _ in range(2)]
    videos = browser_sample(page, model="cascade", n=len(asked), digit=asked, steps=20, seed=1)
    read = classifier.probabilities(videos[:, -1]).argmax(dim=1)
    assert (read == torch.tensor(asked)).float().mean() >= 0.8


@pytest.mark.parametrize("request_, message", [
    ({"model": "animator", "n": 2}, "trained only on the finished digit, so it cannot be asked for a video from "
                                    "nothing"),
    ({"model": "animator", "n": 1, "image": [0.0] * 784, "guidance": 2}, r"guidance 2 \(it needs videos from nothing\)"),
    ({"model": "animator", "n": 2, "image": [[0.0] * 784] * 3}, "give one digit image, or n = 2 of them"),
    ({"model": "cascade", "image": [0.0] * 784}, "the cascade draws its own digit"),
    ({"model": "writer", "seed": "x"}, "seed must be a non-negative integer"),
    ({"model": "writer", "n": 0}, "n must be an integer"),
    ({"model": "writer", "sampler": "euler"}, "sampler must be one of"),
    ({"model": "writer", "digit": 12}, "digit must be an integer 0-9"),
    ({"model": "writer", "guidance": 3}, "guidance needs something to guide toward"),
    ({"model": "nothing"}, "no network called nothing"),
])
def test_bad_requests_are_refused_with_a_message(page, request_, message):
    with pytest.raises(RuntimeError, match=message):
        call(page, "tinydiff.sample(args[0])", request_)


def test_every_page_network_runs_in_the_browser(page):
    """Each network the pages use loads in onnxruntime-web and gives the PyTorch network's output."""
    from tinydiff.onnx_export import example_inputs, load_network
    for name in NETWORKS:
        model = load_network(name)
        inputs = example_inputs(model.cfg, batch=2)
        with torch.no_grad():
            expected = model(inputs["x"], inputs["t"], inputs.get("condition"), inputs.get("label"))
        feeds = {key: value.flatten().tolist() for key, value in inputs.items()}
        shapes = {key: list(value.shape) for key, value in inputs.items()}
        got = call(page, """(async () => {
            const ort = await tinydiff.loadRuntime();
            const session = await tinydiff._session(args[0]);
            const feeds = {};
            for (const [key, values] of Object.entries(args[1])) {
                feeds[key] = key === 't' || key === 'label'
                    ? new ort.Tensor('int64', BigInt64Array.from(values, BigInt), args[2][key])
                    : new ort.Tensor('float32', Float32Array.from(values), args[2][key]);
            }
            return Array.from((await session.run(feeds)).prediction.data);
        })()""", name, feeds, shapes)
        assert np.abs(np.array(got) - expected.flatten().numpy()).max() <= 1e-4, name
