"""Layer arguments (kernel_initializer, *_regularizer, activity_regularizer) and fit's sample_weight,
class_weight and shuffle, each checked against a NumPy formula."""

import numpy as np
import pytest

import tinygpt.keras as keras
from tinygpt.keras import initializers, layers, regularizers


def _regression(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x @ rng.normal(size=(4, 2))).astype(np.float32)


# ----- initializers ---------------------------------------------------------------------------
def test_initializers_by_name_and_object_reach_every_layer():
    rng = np.random.default_rng(0)
    dense = layers.Dense(300, kernel_initializer="he_normal", bias_initializer=initializers.Constant(0.5), seed=1)
    dense.build((None, 200))
    kernel, bias = dense.get_weights()
    assert abs(kernel.std() - np.sqrt(2 / 200)) < 0.05 * np.sqrt(2 / 200)
    assert np.all(bias == 0.5)
    emb = layers.Embedding(10, 3, embeddings_initializer=initializers.RandomNormal(stddev=1.0, seed=3))
    emb.build((None, 5))
    again = initializers.RandomNormal(stddev=1.0, seed=3)((10, 3))
    np.testing.assert_array_equal(emb.get_weights()[0], again.astype(np.float32))  # the initializer's seed wins
    conv = layers.Conv1D(4, 3, kernel_initializer="zeros", bias_initializer="ones")
    conv.build((None, 8, 2))
    assert not conv.get_weights()[0].any() and np.all(conv.get_weights()[1] == 1)
    lstm = layers.LSTM(3, kernel_initializer="glorot_normal", recurrent_initializer=initializers.Orthogonal(gain=2.0),
                       bias_initializer="zeros")
    lstm.build((None, 5, 2))
    rec = lstm.get_weights()[1]  # (3, 12): orthonormal rows, times the gain
    np.testing.assert_allclose(rec @ rec.T, 4.0 * np.eye(3), atol=1e-5)
    np.testing.assert_array_equal(lstm.get_weights()[2][3:6], 1.0)  # unit_forget_bias on top of the zeros
    # the defaults are unchanged: GlorotUniform draws what glorot_uniform draws from the same stream
    np.testing.assert_array_equal(initializers.GlorotUniform()((4, 6), rng=np.random.default_rng(5)),
                                  initializers.glorot_uniform((4, 6), np.random.default_rng(5)))
    assert initializers.compute_fans((3, 4, 5)) == (12, 15)  # a Conv1D kernel: K * C_in, K * C_out
    with pytest.raises(ValueError, match="unknown initializer 'he_normall'"):
        layers.Dense(2, kernel_initializer="he_normall")
    with pytest.raises(NotImplementedError, match="activation='relu'"):
        layers.LSTM(3, activation="relu")


def test_truncated_and_variance_scaling_initializers_follow_their_formulas():
    w = initializers.TruncatedNormal(stddev=0.1, seed=0)((2000,))
    assert np.abs(w).max() <= 0.2 and 0.08 < w.std() < 0.09  # N(0, 0.1) cut at 2 stddev has std 0.088
    w = initializers.HeNormal(seed=0)((400, 300))  # truncated normal scaled so the std is sqrt(2 / fan_in)
    assert abs(w.std() - np.sqrt(2 / 400)) < 0.02 * np.sqrt(2 / 400)
    w = initializers.LecunUniform(seed=0)((100, 50))
    assert np.abs(w).max() <= np.sqrt(3 / 100)


# ----- regularizers ---------------------------------------------------------------------------
def test_regularization_penalties_are_in_the_reported_loss():
    x, y = _regression()
    model = keras.Sequential([keras.Input((4,)),
                              layers.Dense(3, kernel_regularizer=regularizers.L2(0.1),
                                           bias_regularizer=regularizers.l1(0.2), bias_initializer="ones",
                                           activity_regularizer=regularizers.L1L2(l1=0.01, l2=0.02)),
                              layers.Dense(2, kernel_regularizer="l1")], seed=0)
    model.compile("sgd", "mse")
    (k1, b1, k2, b2) = model.get_weights()
    h = x @ k1 + b1
    mse = np.mean((h @ k2 + b2 - y) ** 2)
    penalty = (0.1 * np.sum(k1 ** 2) + 0.2 * np.sum(np.abs(b1)) + 0.01 * np.sum(np.abs(k2))
               + 0.01 * np.sum(np.abs(h)) + 0.02 * np.sum(h ** 2))
    assert model.evaluate(x, y, batch_size=len(x)) == pytest.approx(mse + penalty, rel=1e-5)
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(mse + penalty, rel=1e-5)


def test_an_l2_penalty_adds_two_l2_w_to_the_gradient():
    x, y = _regression()
    plain = keras.Sequential([keras.Input((4,)), layers.Dense(2)], seed=3)
    decayed = keras.Sequential([keras.Input((4,)), layers.Dense(2, kernel_regularizer=regularizers.L2(0.05))], seed=3)
    before = plain.get_weights()[0]
    for model in (plain, decayed):
        model.compile(keras.optimizers.SGD(learning_rate=0.1), "mse")
        model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    step = decayed.get_weights()[0] - plain.get_weights()[0]
    np.testing.assert_allclose(step, -0.1 * 2 * 0.05 * before, rtol=1e-4, atol=1e-7)


