"""What a policy-gradient run does around its algorithm, the same for PPO and REINFORCE: the checks of sizes and
--gif-copy before anything is built, the stop rule (``Scoreboard``), the ``core.Run`` with its TensorBoard
scalars, and the end (``finish``: summary.json, the evaluations and the GIF on gymnasium's own environment).

A program's config has the fields read here: ``env``, ``seed``, ``num_envs``, ``max_env_steps``,
``checkpoint_every``, ``eval_episodes``, ``gif`` and ``gif_copy``.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import core
from examples.rl_common import evaluate, record_gif

MAX_ROLLOUT = 2**24  # transitions in one rollout: 16.8M rows of observations, far beyond any default
MAX_GYMNASIUM_ENVS = 1024  # gymnasium's vector environments are Python objects, one per copy

# TensorBoard names of the step's logs (the rest keep their own: losses/entropy, ppo/approx_kl, ...).
LOG_KEYS = {
    "policy/loss": "losses/policy",
    "value/loss": "losses/value",
    "policy/grad_norm": "grad_norm/policy",
    "policy/grad_norm_applied": "grad_norm/policy_applied",
    "value/grad_norm": "grad_norm/value",
    "value/grad_norm_applied": "grad_norm/value_applied",
}


# ----- before anything is built -----
def check_sizes(num_envs: int, rollout_steps: int, on_gymnasium: bool, extra_envs: int = 0) -> None:
    """Sizes whose product would exhaust memory (or overflow int32 indexing) refused before anything is built;
    ``extra_envs``: the greedy monitors stepped beside the ``num_envs`` training environments."""
    if on_gymnasium and num_envs > MAX_GYMNASIUM_ENVS:
        raise core.UsageError(f"--num-envs {num_envs}: at most {MAX_GYMNASIUM_ENVS} gymnasium environments")
    envs = num_envs + extra_envs
    if envs * rollout_steps > MAX_ROLLOUT:
        raise core.UsageError(
            f"--num-envs {num_envs} (+ {extra_envs} greedy) x --rollout-steps {rollout_steps} = "
            f"{envs * rollout_steps} transitions per rollout; at most {MAX_ROLLOUT}"
        )


def check_gif_copy(path: str, gif: bool, out: str | None) -> None:
    """--gif-copy before any training: it needs the GIF and --out, and a file name in a folder it can write."""
    if not gif:
        raise core.UsageError("--gif-copy copies the episode GIF, which --no-gif turns off")
    if not out:
        raise core.UsageError("--gif-copy needs --out (the GIF is written to --out/episode.gif, then copied)")
    if Path(path).is_dir():
        raise core.UsageError(f"--gif-copy {path} is a folder; name the file, e.g. {path}/run.gif")
    folder = Path(path).absolute().parent
    while not folder.exists():  # the copy creates the missing folders: the nearest existing one must take them
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise core.UsageError(f"--gif-copy {path}: {folder} is not a folder this run can write in")


# ----- the stop rule -----
def check_counters(state: dict) -> None:
    """A resumed run's counters have the types these programs write (the checkpoint's JSON could hold anything)."""

    def number(x) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    def count(x) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= 0

    counters = ("episodes", "updates", "greedy_episodes", "greedy_env_steps", "first_episodes", "first_cut")
    bad = [k for k in counters if not count(state.get(k, 0))]
    if not isinstance(state.get("bootstrap_truncated"), bool | None):
        bad.append("bootstrap_truncated")
    for key in ("recent", "greedy_recent"):
        if not isinstance(state.get(key, []), list | collections.deque) or not all(map(number, state.get(key, []))):
            bad.append(key)
    for key in ("solved_at", "train_target_at"):
        moment = state[key]
        keys = ("env_steps", "episodes", "wall_seconds")
        if moment is not None and not (isinstance(moment, dict) and all(number(moment.get(k)) for k in keys)):
            bad.append(key)
    if bad:
        raise core.UsageError(f"--resume: the checkpoint's counters are damaged ({', '.join(bad)})")


class Scoreboard:
    """Episode returns as they finish, the mean of the last 100 and the moment the stop rule first held.

    With ``greedy_window`` k > 0 (device PPO with greedy monitors) the rule also needs the mean of the last k
    completed greedy-monitor episodes to reach the target: the sampling policy's mean alone says nothing of the
    argmax policy, which training never runs and which can stick for whole episodes (Acrobot-v1). Its counters
    live in ``run.state``, so they are checkpointed and resumed with the run.
    """

    def __init__(self, run: core.Run, target: float | None, greedy_window: int = 0, state: dict | None = None):
        """``state``: where the counters live, a dict inside ``run.state`` (default: ``run.state`` itself); a
        population keeps one per member."""
        self.run, self.target, self.greedy_window = run, target, greedy_window
        self.state = state = run.state if state is None else state
        for key, start in (("episodes", 0), ("updates", 0), ("solved_at", None), ("train_target_at", None)):
            state.setdefault(key, start)
        state.setdefault("greedy_episodes", 0)
        state.setdefault("greedy_env_steps", 0)
        check_counters(state)
        state["recent"] = collections.deque(state.get("recent", []), maxlen=100)
        state["greedy_recent"] = collections.deque(state.get("greedy_recent", []), maxlen=max(greedy_window, 1))

    @property
    def solved(self) -> bool:
        return self.state["solved_at"] is not None

    def done(self, env_steps: int, train_on: int) -> bool:
        """Solved, and ``train_on`` more env steps trained since."""
        return self.solved and env_steps >= self.state["solved_at"]["env_steps"] + train_on

    def train_on_left(self, env_steps: int, train_on: int) -> float:
        """The fraction of the ``train_on`` steps still to go: 1 until the solve, then down to 0."""
        if not self.solved or not train_on:
            return 1.0
        return max(0.0, 1.0 - (env_steps - self.state["solved_at"]["env_steps"]) / train_on)

    @property
    def mean(self) -> float | None:
        recent = self.state["recent"]
        return float(np.mean(recent)) if recent else None

    @property
    def greedy_mean(self) -> float | None:
        greedy = self.state["greedy_recent"]
        return float(np.mean(greedy)) if greedy and self.greedy_window else None

    def add(self, returns, env_steps: int, greedy_returns=()) -> None:
        """Episodes (and greedy-monitor episodes) finished by ``env_steps``; see the class for the stop rule."""
        state = self.state
        state["episodes"] += len(returns)
        state["recent"].extend(float(r) for r in returns)
        state["greedy_episodes"] += len(greedy_returns)
        state["greedy_recent"].extend(float(r) for r in greedy_returns)
        if self.solved or self.target is None or len(state["recent"]) < 100 or self.mean < self.target:
            return
        moment = {"env_steps": int(env_steps), "episodes": state["episodes"], "wall_seconds": self.run.elapsed()}
        if state["train_target_at"] is None:
            state["train_target_at"] = moment
        # A sliding window of the last k greedy episodes, like the training mean's last 100, not only those ended
        # after the training mean got there: requiring every monitor to end an episode after that moment cost
        # CartPole-v1 about 16 iterations (a 500-step greedy episode; +0.3 s on TensorFlow) and did not lift the
        # greedy evaluation on the Acrobot-v1 tuning seeds (measured, docs/reinforce.md).
        greedy = state["greedy_recent"]
        if self.greedy_window and (len(greedy) < self.greedy_window or self.greedy_mean < self.target):
            return
        state["solved_at"] = moment


# ----- the run -----
def open_run(cfg: Any, agent: Any, desc: str, may_change: Sequence[str], resolve: Callable[[dict], dict]) -> core.Run:
    """The run; its Scoreboard is made once inside ``with run:``, where a resumed run's counters are restored.
    ``may_change``: the flags a resumed run may change; ``resolve``: what a config's flags stand for."""
    return core.Run(
        cfg,
        agent.checkpoint_objects(),
        total=cfg.max_env_steps,
        desc=desc,
        bar_keys=["mean_return_100", "policy/loss", "value/loss"],
        checkpoint_every=cfg.checkpoint_every,
        may_change=may_change,
        resolve=resolve,
        export=agent.exported(),  # the trained networks as .keras files, at every checkpoint and at the end
    )


