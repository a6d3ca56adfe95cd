"""PPO's ``--population``: many members (seeds, and settings of the per-member hyperparameters) trained side by side
by ``core.Population`` in one compiled call, each with its own stop rule, TensorBoard run and summary row.

The lists of ``--lr``, ``--entropy-coef`` and ``--clip-coef`` are crossed into settings (every combination, in
the order given); ``--population N`` is the number of members, N / settings seeds per setting, the same seeds
(``--seed`` onwards) for every setting, so the settings are compared on the same seeds. ``--population 1`` with
lists: one member per setting. docs/populations.md says what is vectorised and what a member costs.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import keras
import numpy as np

import core
from examples.rl_run import Scoreboard, add_episodes, check_finite, evaluate_both_policies, report, write_gif

PER_MEMBER = ("lr", "entropy_coef", "clip_coef")  # the flags a member may set for itself (held in variables)
MEMORY_SHARE = 0.5  # of the memory available now, what a population may plan to use
KERAS_OBJECTS = 2 * 2**20  # a member's own models, optimizers and step (measured: 1.3 MiB TensorFlow, 0.5 JAX)


class Member(NamedTuple):
    seed: int
    hyper: dict[str, float]  # PER_MEMBER's values

    def name(self, varied: Sequence[str]) -> str:
        """Its TensorBoard run: the seed, and the hyperparameters the population varies."""
        return "_".join([f"seed{self.seed}", *(f"{k}{self.hyper[k]:g}" for k in varied)])


def members_of(cfg: Any, on_device: bool) -> list[Member]:
    """The members ``cfg`` asks for: settings (the lists crossed) x seeds; one member for a plain run. Refuses a
    population off the device, a size that the settings do not divide, and an annealed schedule with several rates."""
    lists = {k: getattr(cfg, k) if isinstance(getattr(cfg, k), tuple) else (getattr(cfg, k),) for k in PER_MEMBER}
    settings = [dict(zip(PER_MEMBER, values)) for values in itertools.product(*lists.values())]
    size = cfg.population if cfg.population > 1 else len(settings)
    if size % len(settings):
        given = ", ".join(f"--{k.replace('_', '-')} ({len(v)} values)" for k, v in lists.items() if len(v) > 1)
        raise core.UsageError(
            f"--population {size} is not a multiple of the {len(settings)} settings of {given}: each setting runs "
            f"on the same number of seeds (give --population {len(settings)}, {2 * len(settings)}, ...)"
        )
    if size > 1 and not on_device:
        ids = ", ".join(sorted(core.DEVICE_ENV_IDS))
        raise core.UsageError(
            f"--population (and lists of {', '.join(f'--{k}' for k in PER_MEMBER).replace('_', '-')}) trains "
            f"device environments in one compiled call; {cfg.env} is stepped on gymnasium (device: {ids})"
        )
    if len(lists["lr"]) > 1 and cfg.anneal_lr:
        raise core.UsageError("--anneal-lr holds one learning rate in its schedule; several --lr values need it off")
    seeds = size // len(settings)
    return [Member(cfg.seed + i, s) for s in settings for i in range(seeds)]


def member_bytes(cfg: Any, obs_dim: int, outputs: int) -> tuple[int, int]:
    """An estimate of one member's memory: its state (its own agent's Keras objects, weights with two Adam slots and
    gradients, environment states) and the working memory of one iteration (the rollout of the training and
    monitor environments, 4x for the copies and minibatch gathers of the update). docs/populations.md compares it
    with what was measured."""
    h, envs = cfg.hidden, cfg.num_envs + cfg.greedy_envs
    weights = (obs_dim * h + h * h + h * outputs + 2 * h + outputs) + (obs_dim * h + h * h + 3 * h + 1)
    state = KERAS_OBJECTS + 4 * 4 * weights + 2 * 4 * envs * (obs_dim + 4)
    return state, 4 * 4 * cfg.rollout_steps * envs * (2 * obs_dim + 2 * outputs + 8)


def check_memory(size: int, state: int, work: int, vectorised: bool) -> None:
    """Refuse (one line, exit 2) a population whose estimated memory exceeds MEMORY_SHARE of what is available.
    ``vectorised`` (JAX): every member's working memory at once; else one member's at a time beside all states."""
    need = size * (state + work) if vectorised else size * state + work
    available = core.available_memory()
    if available is not None and need > MEMORY_SHARE * available:
        raise core.UsageError(
            f"--population {size} needs about {need / 2**30:.1f} GiB ({(state + work) / 2**20:.1f} MiB per member)"
            f"; {available / 2**30:.1f} GiB of memory is available: use fewer members or smaller rollouts"
        )


def build_population(cfg: Any, members: list[Member], build: Callable[[Any, bool], Any]) -> tuple[list, Any]:
    """Every member built as its own run builds it (its seed drawn first, then its agent), and their population."""
    entropy_term = any(m.hyper["entropy_coef"] for m in members)
    agents = []
    for m in members:
        core.seed_everything(m.seed)
        agents.append(build(dataclasses.replace(cfg, seed=m.seed, population=1, **m.hyper), entropy_term))
    return agents, core.Population(agents[0].step, [a.member_objects() for a in agents])


def train_population(
    cfg: Any, members: list[Member], build: Callable, greedy_window: int, report_every: int, run_kw: dict
) -> dict:
    """The device loop for every member at once: one compiled call steps all; each member's episodes feed its own
    Scoreboard; the run ends when every member is done (solved and trained on) or at --max-env-steps."""
    env = core.make_device_env(cfg.env)  # the memory estimate comes before anything is built
    state, work = member_bytes(cfg, env.obs_dim, 2 * env.action_dim if env.continuous else env.num_actions)
    check_memory(len(members), state, work, vectorised=keras.backend.backend() == "jax")
    agents, population = build_population(cfg, members, build)
    agent = agents[0]  # its models run the population's calls; member(i) loads member i into them
    k, per_iteration = cfg.iterations_per_call, cfg.rollout_steps * cfg.num_envs
    target = cfg.target_return if cfg.target_return is not None else env.reward_threshold
    varied = [key for key in PER_MEMBER if len({m.hyper[key] for m in members}) > 1]
    print(f"{env.env_id} on the device: {len(members)} members in one compiled call, target mean return {target}")
    best = Best(population, agent, members)
    run = core.Run(cfg, {"population": population.stacked}, total=cfg.max_env_steps, export=best.exports(),
                   desc=f"{env.env_id} x{len(members)}", bar_keys=["solved", "median_return_100"],
                   checkpoint_every=cfg.checkpoint_every, **run_kw)  # fmt: skip
    with run:
        states = run.state.setdefault("members", [{} for _ in members])
        boards = [Scoreboard(run, target, greedy_window if agent.G else 0, state) for state in states]
        best.boards = boards
        rate = np.array([m.hyper["lr"] for m in members])
        pending: list[dict] = []
        while run.running and not all(b.done(run.step, cfg.train_on) for b in boards):
            if any(b.solved for b in boards):  # each member's rates fall to 0 over --train-on after its own solve
                left = np.array([b.train_on_left(run.step, cfg.train_on) for b in boards])
                for variable in learning_rates(agent):
                    population.assign(variable, rate * left)
            logs = population.train_steps(num_steps=k) if k > 1 else expand(population.train_step())
            check_finite(logs["obs_max"], logs["reward_max"], run.step + k * per_iteration)
            for i, board in enumerate(boards):
                add_episodes(board, {key: v[i] for key, v in logs.items()}, run.step, per_iteration)
            scalars = {key: v for key, v in logs.items() if v.ndim == 2}  # (members, k): losses, KL, ...
            solved = sum(b.solved for b in boards)
            means = [b.mean for b in boards if b.mean is not None]
            run.advance(k * per_iteration, scalars, show={"solved": solved, "median_return_100": np.median(means or 0)})
            pending.append(scalars)
            if len(pending) * k >= report_every or not run.running:
                report_members(run, boards, members, varied, pending)
    return finish_population(run, boards, members, varied, best, per_iteration)


def learning_rates(agent: Any) -> list:
    """The learning-rate variables of the agent's two optimizers (a member's own, per member in a population)."""
    variables = [*agent.policy_opt.variables, *agent.value_opt.variables]
    return [v for v in variables if v.path.endswith("learning_rate")]


def report_members(run: core.Run, boards: list, members: list[Member], varied: list, pending: list[dict]) -> None:
    """Each member's TensorBoard run: the means of the pending iterations' scalars and its mean return."""
    for i, (board, member) in enumerate(zip(boards, members)):
        report(run, board, {key: [p[key][i] for p in pending] for key in pending[0]}, subrun=member.name(varied))
    pending.clear()


def expand(logs: dict) -> dict:
    """One iteration's logs (members, ...) as a fused call's (members, 1, ...)."""
    return {key: np.asarray(v)[:, None] for key, v in logs.items()}


class Best:
    """The member that evaluation, the GIF and the exported networks use: the first to solve (fewest env steps to
    the stop rule; the higher final mean breaks a tie), else, with none solved, the highest mean of its last 100."""

    def __init__(self, population: Any, agent: Any, members: list[Member]):
        self.population, self.agent, self.members = population, agent, members
        self.boards: list[Scoreboard] = []

    def index(self) -> int:
        def rank(i: int) -> tuple:
            board = self.boards[i]
            solved_at = board.state["solved_at"]["env_steps"] if board.solved else float("inf")
            return (solved_at, -(board.mean if board.mean is not None else -float("inf")), i)

        return min(range(len(self.members)), key=rank) if self.boards else 0

    def load(self) -> int:
        """The best member's values into the agent's models; its index."""
        i = self.index()
        self.population.member(i)
        return i

    def exports(self) -> dict:
        """The best member's networks as .keras files, as a single run exports its own."""

        def exported(name: str):
            self.load()
            return self.agent.exported()[name]()

        return {name: (lambda name=name: exported(name)) for name in ("policy", "value")}


