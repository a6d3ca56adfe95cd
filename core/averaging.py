"""Non-gradient updates run inside the compiled step after the update groups: moving averages of weights.

    G_avg = keras.models.clone_model(G); G_avg.set_weights(G.get_weights())
    step = core.make_step(groups, after_update=[core.ema(G_avg.weights, G.weights, decay=0.999)])

After every train step (also inside a fused ``train_steps`` call), each target variable becomes
``decay * target + (1 - decay) * source``. ``decay=0`` copies (a hard target-network update). The
targets are ordinary Keras variables: checkpoint the model that holds them like any other.

Why not Keras' ``Optimizer(use_ema=True, ema_momentum=...)``: that average lives in the optimizer's slots
and ``finalize_variable_values`` swaps it *into the trained weights* at the end of ``fit``. A GAN needs the
raw generator to keep training and the averaged one to sample from during training, and value-based RL
needs a target network that is a separate copy read by the loss while the online network trains: both are a
second set of variables, which is what this module updates. (Keras' EMA would also be skipped by the core,
which calls ``optimizer.apply`` and never ``finalize_variable_values``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from core.errors import AfterUpdateError


def _name(v: Any) -> str:
    return getattr(v, "path", None) or getattr(v, "name", repr(v))


class EMA:
    """``target <- decay * target + (1 - decay) * source`` for each pair, run after the update groups."""

    def __init__(self, targets: Sequence[Any], sources: Sequence[Any], decay: float, count: Any = None):
        targets, sources = list(targets), list(sources)
        if len(targets) != len(sources):
            raise AfterUpdateError(f"ema: {len(targets)} target variables but {len(sources)} sources")
        if not targets:
            raise AfterUpdateError("ema: no variables to average")
        if not 0.0 <= float(decay) <= 1.0:
            raise AfterUpdateError(f"ema: decay must be in [0, 1], got {decay}")
        for t, s in zip(targets, sources):
            if t is s:
                raise AfterUpdateError(f"ema: {_name(t)!r} is its own source; the target must be a separate copy")
            if tuple(t.shape) != tuple(s.shape):
                raise AfterUpdateError(f"ema: {_name(t)!r} has shape {tuple(t.shape)}, its source {tuple(s.shape)}")
        self.targets, self.sources, self.decay, self.count = targets, sources, float(decay), count

    def _decay(self) -> Any:
        """``decay``, or during warm-up ``min(decay, (1 + n) / (10 + n))`` with ``n = count`` (as TensorFlow's
        ExponentialMovingAverage with num_updates): early averages forget the initial weights quickly."""
        if self.count is None:
            return self.decay
        n = ops.cast(ops.convert_to_tensor(self.count), "float32")
        return ops.minimum(self.decay, (1.0 + n) / (10.0 + n))

    @property
    def variables(self) -> list:
        """The variables this rule assigns (the step checks no update group trains them)."""
        return list(self.targets)

    def __call__(self) -> None:
        if self.decay == 1.0:
            return
        d = self._decay()
        for t, s in zip(self.targets, self.sources):
            if self.decay == 0.0:
                t.assign(ops.cast(s, t.dtype))
            else:
                t.assign(ops.cast(d * ops.copy(t) + (1.0 - d) * ops.cast(s, t.dtype), t.dtype))

    def __repr__(self) -> str:
        return f"ema({len(self.targets)} variables, decay={self.decay})"


def ema(targets: Sequence[Any], sources: Sequence[Any], decay: float, count: Any = None) -> EMA:
    """An after-update rule for ``make_step(..., after_update=[...])``: an exponential moving average of
    ``sources`` kept in ``targets`` (same lengths and shapes, pairwise), ``decay`` in [0, 1]; 0 copies.

    ``count``: an optional integer variable counting the updates so far, read each step (an optimizer's
    ``iterations``: already checkpointed) for a warm-up, ``min(decay, (1 + count) / (10 + count))``."""
    return EMA(targets, sources, decay, count)


def copy_weights(target: Any, source: Any) -> None:
    """Start an average where its source is: ``target``'s variables take ``source``'s values (models or lists)."""
    tv = target.weights if hasattr(target, "weights") else list(target)
    sv = source.weights if hasattr(source, "weights") else list(source)
    if len(tv) != len(sv):
        raise AfterUpdateError(f"copy_weights: {len(tv)} target variables but {len(sv)} sources")
    for t, s in zip(tv, sv):
        t.assign(ops.cast(s, t.dtype))
