"""Quality figures for the GAN programs, computed offline with NumPy (and Keras for the MNIST classifier).

2D (ring, grid): the PacGAN / VEEGAN protocol. A generated sample is *high quality* when it lies within
three standard deviations of its nearest mode; a mode is *captured* when it is the nearest mode of at least
one high-quality sample; *reverse KL* is KL(histogram of nearest modes of the high-quality samples || uniform).
"""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

import numpy as np

# ----- the two 2D mixtures -----


def ring_modes(num: int = 8, radius: float = 1.0) -> np.ndarray:
    """``num`` points evenly spaced on a circle (angles 2*pi*k/num, no duplicated mode)."""
    angles = 2.0 * np.pi * np.arange(num) / num
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1).astype("float32")


def grid_modes() -> np.ndarray:
    """The 25 points {-4, -2, 0, 2, 4}^2."""
    ticks = np.arange(-4.0, 5.0, 2.0)
    return np.array([(x, y) for x in ticks for y in ticks], dtype="float32")


MIXTURES = {"ring": (ring_modes, 0.01), "grid": (grid_modes, 0.05)}


def mixture(name: str) -> tuple[np.ndarray, float]:
    """(modes, std) of a 2D dataset."""
    make, std = MIXTURES[name]
    return make(), std


def mode_metrics(samples: np.ndarray, modes: np.ndarray, std: float) -> dict:
    """modes_captured, num_modes, high_quality_fraction and reverse_kl of 2D ``samples``.

    ``reverse_kl`` is None when no sample is of high quality (the histogram is then undefined).
    """
    samples = np.asarray(samples, dtype="float64")
    modes = np.asarray(modes, dtype="float64")
    if samples.ndim != 2 or samples.shape[1] != 2 or len(samples) == 0:
        raise ValueError(f"expected samples of shape (N, 2) with N >= 1, got {samples.shape}")
    finite = np.all(np.isfinite(samples), axis=1)
    d2 = np.sum((samples[:, None, :] - modes[None, :, :]) ** 2, axis=-1)
    nearest = np.argmin(np.where(np.isfinite(d2), d2, np.inf), axis=1)
    dist = np.sqrt(d2[np.arange(len(samples)), nearest])
    high = finite & (dist <= 3.0 * std)
    counts = np.bincount(nearest[high], minlength=len(modes))
    num_high = int(high.sum())
    if num_high:
        p = counts / num_high
        nz = p > 0
        reverse_kl = float(np.sum(p[nz] * np.log(p[nz] * len(modes))))
    else:
        reverse_kl = None
    return {
        "modes_captured": int(np.sum(counts > 0)),
        "num_modes": int(len(modes)),
        "high_quality_fraction": num_high / len(samples),
        "reverse_kl": reverse_kl,
    }


# ----- images: a small classifier's view (MNIST) -----

