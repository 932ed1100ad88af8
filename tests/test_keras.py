"""tinygpt.keras: the Keras-style API the seed's example is written against.

Oracles: Keras' documented formulas (parameter counts, validation_split, callback rules), the same
model saved and loaded, the fused loss against the plain probabilities formula, and PyTorch
(optional) for the LSTM/Dense forward and the gradients of the fused loss.
"""

import numpy as np
import pytest

import tinygpt.keras
from tinygpt.keras import callbacks, optimizers
from tinygpt.keras.layers import LSTM, Dense, Dropout, Embedding, Input
from tinygpt.keras.utils import set_random_seed, to_categorical

Sequential = tinygpt.keras.Sequential


def small_seed_model(vocab=30, embed=8, units=16, length=12, seed=0):
    """The seed's architecture, shrunk: Embedding -> LSTM(return_sequences) -> LSTM -> Dense softmax."""
    return Sequential([Embedding(vocab, embed, input_length=length), LSTM(units, return_sequences=True),
                       LSTM(units), Dense(vocab, activation="softmax")], seed=seed)


def markov_data(n, vocab=30, length=12, used=8, noise=0.1, seed=0):
    """Token windows from a Markov chain over `used` of the `vocab` tokens, each token having one
    likely successor; y is the token after each window. Structure a model can learn quickly."""
    rng = np.random.default_rng(seed)
    tokens = np.random.default_rng(123).choice(vocab, used, replace=False)
    successor = np.random.default_rng(456).permutation(used)
    seq = np.empty((n, length + 1), dtype=np.int64)
    state = rng.integers(0, used, n)
    for t in range(length + 1):
        seq[:, t] = state
        state = np.where(rng.random(n) < noise, rng.integers(0, used, n), successor[state])
    return tokens[seq[:, :length]], tokens[seq[:, length]]


@pytest.fixture
def data():
    x, y = markov_data(96)
    return x, to_categorical(y, 30)


def compiled(model=None, **kwargs):
    model = model or small_seed_model()
    model.compile(**{"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": ["accuracy"], **kwargs})
    return model


# ----- the seed's imports, shapes and parameter counts ---------------------------------------------
def test_keras_namespaces_import_like_tensorflow_keras():
    from tinygpt import data
    from tinygpt.keras.callbacks import EarlyStopping as ES
    from tinygpt.keras.layers import LSTM as L, Dense as D, Embedding as E
    from tinygpt.keras.models import Sequential as ModelsSequential
    from tinygpt.keras.optimizers import Adam as A
    from tinygpt.keras.preprocessing.sequence import pad_sequences as pad
    from tinygpt.keras.utils import to_categorical as cat
    assert (L, D, E, ES, A) == (LSTM, Dense, Embedding, callbacks.EarlyStopping, optimizers.Adam)
    assert ModelsSequential is tinygpt.keras.Sequential
    assert pad is data.pad_sequences and cat is data.to_categorical  # re-exported, like Keras' paths
    assert pad([[1, 2], [3]], maxlen=3).tolist() == [[0, 1, 2], [0, 0, 3]]


def test_summary_param_counts_match_keras_formulas():
    model = Sequential([Embedding(1000, 64, input_length=100), LSTM(128, return_sequences=True),
                        LSTM(128), Dense(1000, activation="softmax")], seed=0)
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    lstm_params = lambda units, n_in: 4 * (units * (n_in + units) + units)  # noqa: E731
    expected = [1000 * 64, lstm_params(128, 64), lstm_params(128, 128), 128 * 1000 + 1000]
    assert [layer.count_params() for layer in model.layers] == expected == [64000, 98816, 131584, 129000]
    assert model.count_params() == sum(expected) == 423400
    for row in ["embedding (Embedding)", "(None, 100, 64)", "lstm (LSTM)", "(None, 100, 128)",
                "lstm_1 (LSTM)", "(None, 128)", "dense (Dense)", "(None, 1000)", "Total params: 423,400"]:
        assert row in text, row


def test_summary_prints_and_returns_none(capsys):
    assert small_seed_model().summary() is None
    assert 'Model: "sequential"' in capsys.readouterr().out