def defaults_of_old_checkpoints(config_cls: type, config: dict) -> dict:
    """A config saved before PPO and REINFORCE became two programs held None for "the algorithm's default": read
    it as this program's default (the same values), so such a run resumes."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    return {k: defaults[k] for k, v in config.items() if v is None and defaults.get(k) is not None}


def gymnasium_seed(run: core.Run) -> int:
    """The seed of the gymnasium environments' first reset: a resumed run cannot restore them, so their episodes
    restart from a seed of their own for the episodes counted so far."""
    return core.derive_seed(run.config.seed, "gymnasium-reset", run.state.get("episodes", 0))


def check_finite(observations, rewards, env_steps: int) -> None:
    """A rollout (ending at ``env_steps``) whose observations or rewards hold a non-finite number stops the run as a
    non-finite loss does (exit code 1, summary.json's ``stopped`` says which), naming the environment as the cause
    before any loss that the number would poison. Arrays, or their largest absolute values (the device path's)."""
    for what, values in (("observation", observations), ("reward", rewards)):
        if not np.all(np.isfinite(values)):
            raise core.NonFiniteLossError(
                f"the environment returned a non-finite {what} in the rollout ending at env step {env_steps}; "
                "stopping (the last good checkpoint is kept)"
            )


def add_episodes(board: Scoreboard, logs: dict, env_steps: int, per_iteration: int) -> None:
    """A device call's finished episodes (and its greedy monitors'), iteration by iteration so the solve is dated
    to its iteration: ``logs`` has one row per iteration; the call started at ``env_steps``."""
    for i in range(len(logs["ended"])):
        ended = logs["episode_return"][i][logs["ended"][i] > 0]
        greedy = logs["greedy_return"][i][logs["greedy_ended"][i] > 0] if "greedy_ended" in logs else ()
        board.add(ended, env_steps + (i + 1) * per_iteration, greedy)


def report(run: core.Run, board: Scoreboard, logs: dict, subrun: str | None = None) -> None:
    """TensorBoard scalars after an update (the mean over the iterations of a fused call); ``subrun``: a
    population member's own TensorBoard run."""
    scalars = {LOG_KEYS.get(k, k): float(np.mean(v)) for k, v in logs.items()}
    if board.mean is not None:
        scalars["charts/mean_return_100"] = board.mean
    run.log(scalars, subrun=subrun)


# ----- the end -----
def training_figures(
    run: core.Run, board: Scoreboard, agent: Any, target: float | None, algo: str, env_backend: str, greedy_envs: int
) -> dict:
    """The figures of the training itself: summary.json keys, evaluations and GIF still empty."""
    cfg, state, seconds = run.config, run.state, run.elapsed()
    solved = state["solved_at"] or {}
    return {
        "algo": algo,
        "env_id": cfg.env,
        "env_backend": env_backend,
        "num_envs": cfg.num_envs,
        "solved": bool(solved),
        "env_steps_to_solve": solved.get("env_steps"),
        "episodes_to_solve": solved.get("episodes"),
        "wall_seconds_to_solve": solved.get("wall_seconds"),
        "env_steps": run.step,
        "episodes": state["episodes"],
        "updates": state["updates"],
        "final_mean_return": board.mean,
        # Device PPO's greedy monitors: evaluation interactions, not training steps (not in env_steps).
        "greedy_envs": greedy_envs,
        "greedy_monitor_env_steps": state["greedy_env_steps"],
        "greedy_monitor_episodes": state["greedy_episodes"],
        "greedy_monitor_mean_return": board.greedy_mean,
        "env_steps_to_train_target": (state["train_target_at"] or {}).get("env_steps"),
        "eval_mean_return": None,
        "sampled_eval_mean_return": None,
        "env_steps_per_second": run.step / max(seconds, 1e-9),
        "target_return": target,
        "gif": None,
        "bootstrap_truncated": state.get("bootstrap_truncated"),
        "tracing_counts": {**agent.step.tracing_counts(), "sample": agent.sample.tracing_count()},
        "devices": 1,  # the agent steps on one device
    }


def finish(
    run: core.Run,
    board: Scoreboard,
    agent: Any,
    target: float | None,
    *,
    algo: str,
    env_backend: str,
    greedy_envs: int = 0,
) -> dict:
    """summary.json at once, then the evaluations and the GIF on gymnasium's own environment."""
    figures = training_figures(run, board, agent, target, algo, env_backend, greedy_envs)
    summary = run.write_summary(figures)
    state, solved = run.state, run.state["solved_at"] or {}
    if solved:
        print(
            f"solved: mean return of the last 100 episodes >= {target} after {solved['env_steps']} env steps, "
            f"{solved['episodes']} episodes, {solved['wall_seconds']:.2f} s"
        )
    elif not run.interrupted:  # an interrupted run: core.Run printed the line to resume it
        print(f"not solved within {run.config.max_env_steps} env steps (mean of the last 100: {board.mean})")
    print(
        f"trained {run.elapsed():.2f} s: {run.step} env steps ({figures['env_steps_per_second']:.0f}/s), "
        f"{state['updates']} updates, {state['episodes']} episodes"
    )
    if run.interrupted:
        return summary
    if run.config.eval_episodes:
        summary = evaluate_both_policies(run, agent)
    if run.config.gif and run.out is not None:
        summary = write_gif(run, agent) or summary
    return summary


def evaluate_both_policies(run: core.Run, agent: Any, seed: int | None = None) -> dict:
    """The greedy and the sampling policy, each over --eval-episodes episodes of the same seed, into summary.json;
    ``seed``: the run's whose episodes to play (default --seed; a population's best member's own).

    Both: the stop rule measured the sampling policy (the one trained); the greedy one (argmax) can be weaker, e.g.
    stuck for a whole Acrobot-v1 episode where argmax holds the links still."""
    cfg = run.config
    episodes_seed = core.derive_seed(cfg.seed if seed is None else seed, "eval-episodes")
    for key, policy in (("eval_mean_return", agent.greedy), ("sampled_eval_mean_return", agent.sample)):
        returns = evaluate(policy, cfg.env, cfg.eval_episodes, seed=episodes_seed)
        summary = run.write_summary({key: float(np.mean(returns))})
        print(
            f"{'greedy' if policy is agent.greedy else 'sampling'} policy on gymnasium's {cfg.env} over "
            f"{len(returns)} episodes: mean {np.mean(returns):.1f} (min {np.min(returns):.0f})"
        )
    return summary


def write_gif(run: core.Run, agent: Any, seed: int | None = None) -> dict | None:
    """One greedy episode as --out/episode.gif (and its --gif-copy), its path into summary.json; None where
    rendering is unavailable (record_gif said why). ``seed`` as for :func:`evaluate_both_policies`."""
    cfg = run.config
    episode_seed = core.derive_seed(cfg.seed if seed is None else seed, "gif-episode")
    made = record_gif(agent, cfg.env, run.out / "episode.gif", seed=episode_seed)
    if not made:
        return None
    summary = run.write_summary({"gif": str(made[0])})
    print(f"wrote {made[0]} (greedy episode, return {made[1]:.0f})")
    if cfg.gif_copy:
        try:
            Path(cfg.gif_copy).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(made[0], cfg.gif_copy)
        except OSError as e:  # checked before training, but the disk can change in between
            raise core.UsageError(f"--gif-copy {cfg.gif_copy}: cannot write it ({e.strerror or e})") from None
    return summary


if __name__ == "__main__":
    from examples.command import not_a_command

    sys.exit(not_a_command("examples.rl_run"))
