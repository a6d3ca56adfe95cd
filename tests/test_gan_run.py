"""GAN runs: learning on the ring, checkpoints and exact resume, Ctrl-C, non-finite losses, bad input, the
commands (examples.gan picks the program by --dataset) and their flags, CLI smoke."""

import json
import re
import signal
import time

import numpy as np
import pytest
from conftest import StopAfter, start_example
from keras import ops

import core
from examples import gan, gan_2d, gan_images, gan_metrics, gan_parts

# Small and quick: no learning-rate decay, so a run of N steps extended to 2N equals a run of 2N.
TINY = dict(steps=400, steps_per_call=100, checkpoint_every=200, log_every=200, num_samples=500, lr_decay=1.0)


def run(tmp_path, name, **kw):
    cfg = gan_2d.Config(**{**TINY, "out": str(tmp_path / name), **kw})
    cfg.validate()
    return gan_2d.train(cfg), tmp_path / name


def checkpoint_arrays(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files if k != "__meta__"}, json.loads(str(data["__meta__"]))


def test_short_ring_run_captures_modes_far_better_than_an_untrained_generator(tmp_path):
    cfg = gan_2d.Config(steps=2000, num_samples=1000, out=None)
    core.seed_everything(0)
    untrained = gan_2d.MixtureGAN(cfg)
    z = np.random.default_rng(1).standard_normal((1000, cfg.z_dim)).astype("float32")
    before = gan_metrics.mode_metrics(untrained.sample(z), untrained.modes_np, untrained.std)
    after = gan_2d.train(cfg)
    assert before["high_quality_fraction"] < 0.05
    assert after["modes_captured"] >= 7
    assert after["high_quality_fraction"] > 0.3
    assert after["high_quality_fraction"] > 10 * before["high_quality_fraction"]


def test_outputs_and_summary(tmp_path):
    summary, out = run(tmp_path, "a", steps=200)
    for key in (
        "dataset",
        "steps",
        "train_seconds",
        "modes_captured",
        "num_modes",
        "high_quality_fraction",
        "reverse_kl",
    ):
        assert key in summary
    assert json.loads((out / "summary.json").read_text())["steps"] == 200
    samples = np.load(out / "samples.npy")
    assert samples.shape == (500, 2) and samples.dtype == np.float32
    assert (out / "samples.png").exists() and (out / "training.gif").exists()
    assert any((out / "tb").iterdir())
    arrays, meta = checkpoint_arrays(out / "checkpoint.npz")
    assert meta["step"] == 200 and meta["config"]["dataset"] == "ring" and "rng" in meta
    # Both networks, both optimizers (their slots and counters) and the seed generator.
    assert {k.split("/")[0] for k in arrays} == {"g", "d", "g_opt", "d_opt", "seed"}


def test_checkpoint_round_trip_and_exact_resume(tmp_path):
    _, full = run(tmp_path, "full")
    run(tmp_path, "part", steps=200)
    resumed, part = run(tmp_path, "part", resume=True)
    assert resumed["steps"] == 400
    a, meta_a = checkpoint_arrays(full / "checkpoint.npz")
    b, meta_b = checkpoint_arrays(part / "checkpoint.npz")
    assert a.keys() == b.keys() and meta_a["step"] == meta_b["step"] == 400
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    np.testing.assert_array_equal(np.load(full / "samples.npy"), np.load(part / "samples.npy"))


