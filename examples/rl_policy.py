"""What PPO's policy is made of besides its network: the action distribution (a categorical head for Discrete
actions, a diagonal Gaussian for Box actions), running observation and reward statistics kept in variables and
updated inside the compiled step, and the networks exported with those statistics folded in.

Box actions: the network outputs the Gaussian's mean and its log standard deviation, both functions of the state
(clipped to [-5, 2]). CleanRL's ``ppo_continuous_action.py`` keeps the log standard deviation one trainable number
per component instead; on Pendulum-v1 that plateaued near a mean return of -250 to -300 (on the tuning seeds 100-106,
it reached -200 within 200k env steps on 1 of 3 at the settings where the state-dependent one did on 7 of 7): a state
needing precise torques near the top and states needing wide exploration in the swing-up cannot share one spread.
A sampled action is kept as drawn (its log-probability is exact, no Jacobian term as a tanh squash would need) and
clipped to the bounds only where it enters the environment, as CleanRL's ``ClipAction`` wrapper and SB3 do; greedy
acting uses the mean.

Normalisation (VecNormalize's and CleanRL's wrappers, on by default for Box actions): observations become
``clip((x - mean) / sqrt(var + 1e-8), -10, 10)`` with running statistics of every observation seen, rewards are
divided by the running standard deviation of a per-environment discounted return and clipped to +-10. Both sets of
statistics are Keras variables, so they are checkpointed and resumed with the run. They change once per iteration,
after the rollout, never during one: the policy acts on the same statistics the update then reads, on the device
and on gymnasium alike.
"""

from __future__ import annotations

import core  # noqa: F401  (before Keras, which it imports with its start-up log hidden)

# isort: split
import math
import sys

import keras
import numpy as np
from keras import ops

from examples.rl_common import log_probs, sample_actions

LOG_2PI = math.log(2.0 * math.pi)
OBS_CLIP = 10.0  # normalised observations and scaled rewards are clipped to +-10, as VecNormalize and CleanRL do
STAT_EPS = 1e-8  # added to a running variance before its square root (gymnasium's and SB3's epsilon)
START_COUNT = 1e-4  # gymnasium's RunningMeanStd starts at this count: the first batch all but replaces mean 0, var 1


LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # standard deviations from 0.007 to 7.4 (SAC's bounds)


class Categorical:
    """Discrete actions: the network's outputs are logits; actions are int32 indices."""

    continuous = False

    def __init__(self, num_actions: int):
        self.outputs = num_actions

    def sample(self, logits, seed):
        return sample_actions(logits, seed)

    def greedy(self, logits):
        return ops.cast(ops.argmax(logits, axis=-1), "int32")

    def log_prob(self, logits, actions):
        return log_probs(logits, actions)

    def entropy(self, logits):
        logp_all = ops.log_softmax(logits, axis=-1)
        return -ops.sum(ops.exp(logp_all) * logp_all, axis=-1)


class Gaussian:
    """Box actions: the network's ``2 * action_dim`` outputs are the mean, then the log standard deviation."""

    continuous = True

    def __init__(self, action_dim: int):
        self.action_dim, self.outputs = action_dim, 2 * action_dim

    def split(self, params):
        """(mean, log standard deviation) of each row."""
        d = self.action_dim
        return params[:, :d], ops.clip(params[:, d:], LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, params, seed):
        mean, log_std = self.split(params)
        return mean + ops.exp(log_std) * standard_normal(ops.shape(mean), seed)

    def greedy(self, params):
        return self.split(params)[0]

    def log_prob(self, params, actions):
        mean, log_std = self.split(params)
        z = (actions - mean) * ops.exp(-log_std)
        return ops.sum(-0.5 * ops.square(z) - log_std, axis=-1) - 0.5 * LOG_2PI * self.action_dim

    def entropy(self, params):
        return ops.sum(self.split(params)[1], axis=-1) + 0.5 * (1.0 + LOG_2PI) * self.action_dim


def standard_normal(shape, seed):
    """Standard normal numbers by the inverse CDF of integer draws: Keras' integer draws give the same numbers
    eager, in graphs and under XLA on both backends, and a draw's first rows are those of a shorter draw (float
    draws keep neither on TensorFlow), so greedy monitors stepped beside the training rows change nothing."""
    bits = keras.random.randint(shape, 0, 1 << 23, dtype="int32", seed=seed)
    # 2u - 1 for u = (bits + 1/2) / 2^23, every step exact in float32: in [-1 + 2^-23, 1 - 2^-23], so |z| <= 5.3.
    # (24 bits would round the largest u to exactly 1 and erfinv(1) is inf: measured, a NaN loss on Pendulum-v1.)
    return math.sqrt(2.0) * ops.erfinv((ops.cast(bits, "float32") + 0.5) * (1.0 / (1 << 22)) - 1.0)


def make_head(continuous: bool, actions: int) -> Categorical | Gaussian:
    """The head for ``actions`` logits (Discrete) or action components (Box)."""
    return Gaussian(actions) if continuous else Categorical(actions)


