"""keras.Input / keras.Model (functional and subclassed) and layer.trainable = False."""

import numpy as np
import pytest

import tinygpt.keras as keras
from tinygpt.keras.layers import LSTM, Add, Concatenate, Dense, Embedding


def _two_input_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10, size=(n, 6))
    b = rng.integers(0, 10, size=(n, 6))
    y = ((a.sum(1) - b.sum(1)) > 0).astype(np.float32)[:, None]
    return a, b, y


def _shared_embedding_model():
    a = keras.Input(shape=(6,), dtype="int32", name="a")
    b = keras.Input(shape=(6,), dtype="int32", name="b")
    emb = Embedding(10, 8, seed=0)  # shared: both inputs go through the same weights
    lstm = LSTM(8, seed=1)
    joined = Concatenate()([lstm(emb(a)), lstm(emb(b))])
    out = Dense(1, activation="sigmoid", seed=2)(joined)
    return keras.Model(inputs=[a, b], outputs=out, seed=3), emb, lstm


def test_trainable_false_embedding_is_bit_identical_through_fit():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, size=(48, 5)), rng.integers(0, 3, size=48)
    emb = Embedding(20, 4, seed=0)
    model = keras.Sequential([emb, LSTM(6, seed=1), Dense(3, activation="softmax", seed=2)], seed=0)
    model.build((None, 5))
    emb.trainable = False
    before, dense_before = emb.get_weights()[0].copy(), model.layers[2].get_weights()[0].copy()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert np.array_equal(emb.get_weights()[0], before)
    assert not np.array_equal(model.layers[2].get_weights()[0], dense_before)  # the others did train
    assert [id(p) for p in model.non_trainable_weights] == [id(emb.embedding.weight)]
    assert len(model.trainable_weights) == 3 + 2
    lines = []
    model.summary(print_fn=lines.append)
    assert "Non-trainable params: 80 (" in lines[0]


def test_trainable_false_on_a_nested_model_freezes_its_layers():
    inner_in = keras.Input(shape=(3,))
    inner = keras.Model(inner_in, Dense(4, seed=0)(inner_in), name="inner")
    x_in = keras.Input(shape=(3,))
    outer = keras.Model(x_in, Dense(1, seed=1)(inner(x_in)))
    inner.trainable = False
    before = inner.get_weights()
    outer.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((32, 3))
    outer.fit(x, x[:, :1], epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(inner.get_weights(), before))
    assert len(outer.non_trainable_weights) == 2 and len(outer.trainable_weights) == 2


def test_functional_two_inputs_shared_layer_trains_and_matches_hand_forward():
    model, emb, lstm = _shared_embedding_model()
    assert [layer.name for layer in model.layers] == ["embedding", "lstm", "concatenate", "dense"]
    a, b, y = _two_input_data()
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit([a, b], y, epochs=10, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 0.05, losses
    # the hand-composed forward, with the same (trained) layers, outside the Model
    dense = model.layers[3]
    ha, hb = lstm(emb(a)).data, lstm(emb(b)).data
    z = np.concatenate([ha, hb], axis=1) @ dense.get_weights()[0] + dense.get_weights()[1]
    expected = 1.0 / (1.0 + np.exp(-z))
    np.testing.assert_allclose(model.predict([a, b]), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict({"a": a, "b": b}), expected, rtol=1e-5, atol=1e-6)
    loss, acc = model.evaluate([a, b], y)
    assert 0.0 <= acc <= 1.0 and loss > 0.0


def test_functional_several_outputs_and_a_model_used_as_a_layer():
    x_in = keras.Input(shape=(4,), name="x")
    trunk_in = keras.Input(shape=(4,))
    trunk = keras.Model(trunk_in, Dense(5, activation="tanh", seed=0)(trunk_in), name="trunk")
    h = trunk(x_in)
    out1 = Dense(1, seed=1, name="reg")(h)
    out2 = Dense(3, activation="softmax", seed=2, name="cls")(Add()([h, trunk(x_in)]))
    model = keras.Model(x_in, [out1, out2])
    assert model.output_names == ["reg", "cls"]
    assert model.get_layer("cls") is model.layers[-1] and model.get_layer(index=0) is trunk
    with pytest.raises(ValueError, match="no layer named 'nope'.*'reg'"):
        model.get_layer("nope")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y1, y2 = x.sum(1, keepdims=True), rng.integers(0, 3, size=40)
    model.compile(optimizer="adam", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"})
    first = model.evaluate(x, [y1, y2])
    model.fit(x, {"reg": y1, "cls": y2}, epochs=20, batch_size=8, verbose=0)
    assert model.evaluate(x, [y1, y2]) < first
    p1, p2 = model.predict(x)
    hx = np.tanh(x @ trunk.get_weights()[0] + trunk.get_weights()[1])
    w1, b1 = model.layers[1].get_weights()
    np.testing.assert_allclose(p1, hx @ w1 + b1, rtol=1e-4, atol=1e-5)
    assert p2.shape == (40, 3)
    loss_sum = model.evaluate(x, [y1, y2])
    model.compile(optimizer="adam", loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[2.0, 0.0])
    mse = float(np.mean((p1 - y1) ** 2))
    assert model.evaluate(x, [y1, y2]) == pytest.approx(2.0 * mse, rel=1e-4)
    assert loss_sum > mse
    np.testing.assert_allclose(p2.sum(1), 1.0, rtol=1e-5)


def test_functional_summary_columns_fit_long_names():
    x_in = keras.Input(shape=(4,), name="x")
    long_name = "a_dense_layer_with_a_very_long_descriptive_name"
    model = keras.Model(x_in, Dense(2, name=long_name)(x_in))
    lines = []
    model.summary(print_fn=lines.append)
    row = next(line for line in lines[0].splitlines() if long_name in line)
    assert f"{long_name} (Dense)" in row and "(None, 2)" in row and row.split()[-1] == "x"
    assert "Connected to" in lines[0] and "Total params: 10 (" in lines[0]


def test_subclassed_model_with_call_trains():
    class TwoLayer(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = Dense(8, activation="relu", seed=0)
            self.out = Dense(1, seed=1)

        def call(self, x, training=False):
            return self.out(self.hidden(x))

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]])).astype(np.float32)
    model = TwoLayer()
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    h = np.maximum(x @ model.hidden.get_weights()[0] + model.hidden.get_weights()[1], 0)
    np.testing.assert_allclose(model.predict(x), h @ model.out.get_weights()[0] + model.out.get_weights()[1],
                               rtol=1e-5, atol=1e-6)
    assert model.count_params() == 3 * 8 + 8 + 8 + 1


