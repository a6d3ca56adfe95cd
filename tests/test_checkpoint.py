"""Checkpoints: keys by variable path, clear mismatch errors, all-or-nothing loads, corrupt files."""

import io
import zipfile

import keras
import numpy as np
import pytest

import core
from core.checkpoint import CheckpointError


def _named_model(order=("encoder", "decoder"), seed=0):
    keras.utils.set_random_seed(seed)
    x = keras.Input((3,))
    # Same shapes: only the names tell the two layers apart.
    return keras.Model(x, [keras.layers.Dense(4, name=n)(x) for n in order])


def _mlp(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    opt = keras.optimizers.Adam(0.1)
    opt.build(model.trainable_variables)
    model.trainable_variables[0].assign(np.full((3, 4), seed, "float32"))
    return model, opt


def _values(obj):
    return [keras.ops.convert_to_numpy(v.value).copy() for v in obj.weights]


def test_round_trip_between_two_instances_built_in_one_process(tmp_path):
    # The second model's auto-generated names differ ("dense_2", "adam_1"); the keys must not.
    model, opt = _mlp(1)
    seed = keras.random.SeedGenerator(7)
    path = core.save_checkpoint(tmp_path / "c.npz", {"model": model, "opt": opt, "seed": seed}, {"step": 5})
    model2, opt2 = _mlp(2)
    seed2 = keras.random.SeedGenerator(8)
    meta = core.load_checkpoint(path, {"model": model2, "opt": opt2, "seed": seed2})
    assert meta == {"step": 5}
    for a, b in zip(_values(model), _values(model2)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(seed.state.value), keras.ops.convert_to_numpy(seed2.state.value)
    )
    with np.load(path, allow_pickle=False) as data:
        keys = data.files
    assert "model/sequential/dense/kernel" in keys and "model/sequential/dense/kernel#1" in keys
    assert "opt/adam/iteration" in keys and "seed/seed_generator/seed_generator_state" in keys


def test_reordered_named_layers_load_by_name(tmp_path):
    saved = _named_model(("encoder", "decoder"), seed=0)
    core.save_checkpoint(tmp_path / "c.npz", {"m": saved})
    reordered = _named_model(("decoder", "encoder"), seed=1)
    core.load_checkpoint(tmp_path / "c.npz", {"m": reordered})
    for name in ("encoder", "decoder"):
        for a, b in zip(saved.get_layer(name).weights, reordered.get_layer(name).weights):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value))


def test_missing_and_unexpected_names_are_listed_and_nothing_is_loaded(tmp_path):
    keras.utils.set_random_seed(0)
    x = keras.Input((3,))
    wide = keras.Model(x, [keras.layers.Dense(1, name=f"head{i}")(x) for i in range(6)])
    core.save_checkpoint(tmp_path / "c.npz", {"m": wide})
    x = keras.Input((3,))
    other = keras.Model(x, [keras.layers.Dense(1, name="head0")(x), keras.layers.Dense(1, name="tail")(x)])
    before = _values(other)
    with pytest.raises(CheckpointError) as e:
        core.load_checkpoint(tmp_path / "c.npz", {"m": other})
    message = str(e.value)
    assert str(tmp_path / "c.npz") in message
    assert "missing m/tail/kernel, m/tail/bias;" in message
    assert "unexpected m/head1/kernel, m/head1/bias, m/head2/kernel and 7 more" in message
    for a, b in zip(before, _values(other)):  # head0 fits, but nothing may be assigned
        np.testing.assert_array_equal(a, b)


def test_shape_mismatch_is_named(tmp_path):
    x = keras.Input((3,))
    core.save_checkpoint(tmp_path / "c.npz", {"m": keras.Model(x, keras.layers.Dense(2, name="out")(x))})
    x = keras.Input((3,))
    with pytest.raises(CheckpointError, match=r"shape mismatch: m/out/kernel saved \(3, 2\), variable \(3, 5\)"):
        core.load_checkpoint(tmp_path / "c.npz", {"m": keras.Model(x, keras.layers.Dense(5, name="out")(x))})


def test_objects_not_asked_for_are_ignored(tmp_path):
    model, opt = _mlp(1)
    core.save_checkpoint(tmp_path / "c.npz", {"model": model, "opt": opt})
    model2, _ = _mlp(2)
    core.load_checkpoint(tmp_path / "c.npz", {"model": model2})
    np.testing.assert_array_equal(_values(model)[0], _values(model2)[0])


def _saved_bytes(tmp_path):
    model, _ = _mlp(1)
    return core.save_checkpoint(tmp_path / "good.npz", {"model": model}, {"step": 1}).read_bytes(), model


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_truncated_file_is_a_checkpoint_error(tmp_path, cut):
    data, model = _saved_bytes(tmp_path)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match="bad.npz"):
        core.load_checkpoint(bad, {"model": model})


@pytest.mark.parametrize(
    "content",
    [b"", b"not a checkpoint at all\n" * 10, b"PK\x03\x04garbage"],
    ids=["zero-bytes", "text", "zip-magic-only"],
)
def test_a_file_that_is_no_checkpoint_is_a_checkpoint_error(tmp_path, content):
    model, _ = _mlp(1)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.npz"):
        core.load_checkpoint(bad, {"model": model})


def test_npy_and_npz_without_meta_are_checkpoint_errors(tmp_path):
    model, _ = _mlp(1)
    np.save(tmp_path / "bare.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="not an .npz archive"):
        core.load_checkpoint(tmp_path / "bare.npy", {"model": model})
    np.savez(tmp_path / "nometa.npz", x=np.zeros(3))
    with pytest.raises(CheckpointError, match="no __meta__"):
        core.load_checkpoint(tmp_path / "nometa.npz", {"model": model})


def test_corrupt_member_is_a_checkpoint_error(tmp_path):
    data, model = _saved_bytes(tmp_path)
    # Same archive, one member's .npy header overwritten: numpy cannot parse it.
    src = zipfile.ZipFile(io.BytesIO(data))
    name = next(n for n in src.namelist() if "kernel" in n)
    info = src.getinfo(name)
    raw = bytearray(data)
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 12
    raw[start : start + 16] = b"\xff" * 16
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="bad.npz"):
        core.load_checkpoint(tmp_path / "bad.npz", {"model": model})


def test_a_missing_file_stays_file_not_found(tmp_path):
    model, _ = _mlp(1)
    with pytest.raises(FileNotFoundError):
        core.load_checkpoint(tmp_path / "nope.npz", {"model": model})
