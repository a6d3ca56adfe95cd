"""The issue's quality bars on one seed per dataset, at the default settings (slow: about a minute each)."""

import pytest

from examples import gan_2d


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["ring", "grid"])
def test_default_run_meets_the_quality_bar(dataset):
    cfg = gan_2d.Config(dataset=dataset, seed=0)
    cfg.validate()
    summary = gan_2d.train(cfg)
    assert summary["modes_captured"] == summary["num_modes"]
    assert summary["reverse_kl"] <= 0.05
    assert summary["high_quality_fraction"] >= (0.9 if dataset == "ring" else 0.8)
    assert summary["train_seconds"] < 180