def test_regularizer_arguments_are_checked():
    with pytest.raises(ValueError, match="l2 must be a number >= 0, got -1"):
        regularizers.L2(-1)
    with pytest.raises(ValueError, match="unknown regularizer 'l3'"):
        layers.Dense(2, kernel_regularizer="l3")
    assert layers.Dense(2, kernel_regularizer=regularizers.l2(0.3)).get_config()["kernel_regularizer"] == \
        {"class_name": "L2", "config": {"l2": 0.3}}


# ----- sample_weight, class_weight, shuffle ----------------------------------------------------
def _classifier(seed=0, metrics=None, weighted_metrics=None):
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="softmax")], seed=seed)
    model.compile(keras.optimizers.SGD(learning_rate=0.1), "sparse_categorical_crossentropy",
                  metrics=metrics, weighted_metrics=weighted_metrics)
    return model


def _classes(n=40, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, rng.integers(0, 3, n), rng.uniform(0, 2, n).astype(np.float32)


def test_sample_weight_in_evaluate_matches_the_numpy_formula():
    x, y, w = _classes()
    model = _classifier(metrics=["accuracy"], weighted_metrics=["accuracy"])
    p = model.predict(x)
    nll = -np.log(p[np.arange(len(y)), y])
    right = (p.argmax(-1) == y)
    logs = model.evaluate(x, y, sample_weight=w, batch_size=len(x), return_dict=True)
    assert logs["loss"] == pytest.approx(np.sum(w * nll) / len(y), rel=1e-5)  # Keras: / N, not / sum(w)
    assert logs["accuracy"] == pytest.approx(right.mean())
    assert logs["weighted_accuracy"] == pytest.approx(np.sum(w * right) / np.sum(w))
    assert model.evaluate(x, y, batch_size=len(x))[0] == pytest.approx(nll.mean(), rel=1e-5)


def test_class_weight_is_the_sample_weight_of_each_samples_class():
    x, y, _ = _classes()
    table = {0: 0.5, 1: 2.0, 2: 1.5}
    a, b = _classifier(), _classifier()
    ha = a.fit(x, y, class_weight=table, batch_size=8, epochs=2, shuffle=False, verbose=0)
    hb = b.fit(x, y, sample_weight=np.array([table[c] for c in y]), batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(a.get_weights()[0], b.get_weights()[0], rtol=1e-6)
    assert ha.history["loss"] == pytest.approx(hb.history["loss"])
    one_hot = _classifier()
    one_hot.compile(keras.optimizers.SGD(learning_rate=0.1), "categorical_crossentropy")
    one_hot.fit(x, np.eye(3)[y], class_weight=table, batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(one_hot.get_weights()[0], a.get_weights()[0], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="cannot both be given"):
        a.fit(x, y, class_weight=table, sample_weight=np.ones(len(y)), verbose=0)


def test_weights_of_two_double_the_sgd_step():
    x, y, _ = _classes()
    a, b = _classifier(seed=2), _classifier(seed=2)
    a.fit(x, y, sample_weight=np.full(len(y), 2.0), batch_size=10, epochs=1, shuffle=False, verbose=0)
    b.compile(keras.optimizers.SGD(learning_rate=0.2), "sparse_categorical_crossentropy")
    b.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(a.get_weights()[0], b.get_weights()[0], rtol=1e-5, atol=1e-7)


def test_generator_batches_with_sample_weights_equal_the_arrays_unshuffled():
    x, y, w = _classes()
    a, b = _classifier(seed=4), _classifier(seed=4)
    a.fit(x, y, sample_weight=w, batch_size=10, epochs=1, shuffle=False, verbose=0)
    b.fit(((x[i:i + 10], y[i:i + 10], w[i:i + 10]) for i in range(0, 40, 10)), epochs=1, verbose=0)
    np.testing.assert_allclose(a.get_weights()[0], b.get_weights()[0], rtol=1e-6)
    val = b.fit(x, y, validation_data=(x, y, w), epochs=1, verbose=0).history["val_loss"][0]
    assert val == pytest.approx(b.evaluate(x, y, sample_weight=w), rel=1e-6)


def test_shuffle_false_keeps_the_order_and_true_changes_it():
    x, y, _ = _classes()
    in_order, by_hand, shuffled = _classifier(seed=5), _classifier(seed=5), _classifier(seed=5)
    in_order.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    for i in range(0, 40, 10):
        by_hand.train_on_batch(x[i:i + 10], y[i:i + 10])
    shuffled.fit(x, y, batch_size=10, epochs=1, verbose=0)  # shuffle=True is the default, as in Keras
    np.testing.assert_array_equal(in_order.get_weights()[0], by_hand.get_weights()[0])
    assert not np.allclose(in_order.get_weights()[0], shuffled.get_weights()[0])
    with pytest.raises(NotImplementedError, match="'batch'"):
        in_order.fit(x, y, shuffle="batch", verbose=0)
    with pytest.raises(ValueError, match="sample_weight has shape \\(3,\\)"):
        in_order.fit(x, y, sample_weight=np.ones(3), verbose=0)
