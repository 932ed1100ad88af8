"""tinygpt.keras save_weights / load_weights on disk, and fit's argument checks.

Oracles: the directory listing before and after a save (exactly the two files the path names,
nothing replaced that tinygpt did not write, bytes of unrelated files unchanged), the same model
reloaded predicting bit-for-bit the same, and the umask's arithmetic (0o666 & ~umask) for modes.
"""

import json
import os
import stat
import warnings

import numpy as np
import pytest

import tinygpt.keras
from tinygpt.keras.layers import LSTM, Dense, Embedding


def tiny_model(seed=0):
    return tinygpt.keras.Sequential([Embedding(10, 4, input_length=5), LSTM(6),
                                     Dense(10, activation="softmax")], seed=seed)


X = np.random.default_rng(0).integers(0, 10, (7, 5))


def listing(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def save_quietly(model, path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return model.save_weights(path, **kwargs)


@pytest.mark.parametrize("given, written", [
    ("model.weights.h5", {"model.weights.safetensors", "model.weights.json"}),
    ("w.h5", {"w.safetensors", "w.json"}),
    ("w.keras", {"w.safetensors", "w.json"}),
    ("w.safetensors", {"w.safetensors", "w.json"}),
    ("w.json", {"w.safetensors", "w.json"}),
    ("run.v2", {"run.v2.safetensors", "run.v2.json"}),
    ("plain", {"plain.safetensors", "plain.json"}),
])
def test_save_weights_writes_exactly_the_pair_its_path_names_and_load_reads_it(tmp_path, given, written):
    model = tiny_model()
    save_quietly(model, tmp_path / given)
    assert set(listing(tmp_path)) == written  # no temp files left, nothing else
    fresh = tiny_model(seed=1)
    assert not np.array_equal(fresh.predict(X), model.predict(X))
    fresh.load_weights(tmp_path / given)
    np.testing.assert_array_equal(fresh.predict(X), model.predict(X))


def test_save_weights_leaves_an_unrelated_model_json_bit_identical(tmp_path):
    unrelated = b'{"architectures": ["SomethingElse"], "hidden_size": 768}\n'
    (tmp_path / "model.json").write_bytes(unrelated)
    model = tiny_model()
    save_quietly(model, tmp_path / "model.weights.h5")
    after = listing(tmp_path)
    assert set(after) == {"model.json", "model.weights.safetensors", "model.weights.json"}
    assert after["model.json"] == unrelated


@pytest.mark.parametrize("foreign", [
    b'{"architectures": ["SomethingElse"]}\n',                      # someone else's JSON
    b"not json at all",
    json.dumps({"format": "tinygpt-checkpoint", "version": 1, "meta": {"step": 3}}).encode(),  # a train.py ckpt
])
def test_save_weights_refuses_to_replace_a_json_it_did_not_write(tmp_path, foreign):
    (tmp_path / "model.json").write_bytes(foreign)
    before = listing(tmp_path)
    for overwrite in (True, False):
        with pytest.raises(FileExistsError, match=r"model\.json"):
            save_quietly(tiny_model(), tmp_path / "model.h5", overwrite=overwrite)
        assert listing(tmp_path) == before  # no model.safetensors written either


def test_save_weights_refuses_to_replace_a_lone_safetensors(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"someone's arrays")
    before = listing(tmp_path)
    with pytest.raises(FileExistsError, match=r"model\.safetensors exists without the model\.json"):
        tiny_model().save_weights(tmp_path / "model.safetensors")
    assert listing(tmp_path) == before


def test_save_weights_overwrite_false_refuses_and_true_replaces_its_own_files(tmp_path):
    path = tmp_path / "w.safetensors"
    first, second = tiny_model(seed=0), tiny_model(seed=1)
    first.save_weights(path)
    before = listing(tmp_path)
    with pytest.raises(FileExistsError, match=r"w\.safetensors exists.*overwrite=False"):
        second.save_weights(path, overwrite=False)
    assert listing(tmp_path) == before
    (tmp_path / "w.safetensors").unlink()  # the .json alone is also a target that exists
    with pytest.raises(FileExistsError, match=r"w\.json exists.*overwrite=False"):
        second.save_weights(path, overwrite=False)
    second.save_weights(path)  # overwrite=True is the default, as in Keras
    loaded = tiny_model(seed=2)
    loaded.load_weights(path)
    np.testing.assert_array_equal(loaded.predict(X), second.predict(X))


def test_save_weights_to_a_directory_says_to_give_a_file_path(tmp_path):
    with pytest.raises(IsADirectoryError, match="model.weights.h5"):
        tiny_model().save_weights(tmp_path)


def test_save_weights_warns_once_naming_the_files_written_unless_safetensors(tmp_path):
    model = tiny_model()
    with pytest.warns(UserWarning) as caught:
        model.save_weights(tmp_path / "model.weights.h5")
    assert len(caught) == 1
    text = str(caught[0].message)
    assert str(tmp_path / "model.weights.safetensors") in text and str(tmp_path / "model.weights.json") in text
    assert "never HDF5" in text and caught[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save_weights(tmp_path / "model.safetensors")  # what it says is what it writes: no warning


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_files_get_the_mode_the_umask_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        tiny_model().save_weights(tmp_path / "w.safetensors")
    finally:
        os.umask(old)
    for name in ("w.safetensors", "w.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_an_interrupted_save_leaves_the_previous_pair_and_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    tiny_model(seed=0).save_weights(path)
    before = listing(tmp_path)

    def crash(src, dst):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        tiny_model(seed=1).save_weights(path)
    monkeypatch.undo()
    assert listing(tmp_path) == before


def test_load_weights_points_at_files_an_earlier_version_wrote(tmp_path):
    save_quietly(tiny_model(), tmp_path / "m.h5")  # m.json + m.safetensors: the old name for m.weights.h5
    with pytest.raises(FileNotFoundError, match=r"m\.weights\.json.*m\.json.*earlier tinygpt.*rename"):
        tiny_model().load_weights(tmp_path / "m.weights.h5")


# ----- fit's arguments ----------------------------------------------------------------------------
def compiled_tiny():
    model = tiny_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": -1}, r"epochs must be an int >= 0.*got -1"),
    ({"epochs": 2.5}, r"epochs must be an int >= 0.*got 2.5"),
    ({"epochs": True}, r"epochs must be an int >= 0.*got True"),
    ({"initial_epoch": -1}, r"initial_epoch must be an int >= 0.*got -1"),
    ({"batch_size": 0}, r"batch_size must be an int >= 1.*got 0"),
    ({"batch_size": -4}, r"batch_size must be an int >= 1.*got -4"),
])
def test_fit_rejects_nonsense_epochs_and_batch_size_naming_them(kwargs, message):
    model = compiled_tiny()
    with pytest.raises(ValueError, match=message):
        model.fit(X, X[:, 0], verbose=0, **kwargs)


def test_fit_with_zero_epochs_trains_nothing_as_keras_does():
    model = compiled_tiny()
    model.build((None, 5))
    before = model.get_weights()
    history = model.fit(X, X[:, 0], epochs=0, verbose=0)
    assert history.history.get("loss", []) == []
    for now, then in zip(model.get_weights(), before):
        np.testing.assert_array_equal(now, then)
