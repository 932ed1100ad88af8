"""tinygpt.checkpoint: safetensors + JSON round-trip, atomic saves, corruption detection, RNG state."""

import ast
import json
import os

import numpy as np
import pytest

from tinygpt import checkpoint
from tinygpt.checkpoint import (CheckpointError, checkpoint_path, latest_checkpoint, load_checkpoint,
                                rng_from_json, rng_state_to_json, save_checkpoint)


def _tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {"wte": rng.standard_normal((5, 3)).astype(np.float32),
            "h.0.ln_1.w": rng.standard_normal(3),  # float64
            "opt.m.wte": rng.standard_normal((5, 3)).astype(np.float32).T,  # strided view
            "step_ids": np.arange(4, dtype=np.int64), "mask": np.array([True, False]),
            "scalar": np.array(2.5, dtype=np.float32), "empty": np.zeros((0, 4), dtype=np.int32)}


META = {"config": {"n_layer": 2, "n_head": 2, "n_embd": 3, "block_size": 8, "bias": True, "dropout": 0.0},
        "optimizer": {"name": "adamw", "lr": 3e-4, "betas": [0.9, 0.95], "t": 17},
        "schedule": {"warmup": 10, "min_lr": None}, "step": 17, "data": {"next_start": 4096},
        "note": "ünïcode ok"}


def _assert_same(tensors, loaded):
    assert set(tensors) == set(loaded)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)


def test_checkpoint_round_trips_arrays_and_nested_meta(tmp_path):
    tensors = _tensors()
    json_path = save_checkpoint(checkpoint_path(tmp_path, 17), tensors, META)
    assert json_path == tmp_path / "ckpt_000017.json" and (tmp_path / "ckpt_000017.safetensors").is_file()
    for path in (json_path, tmp_path / "ckpt_000017", tmp_path / "ckpt_000017.safetensors", tmp_path):
        loaded, meta = load_checkpoint(path)
        _assert_same(tensors, loaded)
        assert meta == META
    assert loaded["wte"].flags.writeable  # a resumed run updates parameters in place
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_save_into_an_existing_directory_uses_ckpt_else_the_path_is_a_stem(tmp_path):
    assert save_checkpoint(tmp_path / "run" / "best", {"w": np.ones(2)}, {}) == tmp_path / "run" / "best.json"
    assert save_checkpoint(tmp_path / "run", {"w": np.ones(2)}, {}) == tmp_path / "run" / "ckpt.json"
    (tmp_path / "run2").mkdir()
    assert save_checkpoint(tmp_path / "run2", {}, {"step": 0}) == tmp_path / "run2" / "ckpt.json"
    assert load_checkpoint(tmp_path / "run2") == ({}, {"step": 0})


def test_rng_state_survives_a_checkpoint_and_draws_identically(tmp_path):
    generators = {"pcg": np.random.default_rng(123), "philox": np.random.Generator(np.random.Philox(5)),
                  "legacy": np.random.RandomState(7)}
    generators["legacy"].standard_normal()  # leaves a cached second Gaussian in the state
    for g in generators.values():
        g.random(3)
    meta = {"rng": {name: rng_state_to_json(g) for name, g in generators.items()}}
    save_checkpoint(tmp_path / "c", {}, meta)
    restored = {name: rng_from_json(state) for name, state in load_checkpoint(tmp_path / "c")[1]["rng"].items()}
    assert restored["pcg"].bit_generator.state["state"]["state"] > 2**64  # a 128-bit int came back exact
    for name, g in generators.items():
        assert type(restored[name]) is type(g)
        np.testing.assert_array_equal(restored[name].standard_normal(5), g.standard_normal(5), err_msg=name)
        np.testing.assert_array_equal(restored[name].integers(0, 2**62, 4) if name != "legacy"
                                      else restored[name].randint(0, 2**30, 4),
                                      g.integers(0, 2**62, 4) if name != "legacy" else g.randint(0, 2**30, 4))


def test_rng_from_json_rejects_garbage():
    with pytest.raises(ValueError, match="rng_state_to_json"):
        rng_from_json({"kind": "Dice"})
    with pytest.raises(ValueError, match="unknown bit generator 'os.system'"):
        rng_from_json({"kind": "Generator", "state": {"bit_generator": "os.system"}})
    with pytest.raises(TypeError, match="got int"):
        rng_state_to_json(42)


