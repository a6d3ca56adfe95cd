"""Pictures a person would rather look at than read: image grids and animated GIFs (Pillow)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from core.run_log import atomic_write_bytes


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (or uint8) to uint8."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile N images (N, H, W[, C]) into one uint8 (rows*H, cols*W, C) picture."""
    images = to_uint8(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    cols = cols or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = img
    return grid


def _pil(frame: np.ndarray) -> Image.Image:
    frame = to_uint8(frame)
    if frame.ndim == 3 and frame.shape[-1] == 1:
        frame = frame[..., 0]
    return Image.fromarray(frame)


def save_png(frame: np.ndarray, path: str | os.PathLike, scale: int = 1) -> Path:
    """Save one image (H, W[, C]) as PNG, atomically, optionally enlarged by ``scale`` (nearest)."""
    img = _pil(frame)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 10.0, scale: int = 1) -> Path:
    """Save frames (each H, W[, C]) as a looping animated GIF, atomically."""
    if len(frames) == 0:
        raise ValueError("save_gif needs at least one frame")
    images = [_pil(f) for f in frames]
    if scale > 1:
        images = [im.resize((im.width * scale, im.height * scale), Image.NEAREST) for im in images]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=max(1, int(1000 / fps)), loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
