"""core.Population: every member of a population steps exactly as its own run would (seed, learning rate), in
one compiled call per step or per fused call, on both backends; checkpoints of a whole population resume exactly."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

import core

SETTINGS = [(0, 0.01), (1, 0.05), (2, 0.001)]  # (seed, learning rate) of each member
STEPS = 5
_rng = np.random.default_rng(0)
X = _rng.normal(size=(len(SETTINGS), STEPS, 8, 3)).astype("float32")
Y = _rng.normal(size=(len(SETTINGS), STEPS, 8, 1)).astype("float32")


def build(seed: int, lr: float, hidden: int = 4, mode: str = "graph"):
    """One member as its own run builds it: weights from its seed, noise from its own seed generator."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(hidden, activation="tanh"), keras.layers.Dense(1)])
    optimizer, seed_gen = keras.optimizers.Adam(lr), keras.random.SeedGenerator(seed)

    def loss(batch):
        noise = 0.01 * keras.random.normal(ops.shape(batch["y"]), seed=seed_gen)
        return ops.mean(ops.square(model(batch["x"]) - batch["y"] - noise))

    inputs = {"x": core.InputSpec((None, 3)), "y": core.InputSpec((None, 1))}
    step = core.make_step([core.UpdateGroup("g", loss, model.trainable_variables, optimizer)], inputs, mode=mode)
    return step, {"model": model, "optimizer": optimizer, "seed": seed_gen}


def weights(objects) -> list[np.ndarray]:
    return [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in objects["model"].weights]


def own_runs(mode: str) -> list[tuple[list, float]]:
    """Each member's own run: its weights and last loss after STEPS steps."""
    runs = []
    for j, (seed, lr) in enumerate(SETTINGS):
        step, objects = build(seed, lr, mode=mode)
        loss = [step.train_step({"x": X[j, t], "y": Y[j, t]}) for t in range(STEPS)][-1]["g/loss"]
        runs.append((weights(objects), loss))
    return runs


def population(mode: str = "graph", settings=SETTINGS) -> tuple[core.Population, dict]:
    members = [build(seed, lr, mode=mode) for seed, lr in settings]
    return core.Population(members[0][0], [objects for _, objects in members]), members[0][1]


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
@pytest.mark.parametrize("fused", [False, True], ids=["one step per call", "fused"])
def test_every_member_equals_its_own_run(mode, fused):
    expected = own_runs(mode)
    pop, first = population(mode)
    if fused:
        losses = pop.train_steps({"x": X, "y": Y})["g/loss"][:, -1]
    else:
        losses = [pop.train_step({"x": X[:, t], "y": Y[:, t]}) for t in range(STEPS)][-1]["g/loss"]
    for j, (own_weights, own_loss) in enumerate(expected):
        pop.member(j)
        for got, want in zip(weights(first), own_weights):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)  # measured: equal bit for bit
        assert losses[j] == pytest.approx(own_loss, rel=1e-6)
    assert len({round(float(loss), 6) for loss in losses}) == len(SETTINGS)  # the members really differ


def test_a_whole_population_checkpoints_and_resumes_exactly(tmp_path):
    pop, _ = population()
    pop.train_steps({"x": X[:, :2], "y": Y[:, :2]})
    core.save_checkpoint(tmp_path / "c.npz", {"population": pop.stacked})
    pop.train_steps({"x": X[:, 2:], "y": Y[:, 2:]})
    resumed, _ = population()
    core.load_checkpoint(tmp_path / "c.npz", {"population": resumed.stacked})
    resumed.train_steps({"x": X[:, 2:], "y": Y[:, 2:]})
    for j in range(len(SETTINGS)):
        for key, value in pop.member_values(j).items():
            np.testing.assert_array_equal(resumed.member_values(j)[key], value, err_msg=key)


def test_members_that_differ_in_shape_or_inputs_for_another_count_are_refused():
    (step, first), (_, other) = build(0, 0.01), build(1, 0.01, hidden=5)
    with pytest.raises(core.StepDefinitionError, match="member 1: .* is \\(3, 5\\)"):
        core.Population(step, [first, other])
    pop, _ = population()
    with pytest.raises(core.InputError, match="expected 3 members on axis 0"):
        pop.train_step({"x": X[:2, 0], "y": Y[:2, 0]})
    with pytest.raises(IndexError):
        pop.member(3)


def test_a_member_hyperparameter_held_in_a_variable_changes_per_member_without_a_retrace():
    pop, first = population()
    pop.train_step({"x": X[:, 0], "y": Y[:, 0]})
    # a float learning rate is a variable of the optimizer
    rate = next(v for v in first["optimizer"].variables if v.path.endswith("learning_rate"))
    np.testing.assert_allclose(pop.values(rate), [lr for _, lr in SETTINGS], rtol=1e-6)
    pop.assign(rate, [0.0, 0.0, 0.0])  # frozen members: one more step changes no weight
    before = [pop.member_values(j) for j in range(len(SETTINGS))]
    pop.train_step({"x": X[:, 1], "y": Y[:, 1]})
    for j in range(len(SETTINGS)):
        after = pop.member_values(j)
        for key, value in before[j].items():
            if "/dense" in key and "optimizer" not in key:
                np.testing.assert_array_equal(after[key], value, err_msg=key)
    assert pop.tracing_counts()["train_step"] in (1, None)
    with pytest.raises(KeyError):
        pop.values(keras.Variable(1.0))
