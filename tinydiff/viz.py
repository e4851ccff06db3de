"""Pictures of videos: grids, smooth interpolation, side-by-side views, GIF and MP4 files, and reading a video back."""

from __future__ import annotations

import importlib.util
import io
import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import InputError

FORMATS = (".gif", ".mp4")


def _videos(videos) -> torch.Tensor:
    videos = torch.as_tensor(videos).float()
    if videos.dim() != 4 or videos.shape[0] == 0 or videos.shape[1] == 0:
        raise InputError(f"videos must be shaped (N, T, H, W) with N, T >= 1, got {tuple(videos.shape)}")
    return videos


def interpolate(videos, between: int) -> torch.Tensor:
    """Smooth motion: `between` linearly blended frames between each pair of frames.

    (N, T, H, W) -> (N, (T - 1)(between + 1) + 1, H, W); the original frames are kept exactly.
    """
    videos = _videos(videos)
    if isinstance(between, bool) or not isinstance(between, int) or between < 0:
        raise InputError(f"the number of in-between frames must be an integer >= 0, got {between!r}")
    if between == 0 or videos.shape[1] == 1:
        return videos
    weights = torch.arange(between + 1, dtype=videos.dtype) / (between + 1)  # 0, 1/(k+1), ...
    a, b = videos[:, :-1, None], videos[:, 1:, None]  # (N, T-1, 1, H, W)
    blended = a + (b - a) * weights.view(1, 1, -1, 1, 1)  # (N, T-1, k+1, H, W)
    return torch.cat([blended.flatten(1, 2), videos[:, -1:]], dim=1)


def beside_inputs(videos, digits) -> torch.Tensor:
    """Each input digit, held still, to the left of its video: (N, T, H, W) -> (N, T, H, 2W + 1).

    digits: (N, 28, 28) uint8 0..255 (as the model saw them).
    """
    videos = _videos(videos)
    digits = torch.as_tensor(np.asarray(digits)).float() / 255.0
    if digits.shape != (videos.shape[0], *videos.shape[2:]):
        raise InputError(f"need one (H, W) input per video: {tuple(digits.shape)} against {tuple(videos.shape)}")
    still = digits[:, None].expand(-1, videos.shape[1], -1, -1)
    gap = torch.full((*videos.shape[:3], 1), 0.25)  # a thin grey line between input and video
    return torch.cat([still, gap, videos], dim=3)


def video_grid(videos, columns: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile videos side by side: (N, T, H, W) in [0, 1] -> (T, rows*(H+pad)+pad, cols*(W+pad)+pad) uint8."""
    videos = _videos(videos)
    n, t, h, w = videos.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.full((t, rows * (h + pad) + pad, columns * (w + pad) + pad), 64, dtype=np.uint8)
    frames = (videos.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    for i in range(n):
        r, c = divmod(i, columns)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[:, top:top + h, left:left + w] = frames[i]
    return grid


def check_output(path: str | os.PathLike) -> Path:
    """Validate an output file name before any work is done: a known format, and MP4 only with ffmpeg."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise InputError(f"cannot write {path}: the output must end in {' or '.join(FORMATS)}")
    if path.suffix.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise InputError("writing MP4 needs imageio's ffmpeg plugin: pip install imageio-ffmpeg (or write a .gif)")
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a directory")
    return path


def _frames(videos, scale: int, columns: int | None, fps: float) -> np.ndarray:
    """Videos (N, T, H, W) in [0, 1] -> one enlarged grid per frame, (T, H', W') uint8 (fps checked here
    too, so that every writer refuses a bad rate before any work)."""
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps!r}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise InputError(f"scale must be a positive integer, got {scale!r}")
    grid = video_grid(videos, columns)
    return grid.repeat(scale, axis=1).repeat(scale, axis=2)


def _write_gif(grid: np.ndarray, target, fps: float, hold_last: int) -> None:
    frames = [Image.fromarray(frame) for frame in grid]
    durations = [round(1000 / fps)] * len(frames)
    durations[-1] *= 1 + hold_last  # the finished digit stays on screen a little longer
    frames[0].save(target, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)