def test_lstm_return_sequences_and_return_state_shapes():
    x = np.random.default_rng(0).standard_normal((4, 7, 5)).astype(np.float32)
    assert LSTM(6)(x).shape == (4, 6)
    assert LSTM(6, return_sequences=True)(x).shape == (4, 7, 6)
    out, h, c = LSTM(6, return_sequences=True, return_state=True, seed=1)(x)
    assert out.shape == (4, 7, 6) and h.shape == c.shape == (4, 6)
    np.testing.assert_array_equal(out.data[:, -1], h.data)  # the last output is the final h
    last, h2, _ = LSTM(6, return_state=True, seed=1)(x)
    np.testing.assert_array_equal(last.data, h2.data)


def test_dense_infers_input_size_and_applies_to_the_last_axis():
    layer = Dense(3, activation="relu")
    assert layer(np.ones((2, 5, 4))).shape == (2, 5, 3)
    assert layer.get_weights()[0].shape == (4, 3)  # kernel (in, units), as Keras
    model = Sequential([Input(shape=(4,)), Dense(8, activation="tanh"), Dense(2)], seed=0)
    assert model.built and model.output_shape == (None, 2) and model.count_params() == 4 * 8 + 8 + 8 * 2 + 2


def test_keras_initial_weights_forget_bias_orthogonal_glorot():
    model = Sequential([Embedding(50, 8, input_length=5), LSTM(16), Dense(10)], seed=3)
    embeddings, kernel, recurrent, bias, dense_kernel, dense_bias = model.get_weights()
    assert np.abs(embeddings).max() <= 0.05  # Keras' uniform(-0.05, 0.05)
    assert np.abs(kernel).max() <= np.sqrt(6 / (8 + 64))  # glorot_uniform over (8, 4*16)
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(16), atol=1e-5)  # orthonormal rows
    np.testing.assert_array_equal(bias, np.r_[np.zeros(16), np.ones(16), np.zeros(32)])  # unit_forget_bias
    assert np.abs(dense_kernel).max() <= np.sqrt(6 / (16 + 10)) and not dense_bias.any()


def test_orthogonal_init_is_keras_qr_with_positive_diagonal():
    from tinygpt.keras import initializers
    for shape in [(16, 64), (64, 16), (8, 8)]:
        q = initializers.orthogonal(shape, np.random.default_rng(0))
        a = np.random.default_rng(0).standard_normal((max(shape), min(shape)))
        reference, r = np.linalg.qr(a)
        reference *= np.sign(np.diag(r))
        np.testing.assert_allclose(q, reference.T if shape[0] < shape[1] else reference, atol=1e-12)


def test_same_seed_same_model_and_set_random_seed_reproduces():
    a, b, c = small_seed_model(seed=7), small_seed_model(seed=7), small_seed_model(seed=8)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[1], c.get_weights()[1])
    set_random_seed(5)
    first = Dense(3)(np.ones((1, 2))).data
    set_random_seed(5)
    np.testing.assert_array_equal(Dense(3)(np.ones((1, 2))).data, first)


def test_same_seed_same_training_run(data):
    x, y = data
    runs = [compiled(small_seed_model(seed=1)).fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0).history
            for _ in range(2)]
    assert runs[0] == runs[1]


# ----- fit, evaluate, predict --------------------------------------------------------------------
def test_fit_history_keys_and_lengths(data):
    x, y = data
    model = compiled()
    history = model.fit(x[:64], y[:64], batch_size=16, epochs=3, validation_data=(x[64:], y[64:]), verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.history.values()) and history.epoch == [0, 1, 2]
    assert model.history is history


def test_validation_split_takes_the_last_fraction_before_shuffling(data):
    x, y = data
    model = compiled()
    history = model.fit(x[:10], y[:10], batch_size=4, epochs=1, validation_split=0.25, verbose=0)
    # Keras: train on the first floor(10 * 0.75) = 7 samples, validate on the last 3
    val_loss, val_acc = model.evaluate(x[7:10], y[7:10])
    assert history.history["val_loss"][0] == pytest.approx(val_loss, rel=1e-6)
    assert history.history["val_accuracy"][0] == pytest.approx(val_acc)
    assert model.evaluate(x[:3], y[:3])[0] != pytest.approx(val_loss, rel=1e-6)