def test_interrupted_run_resumes_to_the_same_weights_with_lr_decay(tmp_path, monkeypatch):
    _, full = run(tmp_path, "full", lr_decay=0.1)
    with monkeypatch.context() as m:
        m.setattr(core.lifecycle, "GracefulInterrupt", lambda: StopAfter(2))
        summary, part = run(tmp_path, "part", lr_decay=0.1)
    assert summary["interrupted"] and summary["steps"] == 200
    run(tmp_path, "part", lr_decay=0.1, resume=True)
    a, _ = checkpoint_arrays(full / "checkpoint.npz")
    b, _ = checkpoint_arrays(part / "checkpoint.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    _, out = run(tmp_path, "a", steps=200)
    good = (out / "checkpoint.npz").read_bytes()
    monkeypatch.setattr(gan_parts, "ns_g_loss", lambda fake: ops.mean(fake) * np.float32("nan"))
    with pytest.raises(core.NonFiniteLossError, match="became nan at step"):
        run(tmp_path, "a", resume=True)
    assert (out / "checkpoint.npz").read_bytes() == good


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "cifar"], "invalid choice"),
        (["--dataset", "folder"], "needs --data-dir"),
        (["--steps", "-3"], "--steps must be in [1, 1000000000000], got -3"),
        (["--num-samples", "0"], "--num-samples must be in [1, 1000000], got 0"),
        (["--batch-size", "255"], "not a multiple of --pack"),
        (["--dataset", "folder", "--data-dir", ".", "--image-size", "30"], "--image-size"),
        (["--dataset", "mnist", "--data-dir", "/no/such/dir"], "not a folder"),
        (["--g-lr", "0"], "--g-lr must be in (0, 10], got 0"),
        (["--seed", "-1"], "--seed must be in [0, 4294967295]"),
        (["--out", "/dev/null"], "--out /dev/null is a device, not a folder"),
        (["--resume"], "--resume needs --out"),
        (["--augment-shift", "1"], "--augment-shift is a flag of python -m examples.gan_images"),
        (["--dataset", "mnist", "--augment-shift", "14"], "under half the image size"),
        (["--dataset", "mnist", "--augment-shift", "-1"], "--augment-shift must be"),
        (["--dataset", "mnist", "--precision", "float64"], "argument --precision: invalid choice"),
        (["--beta2", "1"], "--beta2 must be in [0, 1), got 1"),
        (["--ema-decay", "1"], "--ema-decay must be in [0, 1), got 1"),  # the average would never move
        (["--g-lr", "inf"], "--g-lr must be a finite number, got inf"),
        (["--r1=-inf"], "--r1 must be a finite number"),
        (["--out", ""], "--out must not be empty"),
        (["--dataset", "mnist", "--classifier-cache", " "], "--classifier-cache must not be empty"),
        (["--dataset", "mnist", "--classifier-cache", "/dev/null"], "--classifier-cache /dev/null is a file, not a"),
        (["--d-steps", "1000000"], "--d-steps must be in [1, 100]"),
        (["--hidden", "65536"], "--hidden must be in [1, 8192]"),
        (["--dataset", "folder", "--data-dir", ".", "--conditional"], "needs labelled data (mnist)"),
        (["--conditional"], "--conditional is a flag of python -m examples.gan_images"),
        (["--dataset", "mnist", "--conditional", "--pack", "2"], "--pack is a flag of python -m examples.gan_2d"),
        (
            ["--dataset", "ring", "--epochs", "3"],
            "--epochs 3 (--epochs is a flag of python -m examples.gan_images, ",
        ),
        (["--dataset", "mnist", "--z-dim", "8"], "--z-dim is a flag of python -m examples.gan_2d"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys):
    try:
        code = gan.main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_wrong_image_files_exit_code_2(tmp_path, capsys):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"garbage!garbage!")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"garbage!garbage!")
    assert gan.main(["--dataset", "mnist", "--data-dir", str(tmp_path)]) == 2
    assert "magic number" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert gan.main(["--dataset", "folder", "--data-dir", str(empty)]) == 2
    assert "no picture files" in capsys.readouterr().err


def cli(*args):
    return start_example("gan", *args)


def test_cli_smoke_run(tmp_path):
    out = tmp_path / "smoke"
    proc = cli("--steps", "200", "--steps-per-call", "100", "--num-samples", "300", "--out", str(out))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stepping on" in stdout and "modes" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "ring" and summary["steps"] == 200 and summary["num_modes"] == 8
    assert np.load(out / "samples.npy").shape == (300, 2)


