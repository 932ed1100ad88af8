"""model.save('m.keras') -> keras.models.load_model: the same predictions, and fit continues exactly
as it would have without the round trip (weights, optimizer state and random streams all restored)."""

import json
import zipfile

import numpy as np
import pytest

import tinygpt.keras as keras
from tinygpt.keras import layers, regularizers


def _continue_both(model, loaded, x, y):
    for m in (model, loaded):
        m.fit(x, y, batch_size=8, epochs=2, verbose=0)  # shuffle=True: the shuffling stream is restored too
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_sequential_round_trip_predicts_and_trains_on_identically(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 50, (48, 12)), rng.integers(0, 3, 48)
    model = keras.Sequential([
        keras.Input((12,), dtype="int64"), layers.Embedding(50, 8, embeddings_initializer="normal"),
        layers.Conv1D(6, 3, padding="same", activation="relu", kernel_regularizer=regularizers.L2(1e-3)),
        layers.MaxPooling1D(2), layers.LayerNormalization(), layers.Dropout(0.2),
        layers.GlobalMaxPooling1D(), layers.Dense(3, activation="softmax")], seed=0)
    model.compile(keras.optimizers.Adam(learning_rate=3e-3), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=["accuracy"])
    model.layers[0].trainable = False
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.layers[0].trainable is False and loaded.optimizer.iterations == model.optimizer.iterations
    assert loaded.metrics_names == model.metrics_names
    assert keras.saving.load_model(path).count_params() == model.count_params()
    _continue_both(model, loaded, x, y)
    assert [name for name in zipfile.ZipFile(path).namelist()] == [
        "tinygpt_keras_model.json", "model.weights.safetensors", "optimizer.safetensors"]


def test_functional_model_with_two_inputs_a_shared_layer_text_and_attention(tmp_path):
    texts = np.array(["the cat sat", "a dog ran far", "the dog sat", "a cat ran"] * 6, dtype=object)
    rng = np.random.default_rng(1)
    numbers = rng.normal(size=(24, 5, 4)).astype(np.float32)
    y = rng.normal(size=(24, 2)).astype(np.float32)
    vectorize = layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    vectorize.adapt(texts)
    text_in, seq_in = keras.Input((1,), dtype="string"), keras.Input((5, 4))
    shared = layers.Dense(4, activation="tanh")
    a = shared(layers.Embedding(20, 4)(vectorize(text_in)))
    b = shared(seq_in)
    h = layers.MultiHeadAttention(2, 3)(a, b, use_causal_mask=True)
    h = layers.Concatenate()([layers.GlobalAveragePooling1D()(h), layers.GlobalMaxPooling1D()(b)])
    model = keras.Model([text_in, seq_in], layers.Dense(2)(h), seed=2)
    model.compile("rmsprop", "mse")
    model.fit([texts, numbers], y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "f.keras")
    loaded = keras.models.load_model(tmp_path / "f.keras")
    np.testing.assert_array_equal(loaded.predict([texts, numbers]), model.predict([texts, numbers]))
    assert loaded.layers[[layer.name for layer in loaded.layers].index(vectorize.name)].get_vocabulary() == \
        vectorize.get_vocabulary()
    _continue_both(model, loaded, [texts, numbers], y)


@keras.saving.register_keras_serializable()
class Registered(keras.Model):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden, self.out = layers.Dense(units, activation="relu"), layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))

    def get_config(self):
        return {"units": self.units}


class Unregistered(Registered):
    pass


