"""Your own drawing as an MNIST digit: any picture of a digit -> (28, 28) uint8, white ink on black.

The preprocessing follows how MNIST itself was made (LeCun et al.): find the ink, crop it to its
bounding box, scale it to fit a 20x20 box keeping the aspect ratio (anti-aliased), and place it in a
28x28 field so that its centre of mass sits in the centre. Polarity is detected first, so dark ink on
light paper and light ink on dark paper both work; an alpha channel that varies is taken as the ink.
"""

from __future__ import annotations

import io
import os
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from .errors import InputError

BOX = 20  # MNIST scales the ink to fit this box ...
SIZE = 28  # ... inside this field
MIN_SIDE = 8  # smaller pictures cannot show a digit
MIN_CONTRAST = 0.15  # ink must differ from the paper by this much (of the full range)
INK_LEVEL = 0.25  # normalised ink above this level counts for the bounding box
WORK_SIDE = 1024  # larger pictures are first averaged down to about this size (a 20x20 box needs no more)


def read_image(source) -> np.ndarray:
    """Read an image file (a path, or its bytes) as an ink map: (H, W) float64 in [0, 1], 1 = ink.

    Raises InputError for a missing file, a folder, a file that is not an image, or a damaged image.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, opened = "the uploaded file", io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"image {path} does not exist")
        if path.is_dir():
            raise InputError(f"{path} is a directory; give an image file (PNG, JPEG, GIF, ...)")
        name, opened = str(path), path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(opened) as image:
                image.load()  # decode now: a truncated file fails here, not later
                return ink_map(image)
    except (UnidentifiedImageError, SyntaxError):
        raise InputError(f"{name} is not an image that can be read (PNG, JPEG, GIF, BMP, WebP, TIFF)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"{name} is too large to be a drawing (over {Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except (OSError, ValueError) as error:  # truncated data, broken chunks, unsupported modes
        raise InputError(f"{name} is a damaged or unsupported image ({error})") from None


def _grey(image: Image.Image) -> np.ndarray:
    """Brightness of a PIL image, (H, W) float64 in [0, 1], whatever its mode and bit depth."""
    if image.mode == "I":  # 16-bit greyscale PNGs open as 32-bit integers
        values = np.asarray(image, dtype=np.float64)
        return values / (65535.0 if values.max(initial=0) > 255 else 255.0)
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        return values / max(values.max(initial=0), 1.0) if np.isfinite(values).all() else np.full(values.shape, np.nan)
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def ink_map(image: Image.Image) -> np.ndarray:
    """Ink of a PIL image: (H, W) float64 in [0, 1]; the paper is whichever level fills the border."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode.startswith("I;16"):
        image = image.convert("I")
    if max(image.size) > WORK_SIDE and image.mode in ("L", "LA", "RGB", "RGBA", "I", "F"):
        image = image.reduce(-(-max(image.size) // WORK_SIDE))  # box average: keeps thin strokes as grey
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        alpha = np.asarray(image.getchannel("A"), dtype=np.float64) / 255.0
        if alpha.min() < 0.5:  # a drawing on a transparent sheet: the alpha channel is the ink
            return alpha
        image = image.convert("RGB" if image.mode in ("RGBA", "RGBa") else "L")
    grey = _grey(image)
    if not np.isfinite(grey).all():
        raise InputError("the image holds NaN or infinite values")
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 1.0 - grey if np.median(border) > 0.5 else grey


def digit_from_ink(ink) -> np.ndarray:
    """An ink map (H, W) in [0, 1] (1 = ink) -> an MNIST-style digit (28, 28) uint8, white ink on black.

    Normalises the paper level and contrast, crops to the ink's bounding box, fits it into a 20x20
    box (anti-aliased, aspect ratio kept) and centres its centre of mass in the 28x28 field.
    """
    ink = np.asarray(ink, dtype=np.float64)
    if ink.ndim != 2:
        raise InputError(f"an ink map must be a 2-D (H, W) array, got shape {ink.shape}")
    if min(ink.shape) < MIN_SIDE:
        raise InputError(f"the image is only {ink.shape[1]}x{ink.shape[0]} pixels; "
                         f"draw the digit on at least {MIN_SIDE}x{MIN_SIDE}")
    if not np.isfinite(ink).all():
        raise InputError("the image holds NaN or infinite values")
    paper = np.median(ink)
    contrast = ink.max() - paper
    if contrast < MIN_CONTRAST:
        raise InputError("the image is blank: no ink stands out from the paper (is it all one colour?)")
    ink = np.clip((ink - paper) / contrast, 0.0, 1.0)
    rows, cols = np.nonzero(ink > INK_LEVEL)
    ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]

    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL sizes are (width, height)
    picture = Image.fromarray(ink.astype(np.float32))  # mode F
    # reducing_gap: first shrink by whole factors (box filter), then Lanczos: fast on 4000x4000 drawings
    small = np.asarray(picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), dtype=np.float64)
    small = np.clip(small, 0.0, None)
    small = small / small.max()  # thin pen strokes on a large canvas fade when shrunk: restore full ink

    field = np.zeros((SIZE, SIZE))
    top, left = (SIZE - size[1]) // 2, (SIZE - size[0]) // 2
    field[top:top + size[1], left:left + size[0]] = small
    centre_row, centre_col = ndimage.center_of_mass(field)
    # Shift the centre of mass to the middle, but never push ink out of the field.
    shift_row = int(np.clip(round((SIZE - 1) / 2 - centre_row), -top, SIZE - top - size[1]))
    shift_col = int(np.clip(round((SIZE - 1) / 2 - centre_col), -left, SIZE - left - size[0]))
    field = np.roll(field, (shift_row, shift_col), axis=(0, 1))
    return np.round(field * 255).astype(np.uint8)