FRECHET_DRAWS = 20  # draws of 1,000 vs 1,000 on the 10,000 digits: the mean's spread ~0.1 instead of ~0.3-0.6
CLASSIFIER_EPOCHS = 12  # 98.75-98.9 % held-out accuracy on the 10,000-digit split (seed 0), ~30 s on 2 cores


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (as in FID, any features)."""
    a = np.asarray(feats_a, dtype="float64")
    b = np.asarray(feats_b, dtype="float64")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = np.cov(a, rowvar=False)
    cov_b = np.cov(b, rowvar=False)
    # tr sqrt(cov_a cov_b) from the eigenvalues of sqrt(cov_a) cov_b sqrt(cov_a) (symmetric PSD).
    wa, va = np.linalg.eigh(cov_a)
    sqrt_a = (va * np.sqrt(np.clip(wa, 0, None))) @ va.T
    m = sqrt_a @ cov_b @ sqrt_a
    tr_covmean = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None))))
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_covmean)
    return max(value, 0.0)


def frechet_over_splits(
    real: np.ndarray, fake: np.ndarray, draws: int = 20, real_draws: int = 200, seed: int = 0
) -> dict:
    """Frechet distance of ``fake`` features to ``real`` ones, beside real against real: means over random draws
    of n rows against n rows.

    Draw k splits ``real`` at random (``seed``) into disjoint halves A and B of n rows and scores B against A;
    the first ``draws`` draws (as many as ``fake`` has n-row blocks) also score the k-th n generated rows against
    A. Both sides compare n rows with n rows, so the distance's finite-sample bias is the same on both. One draw
    is not enough: on the 10,000 MNIST digits (n = 1,000) real against real ranges from 1.6 to 3.2 (5th to 95th
    percentile, mean 2.33) over random splits in the quality classifier's features (docs/gan.md). n is half the
    real rows, or fewer when ``fake`` has fewer rows.
    """
    n = max(min(len(real) // 2, len(fake)), 2)
    count = max(1, min(draws, len(fake) // n))
    rng = np.random.default_rng(seed)
    splits = [rng.permutation(len(real)) for _ in range(max(count, real_draws))]
    gen = [frechet_distance(real[p[:n]], fake[k * n : (k + 1) * n]) for k, p in enumerate(splits[:count])]
    ref = [frechet_distance(real[p[:n]], real[p[n : 2 * n]]) for p in splits]
    return {
        "frechet_distance": float(np.mean(gen)),
        "frechet_distance_real": float(np.mean(ref)),
        "frechet_distance_sd": float(np.std(gen)),
        "frechet_distance_real_sd": float(np.std(ref)),
        "frechet_samples": n,
        "frechet_draws": count,
        "frechet_draws_real": len(splits),
    }


def class_coverage(probs: np.ndarray, num_classes: int = 10, confidence: float = 0.9) -> dict:
    """How generated images spread over the classes a classifier sees in them.

    ``classes_covered``: classes predicted with at least ``confidence`` for at least 1 % of the
    confident samples; ``confident_fraction``; ``class_kl``: KL(class histogram of the confident
    samples || uniform), 0 for perfect balance.
    """
    probs = np.asarray(probs, dtype="float64")
    conf = probs.max(axis=1) >= confidence
    if not conf.any():
        return {"classes_covered": 0, "confident_fraction": 0.0, "class_kl": None}
    counts = np.bincount(probs[conf].argmax(axis=1), minlength=num_classes)
    p = counts / counts.sum()
    nz = p > 0
    return {
        "classes_covered": int(np.sum(p >= 0.01)),
        "confident_fraction": float(conf.mean()),
        "class_kl": float(np.sum(p[nz] * np.log(p[nz] * num_classes))),
    }


def uniform_kl_max(num_modes: int) -> float:
    """The reverse KL of a generator stuck on one mode: log(num_modes)."""
    return math.log(num_modes)


# ----- the MNIST quality classifier: trained once per dataset, cached by a hash of the data -----

CLASSIFIER_RECIPE = "cnn-v2"
"""part of the cache key: change it when the classifier's recipe changes"""


def arrays_key(*arrays: np.ndarray | None, suffix: str = "") -> str:
    """A short SHA-256 of arrays' shapes, dtypes and bytes (``None`` skipped), then ``suffix``: a dataset's name."""
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a))
    h.update(suffix.encode())
    return h.hexdigest()[:16]


def data_key(images: np.ndarray, labels: np.ndarray, epochs: int) -> str:
    """A short hash of the images, the labels and the recipe: the classifier cache's key."""
    return arrays_key(images, labels, suffix=f"{CLASSIFIER_RECIPE}/{epochs}")


