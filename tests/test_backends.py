"""TensorFlow and JAX agree on the same initial weights and inputs (each run in its own process)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

PROBE = Path(__file__).with_name("backend_probe.py")


def _probe(backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(PROBE.parents[1])}
    res = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["backend"] == backend
    return out


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_tensorflow_and_jax_agree():
    tf_out, jax_out = _probe("tensorflow"), _probe("jax")
    np.testing.assert_allclose(tf_out["sum"]["loss"], jax_out["sum"]["loss"], rtol=1e-5)
    for a, b in zip(tf_out["sum"]["weights"], jax_out["sum"]["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("enc_loss", "head_loss"):
        np.testing.assert_allclose(tf_out["bn"][key], jax_out["bn"][key], rtol=1e-4)
    for a, b in zip(tf_out["bn"]["weights"], jax_out["bn"]["weights"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # BatchNormalization's moving mean (a non-trainable variable written inside the loss) moved on both
    moving_mean = 4  # enc.weights: kernel, bias, gamma, beta, moving_mean, moving_variance
    assert np.abs(jax_out["bn"]["weights"][moving_mean]).sum() > 0
