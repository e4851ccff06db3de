"""Your own drawing -> an MNIST-style digit, and animating it from Python, the command line and a widget."""

import datetime
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from tinydiff import InputError, Pipeline, VideoUNet, preset
from tinydiff.checkpoint import save_checkpoint
from tinydiff.cli import main
from tinydiff.drawing import digit_from_image, example_drawings
from tinydiff.widgets import drawing_animator, uploaded_files


def seven(size=(400, 400), ink=(20, 20, 60), paper=(250, 245, 230), mode="RGB", width=None) -> Image.Image:
    """A "7" drawn as two pen strokes, scaled to the canvas."""
    image = Image.new(mode, size, paper)
    w, h = size
    pen = ImageDraw.Draw(image)
    pen.line([(0.2 * w, 0.15 * h), (0.8 * w, 0.15 * h), (0.4 * w, 0.85 * h)], fill=ink, width=width or w // 12)
    return image


def binary(digit) -> np.ndarray:
    return np.asarray(digit) > 127


def iou(a, b) -> float:
    return (binary(a) & binary(b)).sum() / (binary(a) | binary(b)).sum()


def test_hand_computed_square():
    # A 40x40 square of ink on 100x100: crop -> 40x40 -> 20x20 (all ink) -> centred: rows and columns 4..23.
    image = np.zeros((100, 100), dtype=np.uint8)
    image[10:50, 30:70] = 255
    expected = np.zeros((28, 28), dtype=np.uint8)
    expected[4:24, 4:24] = 255
    np.testing.assert_array_equal(digit_from_image(image), expected)


def test_mnist_geometry():
    digit = digit_from_image(seven())
    assert digit.shape == (28, 28) and digit.dtype == np.uint8 and digit.max() == 255
    rows, cols = np.nonzero(digit)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21  # fits the 20x20 box (+1 for anti-aliasing)
    centre = ndimage.center_of_mass(digit.astype(float))
    assert abs(centre[0] - 13.5) <= 0.6 and abs(centre[1] - 13.5) <= 0.6


def test_aspect_ratio_is_kept():
    image = np.zeros((300, 300), dtype=np.uint8)
    image[50:250, 100:200] = 255  # 200 tall, 100 wide
    rows, cols = np.nonzero(digit_from_image(image) > 127)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (20, 10)


def test_polarity_colour_and_alpha_do_not_matter():
    reference = digit_from_image(seven())
    light_on_dark = digit_from_image(seven(ink=(240, 240, 230), paper=(30, 50, 40)))
    greyscale = digit_from_image(seven(ink=30, paper=235, mode="L"))
    transparent = digit_from_image(seven(ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA"))
    for other in (light_on_dark, greyscale, transparent):
        assert iou(reference, other) > 0.95


def test_files_of_any_size_and_depth(tmp_path):
    reference = digit_from_image(seven())
    seven().save(tmp_path / "seven.jpg", quality=85)
    assert iou(reference, digit_from_image(tmp_path / "seven.jpg")) > 0.9
    seven().convert("P").save(tmp_path / "seven.gif")
    assert iou(reference, digit_from_image(tmp_path / "seven.gif")) > 0.9
    big = seven(size=(4000, 4000))
    big.save(tmp_path / "big.png")
    assert iou(reference, digit_from_image(tmp_path / "big.png")) > 0.9
    deep = (np.asarray(seven().convert("L"), dtype=np.uint16) * 257)  # 16-bit greyscale
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert iou(reference, digit_from_image(tmp_path / "deep.png")) > 0.95


def test_arrays_of_other_dtypes():
    grey = np.asarray(seven().convert("L"))
    reference = digit_from_image(grey)
    np.testing.assert_array_equal(digit_from_image(grey.astype(np.float32) / 255), reference)
    np.testing.assert_array_equal(digit_from_image(grey.astype(np.uint16) * 257), reference)
    assert iou(reference, digit_from_image(grey < 128)) > 0.95


def test_shipped_example_drawings_become_digits():
    examples = example_drawings()
    assert len(examples) >= 4 and {p.suffix for p in examples} >= {".png", ".jpg"}
    for path in examples:
        digit = digit_from_image(path)
        assert 40 <= (digit > 127).sum() <= 250, path.name  # a digit's worth of ink (MNIST: ~100-200 pixels)


# --- bad input: every case is one clear InputError --------------------------------------------------

def _png_bytes(image: Image.Image, tmp_path) -> bytes:
    image.save(tmp_path / "ok.png")
    return (tmp_path / "ok.png").read_bytes()


BAD_FILES = {
    "missing file": (lambda d: d / "nope.png", "does not exist"),
    "a directory": (lambda d: d, "is a directory"),
    "not an image": (lambda d: _write(d / "notes.png", b"these are my notes, not a picture\n"), "not an image"),
    "empty file": (lambda d: _write(d / "empty.png", b""), "not an image"),
    "truncated png": (lambda d: _write(d / "cut.png", _png_bytes(seven(), d)[:700]), "damaged"),
    "corrupt png data": (lambda d: _write(d / "bad.png", _corrupt(_png_bytes(seven(), d))), "damaged"),
    "all white": (lambda d: _save(Image.new("RGB", (200, 200), "white"), d / "white.png"), "blank"),
    "all black": (lambda d: _save(Image.new("L", (200, 200), 0), d / "black.png"), "blank"),
    "fully transparent": (lambda d: _save(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), d / "clear.png"), "blank"),
    "1x1 pixel": (lambda d: _save(Image.new("L", (1, 1), 255), d / "dot.png"), "only 1x1 pixels"),
}


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _save(image, path):
    image.save(path)
    return path


def _corrupt(data: bytes) -> bytes:
    middle = len(data) // 2  # flip bytes inside the compressed image data: the CRC check fails
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 16]) + data[middle + 16:]


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_image_files(case, tmp_path):
    make, message = BAD_FILES[case]
    with pytest.raises(InputError, match=message) as info:
        digit_from_image(make(tmp_path))
    assert "\n" not in str(info.value)