def classifier_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, training) indices, fixed per dataset size: a fifth held out (at most 5,000), the rest trains
    (at most 50,000)."""
    order = np.random.default_rng(12345).permutation(n)
    n_val = min(max(n // 5, 2), 5000)
    return order[:n_val], order[n_val : n_val + 50000]


def build_classifier(shape: tuple[int, ...], num_classes: int = 10):
    """Two conv + max-pool blocks (32, 64 channels), 64 features, logits; random shifts up to 2 pixels in training."""
    import keras

    inp = keras.Input(shape)
    h = keras.layers.RandomTranslation(2 / shape[0], 2 / shape[1], fill_mode="constant")(inp)
    for ch in (32, 64):
        h = keras.layers.Conv2D(ch, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Dropout(0.25)(keras.layers.Flatten()(h))
    feats = keras.layers.Dense(64, activation="relu", name="features")(h)
    logits = keras.layers.Dense(num_classes, name="logits")(keras.layers.Dropout(0.25)(feats))
    return keras.Model(inp, [feats, logits], name="quality_classifier")


def quality_classifier(images: np.ndarray, labels: np.ndarray, cache_dirs: list, epochs: int = 12):
    """(classifier, held-out indices, held-out accuracy, cache path or None, trained now?).

    Looks for ``quality_classifier_<key>.npz`` in each of ``cache_dirs`` (the key hashes the data), else trains
    (Adam, cosine-decayed learning rate, ``epochs`` passes, seed 0) and saves it to the first writable one.
    """
    import keras

    import core

    val_idx, train_idx = classifier_split(len(images))
    x = images.astype("float32") / 255.0
    y = labels.astype("int32")
    name = f"quality_classifier_{data_key(images, labels, epochs)}.npz"
    for d in cache_dirs:
        path = Path(d) / name
        if path.is_file():
            model = build_classifier(images.shape[1:])
            try:
                meta = core.load_checkpoint(path, {"clf": model})
                accuracy = float(meta["accuracy"])
                if 0 <= accuracy <= 1:
                    return model, val_idx, accuracy, path, False
            except (core.CheckpointError, KeyError, TypeError, ValueError):
                pass  # unreadable or damaged (non-finite weights, no accuracy): train again
    keras.utils.set_random_seed(0)
    model = build_classifier(images.shape[1:])
    steps = epochs * max(len(train_idx) // 128, 1)
    lr = keras.optimizers.schedules.CosineDecay(2e-3, steps, alpha=0.01)
    train = keras.Model(model.input, model.outputs[1])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    train.compile(keras.optimizers.Adam(lr), loss, metrics=["accuracy"])
    train.fit(x[train_idx], y[train_idx], batch_size=128, epochs=epochs, verbose=0, shuffle=True)
    accuracy = float(train.evaluate(x[val_idx], y[val_idx], batch_size=500, verbose=0)[1])
    for d in cache_dirs:
        try:
            path = core.save_checkpoint(Path(d) / name, {"clf": model}, {"accuracy": accuracy, "epochs": epochs})
            return model, val_idx, accuracy, path, True
        except OSError:
            continue
    return model, val_idx, accuracy, None, True


# ----- the figures an MNIST run reports -----


def classifier_quality(
    images: np.ndarray, labels: np.ndarray, samples: np.ndarray, cache_dirs: list, epochs: int = 12
) -> dict:
    """Class coverage, confidence and a Frechet distance in the features of a classifier trained on ``images``,
    each beside the same figure for held-out real digits (the distance: :func:`frechet_over_splits`).

    No download: the classifier learns from the real data the run was given (a fifth held out for its accuracy
    and as the real side of every figure), once per dataset: it is cached in the first writable of
    ``cache_dirs`` under a hash of the data (:func:`quality_classifier`).
    """
    model, val_idx, accuracy, path, trained = quality_classifier(images, labels, cache_dirs, epochs)
    if path is None:
        print("quality classifier trained (not cached: no writable folder in --classifier-cache or --out)")
    else:
        print(f"quality classifier {'trained and saved to' if trained else 'loaded from'} {path}")
    real_f, real_logits = model.predict(images[val_idx].astype("float32") / 255.0, batch_size=500, verbose=0)
    fake_f, fake_logits = model.predict(samples.astype("float32"), batch_size=500, verbose=0)
    real = class_coverage(_softmax(real_logits))
    return {
        "classifier_accuracy": accuracy,
        **class_coverage(_softmax(fake_logits)),
        **{f"{k}_real": v for k, v in real.items()},
        **frechet_over_splits(real_f, fake_f, FRECHET_DRAWS),
    }


def scored_samples(num_images: int) -> int:
    """Samples the quality figures take: FRECHET_DRAWS draws of as many as half the held-out digits."""
    return FRECHET_DRAWS * (len(classifier_split(num_images)[0]) // 2)


def fmt_quality(q: dict) -> str:
    """The figures of :func:`classifier_quality` in one line."""

    def kl(v):
        return "n/a" if v is None else f"{v:.3f}"

    return (
        f"classifier (accuracy {100 * q['classifier_accuracy']:.1f}% on held-out real digits), generated vs real: "
        f"classes covered {q['classes_covered']}/10 vs {q['classes_covered_real']}/10, "
        f"class KL {kl(q['class_kl'])} vs {kl(q['class_kl_real'])}, "
        f"confident {100 * q['confident_fraction']:.1f}% vs {100 * q['confident_fraction_real']:.1f}%, "
        f"Frechet distance {q['frechet_distance']:.3g} (sd {q['frechet_distance_sd']:.2g}) vs "
        f"{q['frechet_distance_real']:.3g} (sd {q['frechet_distance_real_sd']:.2g}), "
        f"means of {q['frechet_draws']} and {q['frechet_draws_real']} draws of {q['frechet_samples']} against as many"
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


if __name__ == "__main__":
    from examples.command import not_a_command

    sys.exit(not_a_command("examples.gan_metrics"))