def test_evaluate_and_predict_shapes(data):
    x, y = data
    model = compiled()
    probs = model.predict(x, batch_size=10)
    assert probs.shape == (96, 30) and isinstance(probs, np.ndarray)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(model(x[:5]).data, probs[:5], rtol=1e-5, atol=1e-7)
    result = model.evaluate(x, y, batch_size=10)
    assert isinstance(result, list) and len(result) == 2 and result[0] > 0 and 0 <= result[1] <= 1
    assert set(model.evaluate(x, y, return_dict=True)) == {"loss", "accuracy"}
    no_metrics = compiled(small_seed_model(), metrics=None)
    assert isinstance(no_metrics.evaluate(x, y), float)


def test_fused_softmax_loss_equals_crossentropy_of_the_predicted_probabilities(data):
    x, y = data
    model = compiled()
    assert model._fused_head() is model.layers[-1]  # softmax + crossentropy: the loss reads logits
    probs = model.predict(x)
    expected = -np.mean(np.log(probs[np.arange(len(y)), y.argmax(1)]))
    assert model.evaluate(x, y)[0] == pytest.approx(expected, rel=1e-5)
    unfused = model.loss(y, model(x))  # Keras' probabilities path: renormalise, clip, log
    assert unfused.item() == pytest.approx(expected, rel=1e-5)
    sparse = compiled(small_seed_model(), loss="sparse_categorical_crossentropy")
    assert sparse.evaluate(x, y.argmax(1))[0] == pytest.approx(expected, rel=1e-5)
    logits_model = Sequential([Embedding(30, 8, input_length=12), LSTM(16, return_sequences=True),
                               LSTM(16), Dense(30)], seed=0)  # same weights, no softmax
    logits_model.compile(loss=tinygpt.keras.losses.CategoricalCrossentropy(from_logits=True))
    assert logits_model.evaluate(x, y) == pytest.approx(expected, rel=1e-5)


def test_seed_model_learns_structured_sequences():
    x, y = markov_data(640, seed=1)
    x_val, y_val = markov_data(160, seed=2)
    model = compiled(small_seed_model(seed=0), optimizer=optimizers.Adam(learning_rate=0.01))
    history = model.fit(x, to_categorical(y, 30), batch_size=32, epochs=6,
                        validation_data=(x_val, to_categorical(y_val, 30)), verbose=0)
    loss, val_acc = history.history["loss"], history.history["val_accuracy"]
    assert loss[-1] < 0.6 * loss[0], loss
    assert val_acc[-1] > 5 * (1 / 30), val_acc  # chance is 1/30; the chain allows ~0.9