def test_subclassed_models_round_trip_when_their_class_is_known(tmp_path):
    x = np.random.default_rng(3).normal(size=(16, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    model = Registered(5, seed=0)
    model.compile("sgd", "mse")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "s.keras")
    loaded = keras.models.load_model(tmp_path / "s.keras")
    assert isinstance(loaded, Registered) and loaded.units == 5
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    _continue_both(model, loaded, x, y)
    other = Unregistered(4, seed=0)
    other(x)
    other.save(tmp_path / "u.keras")
    with pytest.raises(ValueError, match="class 'Unregistered'.*custom_objects"):
        keras.models.load_model(tmp_path / "u.keras")
    assert isinstance(keras.models.load_model(tmp_path / "u.keras", custom_objects={"Unregistered": Unregistered}),
                      Unregistered)


class Scaled(layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def forward(self, x):
        return layers._float_tensor(x) * self.factor


def test_custom_layers_need_custom_objects_and_a_complete_get_config(tmp_path):
    model = keras.Sequential([keras.Input((3,)), Scaled(3.0), layers.Dense(2)])
    with pytest.raises(NotImplementedError, match="Scaled 'layer' has factor=3.0, which its get_config"):
        model.save(tmp_path / "c.keras")
    Scaled.get_config = lambda self: {"factor": self.factor}
    model.save(tmp_path / "c.keras")
    with pytest.raises(ValueError, match="class 'Scaled'"):
        keras.models.load_model(tmp_path / "c.keras")
    loaded = keras.models.load_model(tmp_path / "c.keras", custom_objects={"Scaled": Scaled})
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert not loaded.compiled  # it was never compiled


def test_save_never_replaces_a_foreign_file_and_refuses_other_formats(tmp_path):
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    foreign = tmp_path / "theirs.keras"
    foreign.write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="not written by tinygpt.keras"):
        model.save(foreign)
    assert foreign.read_bytes() == b"not ours"
    with zipfile.ZipFile(tmp_path / "keras3.keras", "w") as z:  # the layout Keras' own files have
        z.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        z.writestr("model.weights.h5", b"\x89HDF")
    with pytest.raises(ValueError, match="written by Keras itself"):
        keras.models.load_model(tmp_path / "keras3.keras")
    with pytest.raises(NotImplementedError, match="HDF5"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="must end in .keras"):
        model.save(tmp_path / "m.zip")
    model.save(tmp_path / "ours.keras")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(tmp_path / "ours.keras", overwrite=False)
    model.save(tmp_path / "ours.keras")  # ours: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keras3.keras", "ours.keras", "theirs.keras"]  # no temp files


@pytest.mark.slow
def test_text_classifier_example_learns_from_raw_strings(tmp_path, capsys):
    import runpy
    import time
    from pathlib import Path
    example = Path(__file__).resolve().parent.parent / "examples" / "keras_text_classifier.py"
    main = runpy.run_path(str(example))["main"]
    start = time.perf_counter()
    accuracy = main(["--samples", "1200", "--epochs", "4", "--save", str(tmp_path / "r.keras")])
    out = capsys.readouterr().out
    assert accuracy > 0.85, out  # chance is 0.5; the default run reaches ~0.95
    assert "predicts identically" in out and "shared_embedding (Embedding)" in out
    assert (tmp_path / "r.keras").is_file()
    assert time.perf_counter() - start < 60


def test_wrappers_lookups_and_nested_models_round_trip(tmp_path):
    tokens = np.array([["a", "b", "c"], ["c", "zz", "a"]] * 4, dtype=object)
    lookup = layers.StringLookup(mask_token="[PAD]")
    lookup.adapt(tokens.reshape(-1))
    inner_in = keras.Input((3, 4))
    inner = keras.Model(inner_in, layers.TimeDistributed(layers.Dense(2))(inner_in), name="inner")
    inp = keras.Input((3,), dtype="string")
    h = layers.Embedding(6, 4)(lookup(inp))
    h = layers.Bidirectional(layers.LSTM(3, return_sequences=True), merge_mode="sum")(h)
    h = layers.Dense(4)(h)
    out = layers.GlobalAveragePooling1D()(inner(h))
    model = keras.Model(inp, out, seed=0)
    model.save(tmp_path / "w.keras")
    loaded = keras.models.load_model(tmp_path / "w.keras")
    np.testing.assert_array_equal(loaded.predict(tokens), model.predict(tokens))
    assert loaded.get_layer("inner").layers[0].layer.units == 2
    assert loaded.get_layer(lookup.name).get_vocabulary() == lookup.get_vocabulary()