def test_crash_before_replace_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    old = _tensors(0)
    save_checkpoint(tmp_path / "ckpt", old, {"step": 1})

    def crash(src, dst):
        raise OSError("simulated power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        save_checkpoint(tmp_path / "ckpt", _tensors(1), {"step": 2})
    monkeypatch.undo()
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    _assert_same(old, loaded)
    assert meta == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.json", "ckpt.safetensors"]  # temps removed


def test_disk_full_names_the_file_and_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    import errno
    old = _tensors(0)
    save_checkpoint(tmp_path / "ckpt", old, {"step": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"no space left to write .*ckpt\.safetensors \([\d,]+ bytes\); "
                                      r"ckpt\.safetensors is unchanged if it existed, and earlier "
                                      r"checkpoints are intact"):
        save_checkpoint(tmp_path / "ckpt", _tensors(1), {"step": 2})
    monkeypatch.undo()
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    _assert_same(old, loaded)
    assert meta == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.json", "ckpt.safetensors"]


def test_crash_between_the_two_files_is_detected_not_half_loaded(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "ckpt", _tensors(0), {"step": 1})
    real_replace, calls = os.replace, []

    def crash_on_json(src, dst):
        calls.append(dst)
        if str(dst).endswith(".json"):
            raise OSError("simulated power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_json)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "ckpt", _tensors(1), {"step": 2})
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="does not match the SHA-256 in ckpt.json"):
        load_checkpoint(tmp_path / "ckpt")


def test_corruption_is_detected(tmp_path):
    json_path = save_checkpoint(tmp_path / "ckpt", _tensors(), META)
    arrays = tmp_path / "ckpt.safetensors"
    blob = arrays.read_bytes()

    arrays.write_bytes(blob[:-10])
    with pytest.raises(CheckpointError, match=r"ckpt.safetensors has \d+ bytes, ckpt.json recorded \d+: truncated"):
        load_checkpoint(json_path)

    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01
    arrays.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        load_checkpoint(json_path)

    # A bad header whose hash was recorded anyway (e.g. written by a buggy tool) is still refused.
    bad = b"\xff" * 20
    record = json.loads(json_path.read_text())
    record.update(tensors_bytes=len(bad), tensors_sha256=__import__("hashlib").sha256(bad).hexdigest())
    json_path.write_text(json.dumps(record))
    arrays.write_bytes(bad)
    with pytest.raises(CheckpointError, match="bad safetensors header"):
        load_checkpoint(json_path)

    json_path.write_text('{"format": "tinygpt-checkpoint", "vers')
    with pytest.raises(CheckpointError, match="ckpt.json is not valid JSON"):
        load_checkpoint(json_path)

    json_path.unlink()
    with pytest.raises(CheckpointError, match="ckpt.json is missing"):
        load_checkpoint(tmp_path / "ckpt")


def test_missing_arrays_file_and_wrong_format(tmp_path):
    save_checkpoint(tmp_path / "ckpt", {"w": np.ones(3)}, {})
    (tmp_path / "ckpt.safetensors").unlink()
    with pytest.raises(CheckpointError, match="ckpt.safetensors named by ckpt.json is missing"):
        load_checkpoint(tmp_path / "ckpt")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(CheckpointError, match="not a tinygpt checkpoint record"):
        load_checkpoint(tmp_path / "other.json")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "empty_run")


def test_save_rejects_what_json_or_safetensors_would_mangle(tmp_path):
    with pytest.raises(TypeError, match=r"meta\['optimizer'\]\['lr'\] is a NumPy scalar"):
        save_checkpoint(tmp_path / "c", {}, {"optimizer": {"lr": np.float32(1e-3)}})
    with pytest.raises(TypeError, match=r"meta\['schedule'\] has key 1 of type int"):
        save_checkpoint(tmp_path / "c", {}, {"schedule": {1: 0.5}})
    with pytest.raises(TypeError, match=r"meta\['m'\] is an array of shape \(2,\); put arrays in tensors"):
        save_checkpoint(tmp_path / "c", {}, {"m": np.zeros(2)})
    with pytest.raises(TypeError, match=r"tensors\['w'\] must be a np.ndarray, got list"):
        save_checkpoint(tmp_path / "c", {"w": [1.0]}, {})
    with pytest.raises(TypeError, match=r"tensors\['s'\] has dtype <U1"):
        save_checkpoint(tmp_path / "c", {"s": np.array(["a"])}, {})
    assert not (tmp_path / "c.json").exists() and not (tmp_path / "c.safetensors").exists()


def test_latest_checkpoint_picks_the_highest_complete_step(tmp_path):
    assert latest_checkpoint(tmp_path) is None and latest_checkpoint(tmp_path / "absent") is None
    save_checkpoint(tmp_path, {}, {"step": "rolling"})
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt.json"
    for step in (9, 1000, 120):
        save_checkpoint(checkpoint_path(tmp_path, step), {"w": np.full(2, step)}, {"step": step})
    (tmp_path / "ckpt_002000.safetensors").write_bytes(b"torn")  # its JSON never landed
    (tmp_path / ".ckpt_003000.json.abc.tmp").write_text("{}")
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt_001000.json"
    assert load_checkpoint(tmp_path)[1] == {"step": 1000}
    with pytest.raises(ValueError, match="step must be None or an int >= 0"):
        checkpoint_path(tmp_path, -1)


def test_checkpoint_module_never_uses_pickle():
    tree = ast.parse(open(checkpoint.__file__, encoding="utf-8").read())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names} | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {"pickle", "cPickle", "dill", "joblib"} & imported
    assert "allow_pickle" not in ast.unparse(tree) and not imported - {
        "errno", "hashlib", "json", "os", "re", "secrets", "pathlib", "Path", "numpy", "safetensors", "SafetensorError",
        "safetensors.numpy", "load", "save"}, imported  # and nothing from the rest of tinygpt
