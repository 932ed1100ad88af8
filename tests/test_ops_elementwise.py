"""Elementwise ops: arithmetic with broadcasting and Python scalars on either side, pow, the pointwise
nonlinearities, clip, where and masked_fill. Forward against a NumPy formula written here, backward
against finite differences (float64)."""

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinygpt.functional as F
from strategies import arrays, away_from, broadcastable_shapes, check_op, nonzero_arrays, shapes
from tinygpt import Tensor

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}


@pytest.mark.parametrize("op", list(BINARY))
@given(pair=broadcastable_shapes(), seed=st.integers(0, 2**32 - 1))
@example(pair=((1,), (3, 1)), seed=0)  # size-1 axes on both sides
@example(pair=((), (2, 3)), seed=0)  # a 0-d tensor against a matrix
@example(pair=((2, 1, 3), (4, 1)), seed=0)  # stretched on both sides, and a missing leading axis
def test_binary_op_with_broadcasting_matches_numpy_and_finite_differences(op, pair, seed):
    f, numpy_f = BINARY[op]
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-2, 2, pair[0]), rng.uniform(-2, 2, pair[1])
    if op == "div":  # keep denominators away from 0
        b = np.where(b < 0, b - 0.5, b + 0.5)
    check_op(f, numpy_f, [a, b])


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize("scalar_first", [False, True])
@given(x=nonzero_arrays(shapes()), c=st.sampled_from([-2.5, -1, 0.5, 3]))
def test_binary_op_with_a_python_scalar_on_either_side(op, scalar_first, x, c):
    f, numpy_f = BINARY[op]
    if scalar_first:
        check_op(lambda t: f(c, t), lambda a: numpy_f(c, a), [x])
    else:
        check_op(lambda t: f(t, c), lambda a: numpy_f(a, c), [x])


@pytest.mark.parametrize("op", list(BINARY))
def test_binary_op_with_a_numpy_array_on_the_left_returns_a_tensor(op):
    f, numpy_f = BINARY[op]
    a, b = np.array([[1.0], [2.0]]), np.array([0.5, -4.0, 3.0])
    # ndarray.__add__ defers to Tensor.__radd__ (Tensor.__array_priority__): the result is a Tensor
    check_op(lambda t: f(a, t), lambda x: numpy_f(a, x), [b])
    assert f(a, Tensor(b, requires_grad=True)).requires_grad


@given(x=arrays(shapes()))
def test_neg_matches_numpy_and_finite_differences(x):
    check_op(lambda t: -t, lambda a: -a, [x])


@given(x=arrays(shapes(), 0.5, 2.0), exponent=st.sampled_from([2, 3, 0.5, -1, -1.5, 0, 1, 2.7]))
def test_pow_scalar_exponent_matches_numpy_and_finite_differences(x, exponent):
    check_op(lambda t: t ** exponent, lambda a: a ** exponent, [x])


@given(x=arrays(shapes()), exponent=st.sampled_from([2, 3, 4]))
def test_pow_integer_exponent_of_negative_bases_matches_finite_differences(x, exponent):
    check_op(lambda t: t ** exponent, lambda a: a ** exponent, [x])


@given(data=st.data(), pair=broadcastable_shapes())
def test_pow_tensor_exponent_matches_numpy_and_finite_differences(data, pair):
    base, exponent = data.draw(arrays(pair[0], 0.5, 2.0)), data.draw(arrays(pair[1], -2.0, 2.0))
    check_op(lambda a, b: a ** b, np.power, [base, exponent])


@given(x=arrays(shapes()), base=st.sampled_from([2, 0.5, math.e]))
def test_pow_scalar_base_matches_numpy_and_finite_differences(x, base):
    check_op(lambda t: base ** t, lambda a: base ** a, [x])


def _gelu_tanh(a):
    return 0.5 * a * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (a + 0.044715 * a ** 3)))


def _gelu_erf(a):
    return 0.5 * a * (1.0 + np.vectorize(math.erf)(a / math.sqrt(2.0)))