def member_row(member: Member, board: Scoreboard) -> dict:
    solved = board.state["solved_at"] or {}
    return {"seed": member.seed, **member.hyper, "solved": board.solved,
            "env_steps_to_solve": solved.get("env_steps"), "wall_seconds_to_solve": solved.get("wall_seconds"),
            "episodes_to_solve": solved.get("episodes"), "episodes": board.state["episodes"],
            "final_mean_return": board.mean, "greedy_monitor_mean_return": board.greedy_mean}  # fmt: skip


def aggregate(rows: list[dict]) -> dict:
    steps = [r["env_steps_to_solve"] for r in rows if r["solved"]]
    walls = [r["wall_seconds_to_solve"] for r in rows if r["solved"]]
    return {
        "members": len(rows),
        "members_solved": len(steps),
        "solved": len(steps) == len(rows),
        "median_env_steps_to_solve": float(np.median(steps)) if steps else None,
        # The worst of every member: None while one has not solved (its steps to solve are unknown, not the budget).
        "worst_env_steps_to_solve": max(steps) if len(steps) == len(rows) else None,
        "median_wall_seconds_to_solve": float(np.median(walls)) if walls else None,
        "wall_seconds_to_all_solved": max(walls) if len(walls) == len(rows) else None,
    }


def finish_population(run: core.Run, boards: list, members: list[Member], varied: list, best: Best, per: int) -> dict:
    """summary.json (a row per member, the aggregate), the table, then the best member's evaluations and GIF."""
    rows = [member_row(m, b) for m, b in zip(members, boards)]
    seconds = run.elapsed()
    figures = {"algo": "ppo", "env_id": run.config.env, "env_backend": "device", **aggregate(rows),
               "population": rows, "varied": varied, "env_steps": run.step, "wall_seconds": seconds,
               "env_steps_per_second": run.step * len(members) / max(seconds, 1e-9), "best_member": best.index(),
               "best_member_rule": "first to solve (fewest env steps), else highest mean of the last 100",
               "eval_mean_return": None, "sampled_eval_mean_return": None, "gif": None}  # fmt: skip
    summary = run.write_summary(figures)
    print_table(rows, varied)
    print(f"{figures['members_solved']} of {len(rows)} members solved; {run.step} env steps per member, "
          f"{figures['env_steps_per_second']:.0f} env steps/s over all members, {seconds:.2f} s")  # fmt: skip
    if run.interrupted:
        return summary
    i = best.load()
    print(f"best member: {i} (seed {members[i].seed}), by {figures['best_member_rule']}")
    if run.config.eval_episodes:
        summary = evaluate_both_policies(run, best.agent, seed=members[i].seed)
    if run.config.gif and run.out is not None:
        summary = write_gif(run, best.agent, seed=members[i].seed) or summary
    return summary


def print_table(rows: list[dict], varied: list[str]) -> None:
    head = ["member", "seed", *varied, "solved", "env steps to solve", "wall s", "final mean"]
    print("  ".join(f"{h:>10}" for h in head))
    for i, r in enumerate(rows):
        wall = f"{r['wall_seconds_to_solve']:.2f}" if r["solved"] else "-"
        final = f"{r['final_mean_return']:.1f}" if r["final_mean_return"] is not None else "-"
        cells = [i, r["seed"], *(f"{r[k]:g}" for k in varied), r["solved"], r["env_steps_to_solve"] or "-", wall, final]
        print("  ".join(f"{c!s:>10}" for c in cells))


if __name__ == "__main__":
    from examples.command import not_a_command

    sys.exit(not_a_command("examples.rl_population"))