def test_binary_crossentropy_with_sigmoid_and_mse_regression():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3)).astype(np.float32)
    labels = (x @ np.array([1.0, -2.0, 0.5]) > 0).astype(np.float32)  # (N,) for a (None, 1) output
    model = Sequential([Dense(8, activation="relu"), Dense(1, activation="sigmoid")], seed=0)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.05), loss="binary_crossentropy", metrics=["accuracy"])
    p = model.predict(x)[:, 0].astype(np.float64)  # untrained: no probability is near 0 or 1 yet
    manual = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))  # the unfused formula
    assert model.evaluate(x, labels)[0] == pytest.approx(manual, rel=1e-4)
    history = model.fit(x, labels, batch_size=32, epochs=10, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    assert np.isfinite(model.evaluate(x, labels)[0])  # from the logits: finite even where p rounds to 1
    regression = Sequential([Dense(1)], seed=0)
    regression.compile(optimizer="sgd", loss="mse")
    target = x @ np.array([0.5, 1.0, -1.0])
    losses = regression.fit(x, target, batch_size=16, epochs=8, verbose=0).history["loss"]
    assert losses[-1] < 0.05 * losses[0]


def test_dropout_is_active_in_fit_only():
    x = np.ones((4, 50), dtype=np.float32)
    model = Sequential([Dropout(0.5)], seed=0)
    np.testing.assert_array_equal(model.predict(x), x)
    trained = model(x, training=True).data
    assert set(np.unique(trained)) == {0.0, 2.0}


def test_verbose_output(data, capsys):
    x, y = data
    model = compiled()
    model.fit(x, y, epochs=2, verbose=0)
    model.predict(x)
    model.evaluate(x, y)
    assert capsys.readouterr().out == ""  # silent unless asked
    model.fit(x, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2") and "loss: " in lines[0]
    model.fit(x, y, epochs=1, verbose=1)
    assert "Epoch 1/1" in capsys.readouterr().out


def test_optimizer_names_objects_and_train_on_batch(data):
    x, y = data
    for name in ["adam", "Adam", "sgd", "adamw", "rmsprop"]:
        model = compiled(optimizer=name)
        first = model.train_on_batch(x[:16], y[:16])
        assert isinstance(first, list) and len(first) == 2
    model = compiled(optimizer=optimizers.SGD(learning_rate=0.5, momentum=0.9))
    model.fit(x, y, epochs=1, verbose=0)
    assert model.optimizer.learning_rate == 0.5 and model.optimizer.iterations == 3
    model.optimizer.learning_rate = 0.1
    assert model.optimizer.engine.param_groups[0]["lr"] == 0.1
    from tinygpt import optim
    model = small_seed_model()
    compiled(model, optimizer=optim.Adam(model.parameters(), lr=1e-3)).fit(x, y, verbose=0)
    other = small_seed_model()
    with pytest.raises(ValueError, match="does not hold exactly this model's"):
        compiled(other, optimizer=optim.Adam(model.parameters())).fit(x, y, verbose=0)


def test_rmsprop_follows_the_tf_keras_rule():
    model = Sequential([Dense(1, use_bias=False)], seed=0)
    model.compile(optimizer=optimizers.RMSprop(learning_rate=0.1, rho=0.9, epsilon=1e-7), loss="mse")
    x, y = np.array([[1.0, 2.0]], np.float32), np.array([[3.0]], np.float32)
    model.build((None, 2))
    w0 = model.get_weights()[0].astype(np.float64)
    model.train_on_batch(x, y)
    g = 2 * (x @ w0 - y) * x.T  # d/dw (xw - y)^2, shape (2, 1)
    v = 0.1 * g ** 2
    np.testing.assert_allclose(model.get_weights()[0], w0 - 0.1 * g / np.sqrt(v + 1e-7), rtol=1e-5)


def test_rmsprop_momentum_and_centered_follow_the_keras_rule():
    model = Sequential([Dense(1, use_bias=False)], seed=0)
    lr, rho, mom, eps = 0.05, 0.8, 0.7, 1e-7
    model.compile(optimizer=optimizers.RMSprop(learning_rate=lr, rho=rho, momentum=mom, epsilon=eps,
                                               centered=True), loss="mse")
    x, y = np.array([[1.0, 2.0]], np.float32), np.array([[3.0]], np.float32)
    model.build((None, 2))
    w = model.get_weights()[0].astype(np.float64)
    v, g_avg, m = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for _ in range(3):  # Keras: v, mean g, then lr g / sqrt(v - mean(g)² + eps) into the momentum
        model.train_on_batch(x, y)
        g = 2 * (x @ w - y) * x.T
        v = rho * v + (1 - rho) * g ** 2
        g_avg = rho * g_avg + (1 - rho) * g
        m = mom * m + lr * g / np.sqrt(v - g_avg ** 2 + eps)
        w = w - m
    np.testing.assert_allclose(model.get_weights()[0], w, rtol=1e-4)


# ----- saving and loading ------------------------------------------------------------------------
def test_save_load_round_trip_gives_identical_predictions(tmp_path, data):
    x, y = data
    model = compiled()
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "gpt_model_weights.h5"
    model.save_weights(path)
    # NOTE: '.h5' is accepted for Keras compatibility, but the files are ours: safetensors + JSON
    # (save_weights warns, naming them; tests/test_keras_saving.py checks that)
    assert (tmp_path / "gpt_model_weights.safetensors").is_file() and (tmp_path / "gpt_model_weights.json").is_file()
    assert not path.exists()
    fresh = small_seed_model(seed=99)
    assert not np.array_equal(fresh.predict(x), model.predict(x))
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    unbuilt = Sequential([Embedding(30, 8), LSTM(16, return_sequences=True), LSTM(16),
                          Dense(30, activation="softmax")])
    unbuilt.load_weights(tmp_path / "gpt_model_weights")  # builds from the saved input shape
    np.testing.assert_array_equal(unbuilt.predict(x), model.predict(x))


def test_load_weights_into_a_different_architecture_names_the_layer(tmp_path):
    model = small_seed_model()
    model.save_weights(tmp_path / "w.h5")
    wrong_units = Sequential([Embedding(30, 8, input_length=12), LSTM(16, return_sequences=True),
                              LSTM(16), Dense(20, activation="softmax")])
    with pytest.raises(ValueError, match=r"Dense 'dense'.*'kernel' has shape \(16, 30\) in the file and \(16, 20\)"):
        wrong_units.load_weights(tmp_path / "w.h5")
    fewer = Sequential([Embedding(30, 8, input_length=12), LSTM(16), Dense(30)])
    with pytest.raises(ValueError, match="4 layers.*this model has 3 layers"):
        fewer.load_weights(tmp_path / "w.h5")
    swapped = Sequential([Embedding(30, 8, input_length=12), LSTM(16, return_sequences=True),
                          Dense(16), Dense(30)])
    with pytest.raises(ValueError, match="layer 3 with weights.*differ in type"):
        swapped.load_weights(tmp_path / "w.h5")
    with pytest.raises(FileNotFoundError, match="save_weights"):
        model.load_weights(tmp_path / "missing.h5")
    (tmp_path / "keras.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ValueError, match="HDF5"):
        model.load_weights(tmp_path / "keras.h5")


# ----- callbacks ---------------------------------------------------------------------------------
class RecordWeights(callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.saved = getattr(self, "saved", []) + [self.model.get_weights()]


def test_early_stopping_patience_counts_epochs_without_improvement(data):
    x, y = data
    model = compiled(optimizer=optimizers.SGD(learning_rate=0.0))  # the loss never improves
    stop = callbacks.EarlyStopping(monitor="loss", patience=2)
    history = model.fit(x, y, epochs=10, callbacks=[stop], verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 3 and stop.stopped_epoch == 2


def test_early_stopping_restores_the_best_weights(data):
    x, y = data
    model = compiled(optimizer=optimizers.Adam(learning_rate=0.01))
    recorder = RecordWeights()
    # mode='max' on a falling loss: the best epoch is the first one, so it stops after patience=1
    stop = callbacks.EarlyStopping(monitor="loss", mode="max", patience=1, restore_best_weights=True)
    history = model.fit(x, y, epochs=5, callbacks=[recorder, stop], verbose=0)
    assert len(history.history["loss"]) == 2 and stop.best_epoch == 0
    for restored, best in zip(model.get_weights(), recorder.saved[0]):
        np.testing.assert_array_equal(restored, best)
    with pytest.raises(ValueError, match="'val_loss'.*validation_data"):
        model.fit(x, y, epochs=1, callbacks=[callbacks.EarlyStopping()], verbose=0)


def test_model_checkpoint_saves_every_epoch_or_only_the_best(tmp_path, data):
    x, y = data
    model = compiled(optimizer=optimizers.Adam(learning_rate=0.01))
    every = callbacks.ModelCheckpoint(str(tmp_path / "ckpt_{epoch:02d}.weights.h5"), monitor="loss")
    recorder = RecordWeights()
    best = callbacks.ModelCheckpoint(tmp_path / "best.h5", monitor="loss", mode="max", save_best_only=True)
    model.fit(x, y, epochs=3, callbacks=[every, recorder, best], verbose=0)
    assert sorted(p.name for p in tmp_path.glob("ckpt_*.json")) == [
        "ckpt_01.weights.json", "ckpt_02.weights.json", "ckpt_03.weights.json"]
    model.load_weights(tmp_path / "best.h5")  # the loss fell, so with mode='max' only epoch 1 was "best"
    for loaded, first in zip(model.get_weights(), recorder.saved[0]):
        np.testing.assert_array_equal(loaded, first)
    model.load_weights(tmp_path / "ckpt_03.weights.h5")
    for loaded, last in zip(model.get_weights(), recorder.saved[2]):
        np.testing.assert_array_equal(loaded, last)


# ----- errors that say what is wrong and what is accepted ----------------------------------------
def test_unknown_names_list_the_valid_ones():
    model = small_seed_model()
    with pytest.raises(ValueError, match="unknown optimizer 'adom'.*'adam'.*'rmsprop'"):
        model.compile(optimizer="adom", loss="mse")
    with pytest.raises(ValueError, match="unknown loss 'categorical_crossentropie'.*'sparse_categorical_crossentropy'"):
        model.compile(optimizer="adam", loss="categorical_crossentropie")
    with pytest.raises(ValueError, match="unknown metric 'acuracy'.*'accuracy'"):
        model.compile(optimizer="adam", loss="mse", metrics=["acuracy"])
    with pytest.raises(ValueError, match="unknown activation 'softmx'.*'softmax'"):
        Dense(3, activation="softmx")


def test_targets_that_do_not_fit_the_loss_say_which_loss_to_use(data):
    x, y = data
    labels = y.argmax(1)
    with pytest.raises(ValueError, match="class ids.*sparse_categorical_crossentropy.*to_categorical"):
        compiled().fit(x, labels, verbose=0)
    with pytest.raises(ValueError, match="looks one-hot.*'categorical_crossentropy'"):
        compiled(loss="sparse_categorical_crossentropy").fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="10 classes.*30 units"):
        compiled().fit(x, to_categorical(labels % 10, 10), verbose=0)
    with pytest.raises(ValueError, match="class id 30 .* 30 units"):
        compiled(loss="sparse_categorical_crossentropy").fit(x, np.where(np.arange(96) == 5, 30, labels), verbose=0)
    with pytest.raises(ValueError, match="validation_data y holds class ids"):
        compiled().fit(x, y, validation_data=(x, labels), verbose=0)
    with pytest.raises(ValueError, match="96 samples but y has 95"):
        compiled().fit(x, y[:95], verbose=0)
    with pytest.raises(ValueError, match=r"binary_crossentropy needs y in \[0, 1\]"):
        compiled(Sequential([Dense(1, activation="sigmoid")]), loss="binary_crossentropy").fit(
            np.ones((4, 2)), np.array([0, 1, 2, 1]), verbose=0)


def test_bad_inputs_name_the_layer_and_the_fix(data):
    x, y = data
    model = compiled()
    with pytest.raises(TypeError, match="Embedding 'embedding', takes integer token ids.*astype"):
        model.predict(x.astype(np.float32))
    with pytest.raises(ValueError, match="token id 30 at x\\[0, 0\\].*input_dim=30"):
        bad = x.copy()
        bad[0, 0] = 30
        model.predict(bad)
    with pytest.raises(ValueError, match="input_length=12.*got \\(None, 5\\)"):
        model.predict(x[:, :5])
    with pytest.raises(ValueError, match="LSTM 'lstm' takes input of rank 3.*Embedding layer first"):
        Sequential([LSTM(4)]).predict(np.ones((2, 5)))
    with pytest.raises(ValueError, match="return_state=True.*one tensor"):
        Sequential([Embedding(5, 2), LSTM(3, return_state=True)])
    with pytest.raises(ValueError, match="used twice"):
        Sequential([Dense(2, name="out"), Dense(2, name="out")])
    with pytest.raises(TypeError, match="tinygpt.keras layers"):
        from tinygpt import nn
        Sequential([nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="Input.*must come first"):
        Sequential([Dense(2), Input(shape=(3,))])
    with pytest.raises(ValueError, match="filepath .* names 'val_loss'"):
        compiled().fit(x, y, verbose=0, callbacks=[callbacks.ModelCheckpoint("w_{val_loss:.2f}.h5", monitor="loss")])


def test_methods_called_too_early_say_what_to_do_first(data):
    x, y = data
    with pytest.raises(RuntimeError, match="fit\\(\\) needs a compiled model.*model.compile"):
        small_seed_model().fit(x, y)
    with pytest.raises(RuntimeError, match="evaluate\\(\\) needs a compiled model"):
        small_seed_model().evaluate(x, y)
    unbuilt = Sequential([Embedding(30, 8), LSTM(4), Dense(3)])
    for method in (unbuilt.summary, unbuilt.get_weights, unbuilt.count_params):
        with pytest.raises(ValueError, match="not been built yet.*model.build"):
            method()
    with pytest.raises(ValueError, match="no weights yet"):
        unbuilt.save_weights("never.h5")
    assert unbuilt.predict(x[:2]).shape == (2, 3)  # as in Keras, predict builds it from x
    with pytest.raises(ValueError, match="set_weights got 1 arrays"):
        unbuilt.set_weights([np.zeros(3)])


# ----- PyTorch as an independent oracle ----------------------------------------------------------
def test_lstm_dense_forward_and_fused_loss_gradients_match_torch():
    torch = pytest.importorskip("torch")
    model = Sequential([Embedding(11, 5, input_length=6), LSTM(7, return_sequences=True), LSTM(4),
                        Dense(11, activation="softmax")], seed=0)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    embeddings, k1, r1, b1, k2, r2, b2, kernel, bias = [torch.tensor(w, dtype=torch.float64)
                                                        for w in model.get_weights()]
    lstm1, lstm2 = torch.nn.LSTM(5, 7, batch_first=True).double(), torch.nn.LSTM(7, 4, batch_first=True).double()
    with torch.no_grad():
        for lstm, k, r, b in ((lstm1, k1, r1, b1), (lstm2, k2, r2, b2)):
            # Keras stores kernel (in, 4D) with gates i, f, c, o: PyTorch's (4D, in) with i, f, g, o
            lstm.weight_ih_l0.copy_(k.T)
            lstm.weight_hh_l0.copy_(r.T)
            lstm.bias_ih_l0.copy_(b)
            lstm.bias_hh_l0.zero_()
    params = [embeddings, kernel, bias, *lstm1.parameters(), *lstm2.parameters()]
    for p in params:
        p.requires_grad_(True)
    x = np.random.default_rng(0).integers(0, 11, (3, 6))
    y = np.array([1, 5, 10])
    hidden, _ = lstm2(lstm1(embeddings[torch.tensor(x)])[0])
    logits = hidden[:, -1] @ kernel + bias
    np.testing.assert_allclose(model.predict(x), torch.softmax(logits, -1).detach().numpy(), rtol=1e-4, atol=1e-6)
    torch_loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    torch_loss.backward()
    x_, y_ = model._prepare_xy(x, y, "x", "y")
    loss = model._loss_and_predictions(x_, y_, training=True)[0]
    model.optimizer.zero_grad()
    loss.backward()
    assert loss.item() == pytest.approx(torch_loss.item(), rel=1e-5)
    lstm_layer, dense_layer = model.layers[1].lstm, model.layers[3].linear
    np.testing.assert_allclose(dense_layer.weight.grad, kernel.grad.numpy(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(lstm_layer.weight_ih_l0.grad, lstm1.weight_ih_l0.grad.numpy().T, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(model.layers[0].embedding.weight.grad, embeddings.grad.numpy(), rtol=1e-3, atol=1e-6)


def test_seed_example_runs_end_to_end_on_tiny_data(tmp_path, capsys, monkeypatch):
    import runpy
    from pathlib import Path
    example = Path(__file__).resolve().parent.parent / "examples" / "seed_keras_lstm.py"
    weights = tmp_path / "gpt_model_weights.h5"
    monkeypatch.setattr("sys.argv", [str(example), "--train", "16", "--val", "8", "--test", "4",
                                     "--epochs", "1", "--weights", str(weights)])
    runpy.run_path(str(example), run_name="__main__")
    out = capsys.readouterr().out
    assert "lstm_1 (LSTM)" in out and "predicts identically" in out
    assert (tmp_path / "gpt_model_weights.safetensors").is_file()