def digit_from_image(source) -> np.ndarray:
    """Any drawing of a digit -> (28, 28) uint8 MNIST-style digit, white ink on black.

    Args:
        source: a path to an image file, its bytes (e.g. an upload), a PIL image, or an array: (H, W) greyscale, (H, W, 3) RGB or
            (H, W, 4) RGBA, uint8 0..255, uint16 0..65535 or float 0..1. Either polarity.
    Raises:
        InputError naming the problem (missing or damaged file, blank or tiny image, bad array, ...).
    """
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        return digit_from_ink(read_image(source))
    if isinstance(source, Image.Image):
        return digit_from_ink(ink_map(source))
    return digit_from_ink(ink_map(_image_from_array(source)))


def _image_from_array(array) -> Image.Image:
    """A numeric array (H, W), (H, W, 3) or (H, W, 4) -> PIL image, validating shape, dtype and range."""
    try:
        array = np.asarray(array)
    except Exception:
        raise InputError(f"cannot read a {type(array).__name__} as an image array") from None
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise InputError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise InputError(f"an image array must hold real numbers, got dtype {array.dtype}")
    if array.size == 0:
        raise InputError(f"the image array is empty (shape {array.shape})")
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise InputError("the image array holds NaN or infinite values")
    if np.issubdtype(array.dtype, np.floating):
        top = 1.0
    else:
        top = 65535.0 if array.dtype.itemsize >= 2 and values.max() > 255 else 255.0
    if values.min() < 0 or values.max() > top:
        raise InputError(f"image values must lie in 0..{top:g} for dtype {array.dtype}, "
                         f"got {values.min():g}..{values.max():g}")
    scaled = np.round(values / top * 255).astype(np.uint8)
    if scaled.ndim == 3 and scaled.shape[2] == 1:
        scaled = scaled[..., 0]
    return Image.fromarray(scaled)  # uint8 (H, W) -> L, (H, W, 3) -> RGB, (H, W, 4) -> RGBA


def example_drawings() -> list[Path]:
    """The example drawings shipped with the package (PNG and JPEG, various sizes, colours and polarities)."""
    folder = resources.files("tinydiff") / "examples"
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith((".png", ".jpg")))