def test_cli_smoke_run_of_the_2d_program(tmp_path):
    out = tmp_path / "grid"
    argv = ["--dataset", "grid", "--steps", "100", "--steps-per-call", "50", "--num-samples", "200", "--out", str(out)]
    proc = start_example("gan_2d", *argv)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "grid" and summary["steps"] == 100 and summary["num_modes"] == 25


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    out = tmp_path / "run"
    proc = cli("--steps", "1000000", "--steps-per-call", "50", "--lr-decay", "1", "--out", str(out))
    line = proc.stdout.readline()
    assert "stepping on" in line
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, stderr  # stopped early, resumable (core/cli.py)
    assert (
        "Traceback" not in stderr
        and f"stopped by SIGINT at step {json.loads((out / 'summary.json').read_text())['steps']}" in stderr
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "SIGINT"
    assert summary["interrupted"] and 0 < summary["steps"] < 1000000 and summary["steps"] % 50 == 0
    _, meta = checkpoint_arrays(out / "checkpoint.npz")
    assert meta["step"] == summary["steps"]


def test_wgan_gp_with_several_critic_steps_per_generator_step():
    cfg = gan_2d.Config(loss="wgan-gp", d_steps=3, r1=0.0, steps=50, steps_per_call=25, num_samples=200, lr_decay=1.0)
    cfg.validate()
    core.seed_everything(0)
    model = gan_2d.MixtureGAN(cfg)
    logs = model.step.train_steps(num_steps=50)
    assert {"d/loss", "g/loss", "d/gp", "d/grad_norm", "g/grad_norm"} <= set(logs)
    assert all(np.all(np.isfinite(v)) for v in logs.values())
    # Three critic updates per generator update, all in the same call.
    assert int(model.d_opt.iterations.numpy()) == 150 and int(model.g_opt.iterations.numpy()) == 50


def test_batch_larger_than_the_folder_is_a_usage_error(tmp_path, capsys):
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i}.png")
    argv = ["--dataset", "folder", "--data-dir", str(tmp_path), "--image-size", "8", "--batch-size", "8"]
    assert gan.main(argv) == 2
    assert "exceeds the 3 images" in capsys.readouterr().err


def test_averaged_generator_is_checkpointed_and_samples_come_from_it(tmp_path):
    summary, out = run(tmp_path, "ema", steps=200, ema_decay=0.9)
    arrays, _ = checkpoint_arrays(out / "checkpoint.npz")
    assert {k.split("/")[0] for k in arrays} == {"g", "d", "g_opt", "d_opt", "seed", "g_avg"}
    g = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("g/")}
    avg = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("g_avg/")}
    assert g.keys() == avg.keys() and any(not np.array_equal(g[k], avg[k]) for k in g)
    cfg = gan_2d.Config(**{**TINY, "steps": 200, "ema_decay": 0.9})
    core.seed_everything(0)
    model = gan_2d.MixtureGAN(cfg)
    assert model.sampler is model.G_avg
    model.step.train_steps(num_steps=20)
    z = np.random.default_rng(0).standard_normal((50, cfg.z_dim)).astype("float32")
    avg_samples = model.sample(z)
    model.sampler = model.G
    assert not np.allclose(avg_samples, model.sample(z))
    raw = gan_2d.MixtureGAN(gan_2d.Config(**{**TINY, "ema_decay": 0.9, "sample_raw": True}))
    assert raw.sampler is raw.G
    assert gan_2d.MixtureGAN(gan_2d.Config(**{**TINY, "ema_decay": 0.0})).G_avg is None