class RunningMoments:
    """Mean, variance and count of everything seen, as non-trainable variables (gymnasium's RunningMeanStd, the
    parallel algorithm: a batch at a time, in float32; the count is exact up to 2^24 samples)."""

    def __init__(self, shape: tuple, name: str):
        self.mean = keras.Variable(np.zeros(shape, "float32"), trainable=False, name=f"{name}_mean")
        self.var = keras.Variable(np.ones(shape, "float32"), trainable=False, name=f"{name}_var")
        self.count = keras.Variable(np.float32(START_COUNT), trainable=False, name=f"{name}_count")
        self.variables = [self.mean, self.var, self.count]

    def update(self, x) -> None:
        """Fold in the rows of ``x`` (axis 0)."""
        n = ops.cast(ops.shape(x)[0], "float32")
        batch_mean, batch_var = ops.mean(x, axis=0), ops.var(x, axis=0)
        mean, var, count = self.mean.value, self.var.value, self.count.value
        total = count + n
        delta = batch_mean - mean
        self.mean.assign(mean + delta * (n / total))
        self.var.assign((var * count + batch_var * n + ops.square(delta) * (count * n / total)) / total)
        self.count.assign(total)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        return ops.convert_to_numpy(self.mean.value), ops.convert_to_numpy(self.var.value)


class Normalizer:
    """Observation statistics and reward scale of ``num_envs`` environments (see the module docstring)."""

    def __init__(self, obs_dim: int, num_envs: int, gamma: float):
        self.gamma = gamma
        self.obs = RunningMoments((obs_dim,), "obs")
        self.ret = RunningMoments((), "return")
        # Each environment's discounted return so far: what the reward scale is the spread of.
        self.discounted = keras.Variable(np.zeros(num_envs, "float32"), trainable=False, name="discounted_return")
        self.variables = [*self.obs.variables, *self.ret.variables, self.discounted]

    def observations(self, x):
        """``x`` (any leading axes, observations last) normalised with the current statistics."""
        z = (x - self.obs.mean.value) / ops.sqrt(self.obs.var.value + STAT_EPS)
        return ops.clip(z, -OBS_CLIP, OBS_CLIP)

    def rewards(self, rewards, ended):
        """(T, N) rewards divided by the running standard deviation of the discounted return, which this rollout
        updates first (a return restarts after every episode end, as SB3's VecNormalize)."""

        def step(ret, x):  # x: (N, 2) = reward, ended
            ret = ret * self.gamma + x[:, 0]
            return ret * (1.0 - x[:, 1]), ret

        last, returns = ops.scan(step, self.discounted.value, ops.stack([rewards, ended], axis=-1))
        self.discounted.assign(last)
        self.ret.update(ops.reshape(returns, (-1,)))
        return ops.clip(rewards / ops.sqrt(self.ret.var.value + STAT_EPS), -OBS_CLIP, OBS_CLIP)


def on_raw_observations(network: keras.Model, obs_dim: int, normalizer: Normalizer | None, keep: int = 0):
    """``network`` behind the observation normalisation it was trained with, as built-in Keras layers only, so
    ``keras.saving.load_model`` reads it anywhere: a ``Normalization`` layer holding the statistics of now, then
    the clip to +-10 as ``ReLU(max_value=20)`` between two shifts by 10 (no built-in clip layer exists). ``keep``
    > 0: only the first ``keep`` outputs (a Gaussian policy's mean), by a copy of the last layer cut to them."""
    if normalizer is None and not keep:
        return network
    x = keras.Input((obs_dim,), name="obs")
    h = x
    if normalizer is not None:
        mean, var = normalizer.obs.numpy()
        h = keras.layers.Normalization(mean=mean, variance=var + STAT_EPS, name="obs_normalization")(h)
        h = keras.layers.Rescaling(1.0, offset=OBS_CLIP, name="shift_up")(h)
        h = keras.layers.ReLU(max_value=2 * OBS_CLIP, name="clip")(h)
        h = keras.layers.Rescaling(1.0, offset=-OBS_CLIP, name="shift_down")(h)
    if not keep:
        return keras.Model(x, network(h), name=f"{network.name}_on_raw_obs")
    last = network.layers[-1]
    for layer in network.layers[1:-1]:  # the hidden layers themselves, then a copy of the last one, cut
        h = layer(h)
    out = keras.layers.Dense(keep, name="mean")
    y = out(h)
    kernel, bias = (ops.convert_to_numpy(w) for w in last.weights)
    out.set_weights([kernel[:, :keep], bias[:keep]])
    return keras.Model(x, y, name=f"{network.name}_mean_on_raw_obs")


def exports(policy: keras.Model, value: keras.Model, obs_dim: int, normalizer: Normalizer | None, head) -> dict:
    """What ``core.Run(export=...)`` writes at every checkpoint: functions, so the weights and statistics are those
    of then. The policy outputs the logits (Discrete) or the mean action (Box), the value network the value."""
    keep = head.action_dim if head.continuous else 0
    return {
        "policy": lambda: on_raw_observations(policy, obs_dim, normalizer, keep),
        "value": lambda: on_raw_observations(value, obs_dim, normalizer),
    }


if __name__ == "__main__":
    from examples.command import not_a_command

    sys.exit(not_a_command("examples.rl_policy"))
