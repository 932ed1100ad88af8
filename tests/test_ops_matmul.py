"""matmul and `@`: 1-D operands, 2-D, batched, and batch axes that broadcast; and linear (x @ w + b as one op)."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinygpt.functional as F
from strategies import broadcastable_shapes, check_op, sides
from tinygpt import Tensor


def _numpy_matmul(a, b):
    """The definition, out[..., m, n] = sum_k a[..., m, k] b[..., k, n], with NumPy's promotion of
    a 1-D a to a row (1, K) and a 1-D b to a column (K, 1), removed again afterwards."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    out = np.sum(a2[..., :, :, None] * b2[..., None, :, :], axis=-2)
    if b.ndim == 1:
        out = out[..., 0]
    if a.ndim == 1:
        out = out[..., 0, :] if b.ndim > 1 else out[..., 0]
    return out


@st.composite
def matmul_shapes(draw):
    """Shapes (a, b) of every kind matmul accepts."""
    m, k, n = draw(sides), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["1d@1d", "1d@2d", "2d@1d", "2d@2d", "batched", "broadcast",
                                 "1d@batched", "batched@1d"]))
    batch_a, batch_b = draw(broadcastable_shapes(max_dims=2))
    if kind == "1d@1d":
        return (k,), (k,)
    if kind == "1d@2d":
        return (k,), (k, n)
    if kind == "2d@1d":
        return (m, k), (k,)
    if kind == "2d@2d":
        return (m, k), (k, n)
    if kind == "batched":
        return batch_a + (m, k), batch_a + (k, n)
    if kind == "broadcast":
        return batch_a + (m, k), batch_b + (k, n)
    if kind == "1d@batched":
        return (k,), batch_b + (k, n)
    return batch_a + (m, k), (k,)


@given(pair=matmul_shapes(), seed=st.integers(0, 2**32 - 1))
@example(pair=((3,), (3,)), seed=0)  # a dot product: the output is 0-d
@example(pair=((2, 1, 3, 4), (5, 4, 2)), seed=0)  # batch axes (2, 1) and (5,) broadcast
@example(pair=((4,), (2, 4, 3)), seed=0)
@example(pair=((2, 3, 4), (4,)), seed=0)
@example(pair=((1, 1), (1, 1)), seed=0)
def test_matmul_matches_numpy_and_finite_differences(pair, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-2, 2, pair[0]), rng.uniform(-2, 2, pair[1])
    check_op(lambda s, t: s @ t, _numpy_matmul, [a, b])


@given(seed=st.integers(0, 2**32 - 1))
def test_matmul_function_and_reflected_operator_agree_with_numpy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-2, 2, (3, 4)), rng.uniform(-2, 2, (4, 2))
    check_op(F.matmul, _numpy_matmul, [a, b])
    check_op(lambda t: a @ t, lambda x: _numpy_matmul(a, x), [b])  # ndarray @ Tensor -> __rmatmul__


# ----- linear: x @ w + b as one op -------------------------------------------------------------
@given(lead=st.lists(sides, min_size=0, max_size=2).map(tuple), k=sides, n=st.integers(1, 5),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
@example(lead=(), k=3, n=2, bias=True, seed=0)  # a single vector x: (K,) -> (N,)
@example(lead=(1, 1), k=1, n=1, bias=False, seed=0)
def test_linear_matches_numpy_and_finite_differences(lead, k, n, bias, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.uniform(-2, 2, lead + (k,)), rng.uniform(-2, 2, (k, n)), rng.uniform(-2, 2, n)
    if bias:
        check_op(F.linear, lambda x, w, b: x @ w + b, [x, w, b])
    else:
        check_op(F.linear, lambda x, w: x @ w, [x, w])


def test_linear_equals_matmul_plus_bias_in_float32_on_every_path():
    """The fused op and the two ops it replaces agree, values and gradients, through whichever
    matmul kernel is registered (the C sgemm on float32 rows >= 2)."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(3, 5, 8)).astype(np.float32), requires_grad=True)
    w = Tensor(rng.normal(size=(8, 6)).astype(np.float32), requires_grad=True)
    b = Tensor(rng.normal(size=6).astype(np.float32), requires_grad=True)
    weights = rng.normal(size=(3, 5, 6)).astype(np.float32)
    fused = F.linear(x, w, b)
    (fused * weights).sum().backward()
    grads = [t.grad for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    composed = x @ w + b
    (composed * weights).sum().backward()
    assert fused.dtype == np.float32
    np.testing.assert_allclose(fused.data, composed.data, rtol=1e-5, atol=1e-5)
    for name, got, t in zip("xwb", grads, (x, w, b)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, t.grad, rtol=1e-4, atol=1e-4, err_msg=f"d{name}")


def test_linear_rejects_mismatched_shapes_with_the_shapes_in_the_message():
    x, w = Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        F.linear(x, w)
    with pytest.raises(ValueError, match="bias has shape"):
        F.linear(Tensor(np.ones((2, 4))), w, Tensor(np.ones(4)))
