"""keras.losses functions (one value per sample, Keras' convention) and the MeanAbsoluteError and
Huber classes against NumPy formulas; gradients of Huber against finite differences of that
formula; losses passed to compile as functions train like their names."""

import numpy as np
import pytest

import tinygpt.keras
from tinygpt.keras import losses
from tinygpt.keras.layers import Dense, Input
from tinygpt.tensor import Tensor

rng = np.random.default_rng(0)
Y = rng.standard_normal((6, 4))
P = Y + 2.0 * rng.standard_normal((6, 4))  # errors both inside and outside delta=1
LOGITS = rng.standard_normal((6, 5))
IDS = rng.integers(0, 5, 6)
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
ONE_HOT = np.eye(5)[IDS]


def numpy_huber(y, p, delta):
    e = np.abs(p - y)
    return np.where(e <= delta, 0.5 * e ** 2, delta * e - 0.5 * delta ** 2)


@pytest.mark.parametrize("fn,expected", [
    (losses.mean_squared_error, ((P - Y) ** 2).mean(-1)),
    (losses.mse, ((P - Y) ** 2).mean(-1)),
    (losses.mean_absolute_error, np.abs(P - Y).mean(-1)),
    (losses.mae, np.abs(P - Y).mean(-1)),
    (losses.huber, numpy_huber(Y, P, 1.0).mean(-1)),
    (lambda y, p: losses.huber(y, p, delta=0.3), numpy_huber(Y, P, 0.3).mean(-1)),
])
def test_regression_loss_functions_are_per_sample_means(fn, expected):
    np.testing.assert_allclose(fn(Y, P).data, expected, rtol=1e-6)


def test_crossentropy_functions_match_numpy():
    want = -np.log(PROBS[np.arange(6), IDS])
    np.testing.assert_allclose(losses.categorical_crossentropy(ONE_HOT, PROBS).data, want, rtol=1e-6)
    np.testing.assert_allclose(losses.categorical_crossentropy(ONE_HOT, LOGITS, from_logits=True).data,
                               want, rtol=1e-6)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(IDS, PROBS).data, want, rtol=1e-6)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(IDS, LOGITS, from_logits=True).data,
                               want, rtol=1e-6)
    t = (rng.random((6, 3)) > 0.5).astype(float)
    z = rng.standard_normal((6, 3))
    p = 1 / (1 + np.exp(-z))
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(-1)
    np.testing.assert_allclose(losses.binary_crossentropy(t, p).data, bce, rtol=1e-6)
    np.testing.assert_allclose(losses.binary_crossentropy(t, z, from_logits=True).data, bce, rtol=1e-6)


def test_mae_and_huber_classes_are_the_mean_and_huber_gradient_matches_finite_differences():
    np.testing.assert_allclose(losses.MeanAbsoluteError()(Y, Tensor(P)).item(), np.abs(P - Y).mean(), rtol=1e-6)
    np.testing.assert_allclose(losses.Huber(delta=0.5)(Y, Tensor(P)).item(),
                               numpy_huber(Y, P, 0.5).mean(), rtol=1e-6)
    p = Tensor(P.copy(), requires_grad=True)
    losses.Huber(delta=0.5)(Y, p).backward()
    h = 1e-6
    numeric = np.zeros_like(P)
    for i in np.ndindex(P.shape):
        up, down = P.copy(), P.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (numpy_huber(Y, up, 0.5).mean() - numpy_huber(Y, down, 0.5).mean()) / (2 * h)
    np.testing.assert_allclose(p.grad, numeric, rtol=1e-4, atol=1e-8)


def test_huber_rejects_negative_delta():
    with pytest.raises(ValueError, match="delta must be >= 0, got -1"):
        losses.Huber(delta=-1)


@pytest.mark.parametrize("loss,formula", [
    (losses.mean_squared_error, lambda y, p: ((p - y) ** 2).mean()),
    ("mae", lambda y, p: np.abs(p - y).mean()),
    (losses.mae, lambda y, p: np.abs(p - y).mean()),
    (losses.Huber(delta=0.5), lambda y, p: numpy_huber(y, p, 0.5).mean()),
    ("huber", lambda y, p: numpy_huber(y, p, 1.0).mean()),
    (lambda y, p: losses.huber(y, p, delta=2.0), lambda y, p: numpy_huber(y, p, 2.0).mean()),
])
def test_losses_in_compile_evaluate_to_their_formula(loss, formula):
    x = rng.standard_normal((20, 3)).astype(np.float32)
    y = (x.sum(-1, keepdims=True) * 3).astype(np.float32)
    model = tinygpt.keras.Sequential([Input(shape=(3,)), Dense(1)], seed=0)
    model.compile(optimizer="sgd", loss=loss)
    before = model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(before, formula(y, model.predict(x)), rtol=1e-5)
    model.fit(x, y, epochs=5, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before  # it trains on that loss