UNARY = {  # name: (tinygpt, NumPy formula, low, high, kinks to stay away from)
    "exp": (F.exp, np.exp, -3.0, 3.0, ()),
    "log": (F.log, np.log, 0.1, 4.0, ()),
    "sqrt": (F.sqrt, np.sqrt, 0.1, 4.0, ()),
    "tanh": (F.tanh, np.tanh, -3.0, 3.0, ()),
    "sigmoid": (F.sigmoid, lambda a: 1.0 / (1.0 + np.exp(-a)), -6.0, 6.0, ()),
    "relu": (F.relu, lambda a: np.where(a > 0, a, 0.0), -2.0, 2.0, (0.0,)),
    "gelu": (F.gelu, _gelu_erf, -4.0, 4.0, ()),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), _gelu_tanh, -4.0, 4.0, ()),
    "method_exp": (lambda t: t.exp(), np.exp, -3.0, 3.0, ()),
    "method_gelu": (lambda t: t.gelu(), _gelu_erf, -4.0, 4.0, ()),
    "method_gelu_tanh": (lambda t: t.gelu("tanh"), _gelu_tanh, -4.0, 4.0, ()),
}


@pytest.mark.parametrize("name", list(UNARY))
@given(data=st.data(), shape=shapes())
def test_unary_op_matches_numpy_and_finite_differences(name, data, shape):
    f, numpy_f, low, high, kinks = UNARY[name]
    x = away_from(data.draw(arrays(shape, low, high)), kinks)
    check_op(f, numpy_f, [x])


def test_sigmoid_of_large_inputs_is_finite_and_exact():
    x = np.array([-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow on the way
        out = F.sigmoid(Tensor(x)).data
    np.testing.assert_allclose(out, [0.0, math.exp(-100), 1 / (1 + math.exp(30)), 0.5,
                                     1 / (1 + math.exp(-30)), 1.0, 1.0], rtol=1e-12, atol=0)


def test_relu_gradient_at_zero_is_zero():
    x = Tensor(np.array([-1.0, 0.0, 2.0]), requires_grad=True)
    (F.relu(x) * np.array([5.0, 7.0, 11.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 11.0])


@pytest.mark.parametrize("low, high", [(-0.5, 0.7), (None, 0.3), (-0.2, None)])
@given(x=arrays(shapes()))
def test_clip_matches_numpy_and_finite_differences(low, high, x):
    x = away_from(x, [v for v in (low, high) if v is not None])
    check_op(lambda t: t.clip(low, high), lambda a: np.clip(a, low, high), [x])


@given(data=st.data(), pair=broadcastable_shapes())
def test_where_matches_numpy_and_finite_differences(data, pair):
    a, b = data.draw(arrays(pair[0])), data.draw(arrays(pair[1]))
    condition = data.draw(arrays(np.broadcast_shapes(pair[0], pair[1]))) > 0
    check_op(lambda s, t: F.where(condition, s, t), lambda s, t: np.where(condition, s, t), [a, b])


@given(x=arrays(shapes(min_dims=1)), value=st.sampled_from([0.0, -1e9, 3.5]))
def test_where_with_a_scalar_branch_and_masked_fill(x, value):
    condition = np.roll(x, 1) > 0.5  # (...) like x
    check_op(lambda t: F.where(condition, value, t), lambda a: np.where(condition, value, a), [x])
    check_op(lambda t: t.masked_fill(condition, value), lambda a: np.where(condition, value, a), [x])


def test_masked_fill_broadcasts_a_causal_mask_and_keeps_float32():
    x = Tensor(np.zeros((2, 3, 3), dtype=np.float32), requires_grad=True)
    future = np.triu(np.ones((3, 3), dtype=bool), k=1)  # (T, T) against (B, T, T)
    out = F.masked_fill(x, future, -np.inf)
    assert out.dtype == np.float32
    assert np.isneginf(out.data[:, future]).all() and (out.data[:, ~future] == 0).all()
    (F.softmax(out, axis=-1) * np.arange(9.0).reshape(3, 3)).sum().backward()
    assert x.grad.shape == (2, 3, 3) and (x.grad[:, future] == 0).all()