def gif_bytes(videos, fps: float = 8.0, scale: int = 4, columns: int | None = None, hold_last: int = 5) -> bytes:
    """Videos (N, T, H, W) in [0, 1] as the bytes of one looping GIF grid (for widgets and web pages)."""
    buffer = io.BytesIO()
    _write_gif(_frames(videos, scale, columns, fps), buffer, fps, hold_last)
    return buffer.getvalue()


def save_video(videos, path: str | os.PathLike, fps: float = 8.0, scale: int = 4, columns: int | None = None,
               hold_last: int = 5) -> Path:
    """Write videos (N, T, H, W) in [0, 1] as one looping grid, enlarged `scale` times, to a GIF or MP4.

    The last frame stays on screen `hold_last` frames longer, so the finished digit can be seen.
    """
    path = check_output(path)
    grid = _frames(videos, scale, columns, fps)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".gif":
            _write_gif(grid, path, fps, hold_last)
        else:
            import imageio.v2 as imageio

            held = np.concatenate([grid, np.repeat(grid[-1:], hold_last, axis=0)])
            imageio.mimwrite(path, held, fps=fps, macro_block_size=1)
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None
    return path


VIDEO_INPUTS = (".gif", ".mp4", ".npy")


def read_video(path: str | os.PathLike, size: int) -> torch.Tensor:
    """One greyscale video from a GIF, an MP4 or a .npy file, as (T, size, size) float32 in [0, 1].

    Frames are made grey (PIL's luma: a weighted sum of red, green and blue). Frames enlarged by an integer factor k (k size
    pixels wide), or written by `save_video` (a 1-pixel border around each video, so (size + 2) k wide),
    are brought back to size x size by averaging each k x k block. A .npy holds (T, size, size) (or
    (1, T, size, size)) floats in [0, 1] or uint8 0..255. Anything else is a one-line InputError.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_INPUTS:
        raise InputError(f"{path}: a video must be a {', '.join(VIDEO_INPUTS)} file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        if suffix == ".npy":
            frames = np.load(path, allow_pickle=False)
        elif suffix == ".gif":
            with Image.open(path) as image:
                frames = []
                for index in range(getattr(image, "n_frames", 1)):
                    image.seek(index)
                    frames.append(np.asarray(image.convert("L")))
                frames = np.stack(frames)
        else:
            if importlib.util.find_spec("imageio_ffmpeg") is None:
                raise InputError("reading MP4 needs imageio's ffmpeg plugin: pip install imageio-ffmpeg (or give a .gif)")
            import imageio.v2 as imageio

            frames = np.stack([np.asarray(Image.fromarray(f).convert("L")) for f in imageio.mimread(path, memtest=False)])
    except InputError:
        raise
    except Exception as error:  # PIL, numpy and ffmpeg raise many kinds for a file that is not what it says
        raise InputError(f"{path} is not a readable {suffix[1:].upper()} video ({type(error).__name__})") from None
    if frames.ndim == 4 and frames.shape[0] == 1:
        frames = frames[0]
    if frames.ndim != 3:
        raise InputError(f"{path}: expected frames shaped (T, H, W), got {frames.shape}")
    if frames.size == 0:
        raise InputError(f"{path}: the video holds no frames")
    if frames.dtype == np.uint8:
        video = torch.from_numpy(frames.astype(np.float32) / 255.0)
    elif np.issubdtype(frames.dtype, np.floating) or np.issubdtype(frames.dtype, np.integer):
        video = torch.from_numpy(frames.astype(np.float32))
        if not torch.isfinite(video).all() or video.min() < 0 or video.max() > 1:
            raise InputError(f"{path}: frames must hold values in [0, 1] (or uint8 0..255)")
    else:
        raise InputError(f"{path}: frames must hold numbers, got dtype {frames.dtype}")
    return _to_size(video, size, path)


def _to_size(video: torch.Tensor, size: int, path: Path) -> torch.Tensor:
    """(T, H, W) -> (T, size, size): undo an integer enlargement, and save_video's border."""
    h, w = video.shape[1:]
    if h == w and h % size == 0:
        k = h // size
    elif h == w and h % (size + 2) == 0:
        k = h // (size + 2)
        video = video[:, k:-k, k:-k]
    else:
        raise InputError(f"{path}: frames must be {size} x {size} pixels (or enlarged by a whole factor), got {h} x {w}")
    return torch.nn.functional.avg_pool2d(video[:, None], k)[:, 0] if k > 1 else video