BAD_ARRAYS = {
    "nan": (np.full((30, 30), np.nan), "NaN or infinite"),
    "inf": (np.where(np.eye(30) > 0, np.inf, 0.0), "NaN or infinite"),
    "wrong shape": (np.zeros((2, 30, 30, 3)), "shape"),
    "wrong channels": (np.zeros((30, 30, 5), dtype=np.uint8), "shape"),
    "text": (np.array([["a"] * 30] * 30), "real numbers"),
    "complex": (np.zeros((30, 30), dtype=complex), "real numbers"),
    "negative": (np.full((30, 30), -5, dtype=np.int16), "0..255"),
    "above 65535": (np.full((30, 30), 70000, dtype=np.int32), "0..65535"),
    "float above 1": (np.full((30, 30), 200.0), "0..1"),
    "empty": (np.zeros((0, 0), dtype=np.uint8), "empty"),
}


@pytest.mark.parametrize("case", BAD_ARRAYS, ids=list(BAD_ARRAYS))
def test_bad_image_arrays(case):
    array, message = BAD_ARRAYS[case]
    with pytest.raises(InputError, match=message):
        digit_from_image(array)


# --- animating drawings ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    model = VideoUNet(preset("tiny"))
    save_checkpoint({"model_config": model.cfg.to_dict(), "model": model.state_dict(), "ema": None}, path)
    return path


def test_animate_image_from_python(tiny_checkpoint):
    pipe = Pipeline.from_checkpoint(tiny_checkpoint, device="cpu")
    examples = example_drawings()[:2]
    videos = pipe.animate_image(examples, steps=2, seed=0)
    assert videos.shape == (2, 15, 28, 28)
    digits = np.stack([digit_from_image(p) for p in examples])
    torch.testing.assert_close(videos, pipe.animate(digits, steps=2, seed=0), rtol=0, atol=0)
    assert pipe.animate_image(seven(), steps=2, seed=0).shape == (1, 15, 28, 28)
    with pytest.raises(InputError, match="blank"):  # checked before any sampling
        pipe.animate_image([examples[0], np.zeros((40, 40))], steps=2)