def test_subclassed_model_trains_layers_kept_in_a_list():
    class Stack(keras.Model):
        def __init__(self):
            super().__init__()
            self.blocks = [Dense(4, activation="tanh", seed=0), Dense(1, seed=1)]

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    model = Stack()
    x = np.random.default_rng(0).standard_normal((32, 3)).astype(np.float32)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    before = model.get_weights()
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    assert len(model.trainable_weights) == 4
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_functional_errors_name_the_problem():
    a, b = keras.Input(shape=(3,), name="a"), keras.Input(shape=(3,), name="b")
    out = Add()([a, b])
    with pytest.raises(ValueError, match="disconnected.*'b'"):
        keras.Model(a, out)
    with pytest.raises(NotImplementedError, match="arithmetic on symbolic"):
        a + b
    with pytest.raises(NotImplementedError, match="Sequential"):
        keras.Sequential([Dense(2)])(a)
    with pytest.raises(NotImplementedError, match="initial_state.*not supported"):
        LSTM(3)(keras.Input(shape=(4, 3)), initial_state=[a, b])
    model = keras.Model([a, b], out)
    with pytest.raises(ValueError, match="holds 1 arrays.*2 inputs"):
        model.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="without the inputs \\['b'\\]"):
        model.predict({"a": np.zeros((2, 3))})


def test_functional_softmax_output_fuses_with_crossentropy_like_sequential():
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, size=16)
    seq = keras.Sequential([keras.Input(shape=(3,)), Dense(3, activation="softmax", seed=0)])
    x_in = keras.Input(shape=(3,))
    fun = keras.Model(x_in, Dense(3, activation="softmax", seed=0)(x_in))
    big = [w * 200.0 for w in seq.get_weights()]  # saturated softmax: probabilities hit 0
    for model in (seq, fun):
        model.set_weights(big)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    loss_seq, loss_fun = seq.evaluate(x, y), fun.evaluate(x, y)
    assert loss_fun == pytest.approx(loss_seq, rel=1e-6)
    assert loss_fun > -np.log(1e-7)  # the logits path: not capped by clipping probabilities
    np.testing.assert_allclose(fun.predict(x), seq.predict(x), rtol=1e-6)


def test_functional_encoder_decoder_with_return_state_matches_direct_layer_calls():
    from tinygpt.keras import layers, models
    assert models.Model is keras.Model
    enc_in = keras.Input(shape=(6, 3))
    encoder = layers.LSTM(5, return_state=True, seed=0)
    repeat, decoder = layers.RepeatVector(4), layers.LSTM(5, return_sequences=True, seed=1)
    head = layers.TimeDistributed(Dense(2, seed=2))
    _, h, c = encoder(enc_in)
    model = keras.Model(enc_in, [head(decoder(repeat(h))), c])
    x = np.random.default_rng(0).random((10, 6, 3)).astype(np.float32)
    y_seq, y_c = model.predict(x)
    _, h_direct, c_direct = encoder(x)
    np.testing.assert_allclose(y_seq, head(decoder(repeat(h_direct))).data, rtol=1e-6)
    np.testing.assert_allclose(y_c, c_direct.data, rtol=1e-6)
    seq = keras.Sequential([layers.InputLayer(input_shape=(4,)), Dense(2)])
    assert seq.output_shape == (None, 2)
