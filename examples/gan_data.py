"""Image data for the GAN on pictures (examples/gan_images.py): MNIST IDX files, folders of pictures (Pillow),
and a tf.data pipeline.

Every loader returns uint8 arrays of shape (N, H, W, C); bad input raises core.UsageError.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import core

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


MAX_IDX_BYTES = 2**31  # far above any MNIST-format split (60,000 digits: 47 MB)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file (optionally gzipped): images (magic 2051) or labels (magic 2049).

    Reads the header first and then only the bytes it announces (plus one, to catch extra data), so a damaged or
    hostile file that inflates to gigabytes is refused without being read.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            magic = int.from_bytes(head, "big") if len(head) == 4 else None
            if magic not in (2049, 2051):
                found = "too short" if magic is None else f"magic number {magic}, expected 2049 or 2051"
                raise core.UsageError(f"{path} is not an MNIST IDX file ({found})")
            header = f.read(4 * (magic - 2048))
            dims = [int.from_bytes(header[i : i + 4], "big") for i in range(0, len(header), 4)]
            count = math.prod(dims)  # Python integers: three 32-bit dimensions overflow NumPy's int64
            if len(header) < 4 * (magic - 2048) or count > MAX_IDX_BYTES:
                raise core.UsageError(f"{path}: header {dims} is cut short or announces more than 2 GB")
            data = f.read(count + 1)
    except (OSError, EOFError, zlib.error) as e:  # unreadable, truncated, or a damaged deflate stream
        raise core.UsageError(f"cannot read IDX file {path}: {' '.join(str(e).split()) or type(e).__name__}") from None
    if len(data) != count:
        held = f"{len(data)}" if len(data) <= count else "more"
        raise core.UsageError(f"{path}: header says {dims} ({count} bytes) but the file holds {held}")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def load_mnist_dir(data_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """All MNIST splits found in ``data_dir`` (``*-images-idx3-ubyte[.gz]`` with matching labels).

    Returns images (N, 28, 28, 1) uint8 and labels (N,) uint8.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise core.UsageError(f"--data-dir {data_dir} is not a folder")
    image_files = sorted(p for p in data_dir.iterdir() if p.name.split(".")[0].endswith("-images-idx3-ubyte"))
    if not image_files:
        raise core.UsageError(f"no MNIST files (*-images-idx3-ubyte[.gz]) in {data_dir}")
    images, labels = [], []
    for img_path in image_files:
        prefix = img_path.name.split("-images-idx3-ubyte")[0]
        candidates = [data_dir / f"{prefix}-labels-idx1-ubyte{s}" for s in ("", ".gz")]
        label_path = next((c for c in candidates if c.exists()), None)
        if label_path is None:
            raise core.UsageError(f"{img_path.name} has no matching {prefix}-labels-idx1-ubyte[.gz] in {data_dir}")
        x, y = read_idx(img_path), read_idx(label_path)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise core.UsageError(f"{img_path.name} / {label_path.name}: shapes {x.shape} and {y.shape} do not match")
        if x.shape[1:] != (28, 28):
            raise core.UsageError(f"{img_path.name}: images of {x.shape[1]}x{x.shape[2]} pixels; MNIST's are 28x28")
        if len(y) and int(y.max()) > 9:
            raise core.UsageError(f"{label_path.name}: label {int(y.max())}; MNIST's labels are 0 to 9")
        images.append(x)
        labels.append(y)
    return np.concatenate(images)[..., None], np.concatenate(labels)