def test_animate_command(tiny_checkpoint, tmp_path, capsys):
    examples = [str(p) for p in example_drawings()[:2]]
    out = tmp_path / "both.gif"
    assert main(["animate", *examples, "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--steps", "2",
                 "--interpolate", "2", "--side-by-side", "--scale", "2", "--quiet", "--device", "cpu"]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 14 * 3 + 1  # 15 frames, 2 blended frames between each pair
        assert gif.size == ((2 * (2 * 28 + 1 + 1) + 1) * 2, (28 + 2) * 2)  # two input|video pairs in a row
    folder = tmp_path / "each"
    assert main(["animate", *examples, examples[0], "-o", str(folder), "--checkpoint", str(tiny_checkpoint),
                 "--steps", "2", "--quiet", "--device", "cpu"]) == 0
    names = sorted(p.name for p in folder.iterdir())
    stem = example_drawings()[0].stem
    assert len(names) == 3 and f"{stem}.gif" in names and f"{stem}-2.gif" in names
    assert capsys.readouterr().out.count("wrote") == 4


def test_drawings_go_to_the_animator_unless_told_otherwise(tmp_path, capsys, monkeypatch):
    from tinydiff.cli import build_parser

    assert build_parser().parse_args(["animate", "a.png"]).pretrained == "animator"
    assert build_parser().parse_args(["generate"]).pretrained == "cascade"
    # The animator never trained without its drawing, so it refuses guidance, and says which model takes it.
    monkeypatch.chdir(tmp_path)
    seven().save("ok.png")
    assert main(["animate", "ok.png", "--guidance", "2", "--steps", "1", "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "cannot be asked for guidance 2" in err and "pretrained('writer')" in err and err.count("\n") == 1
    assert not list(tmp_path.glob("*.gif"))


CLI_ERRORS = {
    "missing image": (["nope.png"], [], "does not exist"),
    "blank image": (["white.png"], [], "blank"),
    "bad output type": (["ok.png"], ["-o", "out.txt"], "must end in .gif or .mp4"),
    "bad interpolate": (["ok.png"], ["--interpolate", "-1"], "--interpolate"),
    "bad steps": (["ok.png"], ["--steps", "0"], "steps must be an integer"),
    "unknown pretrained": (["ok.png"], ["--pretrained", "painter"], "unknown pretrained model"),
    "missing checkpoint": (["ok.png"], ["--checkpoint", "none.pt"], "does not exist"),
}


@pytest.mark.parametrize("case", CLI_ERRORS, ids=list(CLI_ERRORS))
def test_animate_command_errors(case, tiny_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seven().save("ok.png")
    Image.new("L", (50, 50), 255).save("white.png")
    images, options, message = CLI_ERRORS[case]
    if "--checkpoint" not in options and "--pretrained" not in options:
        options = [*options, "--checkpoint", str(tiny_checkpoint)]
    assert main(["animate", *images, *options, "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinydiff: error:") and message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("*.gif")), "nothing is written when the input is bad"


def test_mp4_needs_ffmpeg_or_is_written(tiny_checkpoint, tmp_path, capsys):
    import importlib.util

    code = main(["animate", str(example_drawings()[0]), "-o", str(tmp_path / "a.mp4"),
                 "--checkpoint", str(tiny_checkpoint), "--steps", "2", "--quiet", "--device", "cpu"])
    if importlib.util.find_spec("imageio_ffmpeg") is None:
        assert code == 2 and "imageio-ffmpeg" in capsys.readouterr().err
    else:
        assert code == 0 and (tmp_path / "a.mp4").stat().st_size > 0


def test_uploaded_files_from_either_ipywidgets_generation():
    data = b"\x89PNG..."
    assert uploaded_files({"a.png": {"content": data, "metadata": {"name": "a.png"}}}) == [("a.png", data)]
    assert uploaded_files(({"name": "a.png", "content": memoryview(data), "size": 7},)) == [("a.png", data)]
    assert uploaded_files(()) == []


def test_drawing_animator_widget(tiny_checkpoint):
    pipe = Pipeline.from_checkpoint(tiny_checkpoint, device="cpu")
    box = drawing_animator(pipe, steps=2)
    (choice, upload), (digit_view, video_view), status = box.children[0].children, box.children[1].children, \
        box.children[2]
    assert video_view.value[:6] == b"GIF89a" and digit_view.value[:4] == b"\x89PNG"
    first = video_view.value
    choice.value = choice.options[-1]  # another example drawing
    assert video_view.value[:6] == b"GIF89a" and video_view.value != first
    for view in (digit_view, video_view):  # shown at the picture's own width (the GIF has a border)
        assert view.layout.width == f"{Image.open(io.BytesIO(view.value)).size[0]}px"
    assert "writing video" in status.value
    blank = io.BytesIO()
    Image.new("L", (40, 40), 255).save(blank, format="PNG")
    upload.value = ({"name": "blank.png", "type": "image/png", "size": len(blank.getvalue()),
                     "last_modified": datetime.datetime.now(datetime.timezone.utc),
                     "content": memoryview(blank.getvalue())},)
    assert "blank.png" in status.value and "blank" in status.value.split("</b>")[-1]
    for view in (digit_view, video_view):
        assert not np.asarray(Image.open(io.BytesIO(view.value)).convert("L")).any(), \
            "the previous drawing's pictures are cleared beside the error"
