"""Reductions: sum, mean, amax, var over axis None / int / tuple / negative, with and without keepdims."""

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinygpt.functional as F
from strategies import axes, check_op, shapes
from tinygpt import Tensor


def _count(a, axis):
    """How many elements each reduced value summarises."""
    return a.size if axis is None else math.prod(a.shape[i] for i in np.atleast_1d(axis))


def _numpy_var(a, axis, keepdims, ddof):
    """The definition: squared distances from the mean, summed, divided by n - ddof."""
    centered = a - np.sum(a, axis=axis, keepdims=True) / _count(a, axis)
    return np.sum(centered ** 2, axis=axis, keepdims=keepdims) / (_count(a, axis) - ddof)


REDUCTIONS = {
    "sum": (lambda t, axis, keepdims: t.sum(axis, keepdims),
            lambda a, axis, keepdims: np.sum(a, axis=axis, keepdims=keepdims)),
    "mean": (lambda t, axis, keepdims: F.mean(t, axis=axis, keepdims=keepdims),
             lambda a, axis, keepdims: np.sum(a, axis=axis, keepdims=keepdims) / _count(a, axis)),
    "amax": (lambda t, axis, keepdims: t.amax(axis=axis, keepdims=keepdims),  # NumPy: axis=() reduces nothing
            lambda a, axis, keepdims: np.max(a, axis=axis, keepdims=keepdims)),
    "var": (lambda t, axis, keepdims: t.var(axis, keepdim=keepdims, correction=0),
            lambda a, axis, keepdims: _numpy_var(a, axis, keepdims, 0)),
}


@st.composite
def reduction_cases(draw, min_dims=0):
    shape = draw(shapes(min_dims=min_dims))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).uniform(-2, 2, shape), draw(axes(len(shape))), draw(st.booleans())


@pytest.mark.parametrize("name", list(REDUCTIONS))
@given(case=reduction_cases())
@example(case=(np.arange(6.0).reshape(2, 3) % 4, -1, True))
@example(case=(np.array([[0.5], [-1.5]]), (0, 1), False))  # size-1 axis, full reduction
@example(case=(np.array([1.0, -2.0, 3.0]), (), False))  # reduce over nothing
@example(case=(np.array(2.5), None, True))  # a 0-d input
def test_reduction_matches_numpy_and_finite_differences(name, case):
    x, axis, keepdims = case
    f, numpy_f = REDUCTIONS[name]
    check_op(lambda t: f(t, axis, keepdims), lambda a: numpy_f(a, axis, keepdims), [x])


@given(case=reduction_cases(min_dims=1), ddof=st.sampled_from([0, 1]))
def test_var_with_ddof_matches_numpy_and_finite_differences(case, ddof):
    x, axis, keepdims = case
    if _count(x, axis) <= ddof:
        return  # 0 / 0: covered by test_var_of_a_single_value_with_ddof_1_is_nan
    check_op(lambda t: F.var(t, axis, keepdim=keepdims, correction=ddof),
             lambda a: _numpy_var(a, axis, keepdims, ddof), [x])
    check_op(lambda t: F.var(t, axis=axis, keepdims=keepdims, ddof=ddof),  # NumPy's spelling
             lambda a: _numpy_var(a, axis, keepdims, ddof), [x])


def test_var_of_a_single_value_with_ddof_1_is_nan():
    with np.errstate(all="ignore"):
        assert np.isnan(F.var(Tensor(np.array([3.0])), ddof=1).item())


def test_max_gradient_is_shared_equally_between_ties():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    (x.amax(axis=1) * np.array([6.0, 9.0])).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 3.0, 3.0], [3.0, 3.0, 3.0]])


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reduction_rejects_an_axis_out_of_range(name):
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        REDUCTIONS[name][0](Tensor(np.ones((2, 3))), 2, False)
    with pytest.raises(ValueError, match="repeats an axis"):
        REDUCTIONS[name][0](Tensor(np.ones((2, 3))), (1, -1), False)