def load_mnist(data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from ``data_dir`` (IDX files) or from ``keras.datasets.mnist`` (download and cache)."""
    if data_dir is not None:
        return load_mnist_dir(data_dir)
    import keras

    try:
        (x_train, y_train), _ = keras.datasets.mnist.load_data()
    except Exception as e:  # no network, a proxy, a damaged cache: keras raises plain Exceptions here
        raise core.UsageError(
            f"--dataset mnist without --data-dir downloads MNIST through keras.datasets, which failed "
            f"({type(e).__name__}); give --data-dir DIR holding the IDX files"
        ) from None
    return x_train[..., None], y_train


def load_folder(data_dir: str | os.PathLike, image_size: int, channels: int) -> tuple[np.ndarray, list[Path]]:
    """Every readable picture under ``data_dir``, converted and resized to (image_size, image_size, channels).

    Returns the images and the files skipped as unreadable (a damaged picture is skipped, not fatal: a folder of
    thousands scraped from the web often holds a few; the run names them); no readable image is a UsageError.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise core.UsageError(f"--data-dir {data_dir} is not a folder")
    files = sorted(p for p in data_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    mode = "L" if channels == 1 else "RGB"
    images, skipped = [], []
    for path in files:
        try:
            with Image.open(path) as img:
                img = img.convert(mode).resize((image_size, image_size), Image.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
        except MemoryError:
            raise
        except Exception:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ... on damaged files
            skipped.append(path)
            continue
        images.append(arr.reshape(image_size, image_size, channels))
    if not images:
        what = f"{len(files)} picture file(s), none readable" if files else "no picture files (PNG/JPEG)"
        raise core.UsageError(f"--data-dir {data_dir}: {what}")
    return np.stack(images), skipped


def image_batches(
    images: np.ndarray,
    batch_size: int,
    seed: int,
    skip: int = 0,
    use_tf: bool | None = None,
    labels: np.ndarray | None = None,
):
    """Batches scaled to [-1, 1] in one seeded order per epoch, dropping the last partial batch, first ``skip`` skipped;
    with ``labels``, (images, int32 labels) pairs in the same order.

    A tf.data pipeline (shuffle, batch, map, prefetch) when TensorFlow is installed; on a JAX-only
    install the same batches come from NumPy (another, equally seeded order).
    """
    if use_tf is None:
        use_tf = importlib.util.find_spec("tensorflow") is not None
    if not use_tf:
        return _numpy_batches(images, batch_size, seed, skip, labels)
    import tensorflow as tf

    def scale(x):
        return tf.cast(x, tf.float32) / 127.5 - 1.0

    ds = tf.data.Dataset.from_tensor_slices(images if labels is None else (images, labels.astype("int32")))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=False)
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(scale if labels is None else lambda x, y: (scale(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.skip(skip).prefetch(tf.data.AUTOTUNE)


def epoch_order(num_images: int, seed: int) -> np.ndarray:
    """The seeded order of one epoch (the NumPy pipeline's and the on-device draw's)."""
    return np.random.default_rng(seed).permutation(num_images)


def batch_indices(num_images: int, batch_size: int, epoch_seed, first_step: int, num_steps: int) -> np.ndarray:
    """Image indices of steps ``first_step`` .. ``first_step + num_steps - 1``, shape (num_steps, batch_size) int32.

    Step s is batch ``s % per_epoch`` of epoch ``s // per_epoch`` in that epoch's order (``epoch_seed(epoch)``),
    the last partial batch dropped: the order depends only on the step, so a resumed run draws what an
    uninterrupted one would. The images stay on the device; only these indices travel each call.
    """
    per_epoch = num_images // batch_size
    orders: dict[int, np.ndarray] = {}
    rows = []
    for s in range(first_step, first_step + num_steps):
        epoch, offset = divmod(s, per_epoch)
        if epoch not in orders:
            orders[epoch] = epoch_order(num_images, epoch_seed(epoch))
        rows.append(orders[epoch][offset * batch_size : (offset + 1) * batch_size])
    return np.stack(rows).astype("int32")


def _numpy_batches(images: np.ndarray, batch_size: int, seed: int, skip: int, labels: np.ndarray | None):
    order = epoch_order(len(images), seed)
    for start in range((skip * batch_size), len(images) - batch_size + 1, batch_size):
        rows = order[start : start + batch_size]
        x = images[rows].astype("float32") / 127.5 - 1.0
        yield x if labels is None else (x, labels[rows].astype("int32"))


if __name__ == "__main__":
    from examples.command import not_a_command

    sys.exit(not_a_command("examples.gan_data"))