def help_flags(main, argv, capsys) -> set[str]:
    """The flags a --help lists (the option column of argparse's help)."""
    assert main([*argv, "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    return {f for line in lines if line.startswith("  -") for f in re.findall(r"--[\w-]+", line.strip().split("  ")[0])}


RUN_FLAGS = {"--seed", "--out", "--resume", "--no-resume", "--mode", "--verbose", "--help"}
FLAGS_2D = {
    "--dataset", "--steps", "--batch-size", "--loss", "--d-steps", "--g-lr", "--d-lr", "--beta1", "--beta2",
    "--lr-decay", "--r1", "--r1-fraction", "--pack", "--clip-g", "--clip-d", "--z-dim", "--hidden", "--ema-decay",
    "--sample-raw", "--no-sample-raw", "--steps-per-call", "--num-samples", "--log-every", "--checkpoint-every",
    "--devices",
}  # fmt: skip
FLAGS_IMAGES = {
    "--dataset", "--data-dir", "--steps", "--epochs", "--batch-size", "--loss", "--d-steps", "--g-lr", "--d-lr",
    "--beta1", "--beta2", "--r1", "--r1-fraction", "--precision", "--augment-shift", "--ema-decay", "--conditional",
    "--no-conditional", "--steps-per-call", "--device-data-mb", "--image-size", "--channels", "--num-samples",
    "--quality", "--no-quality", "--classifier-cache", "--devices",
}  # fmt: skip


def test_each_program_lists_only_its_own_flags(capsys):
    assert help_flags(gan_2d.main, [], capsys) == FLAGS_2D | RUN_FLAGS
    assert help_flags(gan_images.main, [], capsys) == FLAGS_IMAGES | RUN_FLAGS
    # The entry module shows the chosen program's help.
    assert help_flags(gan.main, ["--dataset", "grid"], capsys) == FLAGS_2D | RUN_FLAGS
    assert help_flags(gan.main, ["--dataset", "folder"], capsys) == FLAGS_IMAGES | RUN_FLAGS
    for flag in ("--precision", "--ema-decay", "--device-data-mb", "--classifier-cache"):
        assert flag in FLAGS_IMAGES
    assert "--sample-raw" in FLAGS_2D


def test_the_entry_module_help_names_the_programs(capsys):
    assert gan.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert {line.split()[1]: line.split()[-1] for line in out.splitlines() if line.startswith("  --dataset")} == {
        "ring": "examples.gan_2d",
        "grid": "examples.gan_2d",
        "mnist": "examples.gan_images",
        "folder": "examples.gan_images",
    }
    assert "--z-dim" not in out and "--epochs" not in out


@pytest.mark.parametrize(
    "argv, program",
    [
        ([], "gan_2d"),
        (["--dataset", "grid"], "gan_2d"),
        (["--dataset=mnist"], "gan_images"),
        (["--dataset", "folder"], "gan_images"),
    ],
)
def test_the_entry_module_runs_the_program_of_the_dataset_with_every_flag(monkeypatch, argv, program):
    calls = []
    for name in ("gan_2d", "gan_images"):
        module = {"gan_2d": gan_2d, "gan_images": gan_images}[name]
        monkeypatch.setattr(module, "main", lambda a, name=name: calls.append((name, a)) or 7)
    assert gan.main([*argv, "--seed", "3"]) == 7
    assert calls == [(program, [*argv, "--seed", "3"])]  # --dataset stays: the program has it too


def test_adam_betas_follow_the_program_defaults_and_the_flags():
    images = np.zeros((8, 8, 8, 1), dtype="uint8")
    cases = [
        (gan_2d.MixtureGAN(gan_2d.Config(dataset="ring")), (0.5, 0.999)),
        (
            gan_images.ImageGAN(
                gan_images.Config(dataset="folder", image_size=8, channels=1, precision="float32"), images
            ),
            (0.0, 0.99),
        ),
        (gan_2d.MixtureGAN(gan_2d.Config(dataset="ring", beta1=0.3, beta2=0.9)), (0.3, 0.9)),
    ]
    for model, betas in cases:
        for opt in (model.g_opt, model.d_opt):
            assert (opt.beta_1, opt.beta_2) == pytest.approx(betas)
