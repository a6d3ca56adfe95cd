"""Keras' own optimizer options (gradient accumulation, EMA, clipping, a fixed loss scale, weight decay) through
update groups: one step per call, fused calls and data parallel, on this backend, against the same optimizer
applied by hand; what does not compose is refused when the step is built (docs/core.md, "Optimizer options")."""

from __future__ import annotations

import json

import keras
import pytest
from optimizer_options import OPTIONS, by_hand, max_diff, through_a_step
from test_parallel import REPO, run

TOL = 1e-6  # float32 round-off of the same arithmetic in another order (measured: at most 6e-8)
BACKEND = keras.backend.backend()


@pytest.mark.parametrize("fused", [False, True], ids=["one step per call", "fused"])
@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_an_optimizer_option_through_a_step_equals_the_optimizer_by_hand(name, mode, fused):
    kernel, slots = by_hand(OPTIONS[name])
    got, got_slots, logs = through_a_step(OPTIONS[name], mode, fused)
    assert max_diff(got, kernel) < TOL and max_diff(got_slots, slots) < TOL


@pytest.mark.parametrize("name", sorted(set(OPTIONS) - {"plain", "loss_scale_factor", "use_ema"}))
def test_each_option_changes_the_training_so_the_comparison_means_something(name):
    """(A fixed loss scale must change nothing, and use_ema only its average: the slots compared above.)"""
    assert max_diff(by_hand(OPTIONS[name])[0], by_hand({})[0]) > 1e-4


def test_a_loss_scale_factor_leaves_the_logged_loss_and_norms_unscaled():
    *_, plain = through_a_step({}, "graph", False)
    *_, scaled = through_a_step({"loss_scale_factor": 128.0}, "graph", False)
    for key in ("g/loss", "g/grad_norm"):
        assert scaled[key] == pytest.approx(plain[key], rel=1e-6)


@pytest.fixture(scope="module")
def data_parallel() -> dict:
    res = run([str(REPO / "tests" / "optimizer_options.py")], CUSTOMLOOP_CPU_DEVICES="2")
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out.pop("backend") == BACKEND
    return out


REFUSED_ON_TENSORFLOW = {"clipnorm", "global_clipnorm", "clipvalue", "gradient_accumulation_steps",
                         "ema_overwrite_frequency"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_an_optimizer_option_data_parallel_is_exact_or_refused_with_one_line(data_parallel, name):
    for key, result in data_parallel.items():
        if not key.startswith(f"{name}/"):
            continue
        if BACKEND == "tensorflow" and name in REFUSED_ON_TENSORFLOW:
            assert isinstance(result, str) and f"the optimizer's {name} does not work data parallel" in result
            assert "; use " in result and "\n" not in result
        else:
            assert isinstance(result, float) and result < 1e-5, (key, result)
