"""Ops that move values: reshape, transpose / permute / .T, indexing (basic, integer arrays with
repeats, boolean masks), embedding with repeated indices, concatenate, stack and split."""

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinygpt.functional as F
from strategies import arrays, arrays_and_axis, basic_indices, check_op, shapes
from tinygpt import Tensor
from tinygpt.ops import shape as _shape_ops

seeds = st.integers(0, 2**32 - 1)


@st.composite
def reshape_cases(draw):
    shape = draw(shapes())
    n = math.prod(shape)
    targets = [(n,), (-1,), shape[::-1], (1,) + shape + (1,)]
    if len(shape) >= 2:
        targets.append((shape[0], -1))
    if n == 1:
        targets.append(())  # a single element can become a 0-d array
    return draw(arrays(shape)), draw(st.sampled_from(targets))


@given(case=reshape_cases())
def test_reshape_matches_numpy_and_finite_differences(case):
    x, new_shape = case
    check_op(lambda t: t.reshape(new_shape), lambda a: a.reshape(new_shape), [x])
    if new_shape:
        check_op(lambda t: t.reshape(*new_shape), lambda a: a.reshape(new_shape), [x])


@st.composite
def permutations(draw, ndim):
    axes = draw(st.permutations(range(ndim)))
    return tuple(a - ndim if draw(st.booleans()) else a for a in axes)  # some negative


@given(x=arrays(shapes(min_dims=1, max_dims=4)), data=st.data())
def test_transpose_and_permute_match_numpy_and_finite_differences(x, data):
    axes = data.draw(permutations(x.ndim))
    check_op(lambda t: t.permute(axes), lambda a: np.transpose(a, axes), [x])
    check_op(lambda t: t.permute(*axes), lambda a: np.transpose(a, axes), [x])
    check_op(lambda t: F.permute(t, axes), lambda a: np.transpose(a, axes), [x])
    check_op(lambda t: t.T, lambda a: a.T, [x])
    dim0, dim1 = data.draw(st.integers(-x.ndim, x.ndim - 1)), data.draw(st.integers(-x.ndim, x.ndim - 1))
    check_op(lambda t: t.transpose(dim0, dim1), lambda a: np.swapaxes(a, dim0, dim1), [x])
    check_op(lambda t: F.transpose(t, dim0, dim1), lambda a: np.swapaxes(a, dim0, dim1), [x])


@given(x=arrays(shapes(min_dims=1, max_dims=3)), data=st.data())
def test_getitem_basic_index_matches_numpy_and_finite_differences(x, data):
    index = data.draw(basic_indices(x.shape))
    check_op(lambda t: t[index], lambda a: a[index], [x])


@given(x=arrays(shapes(min_dims=1, max_dims=3)), seed=seeds)
def test_getitem_integer_array_with_repeats_matches_numpy_and_finite_differences(x, seed):
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    rows = rng.integers(-n, n, size=rng.integers(1, 7))  # repeats likely; negatives count from the end
    check_op(lambda t: t[rows], lambda a: a[rows], [x])
    check_op(lambda t: t[list(rows)], lambda a: a[rows], [x])  # a Python list is an index array too
    check_op(lambda t: t[Tensor(rows)], lambda a: a[rows], [x])  # and so is an integer Tensor
    if x.ndim >= 2:
        cols = rng.integers(0, x.shape[1], size=(2, 1))  # broadcasts against rows
        check_op(lambda t: t[rows, cols], lambda a: a[rows, cols], [x])
        check_op(lambda t: t[None, ..., rows % x.shape[-1]], lambda a: a[None, ..., rows % x.shape[-1]], [x])


@given(x=arrays(shapes(min_dims=1, max_dims=3)), seed=seeds)
def test_getitem_boolean_mask_matches_numpy_and_finite_differences(x, seed):
    rng = np.random.default_rng(seed)
    full = rng.random(x.shape) < 0.5
    first = rng.random(x.shape[0]) < 0.5
    check_op(lambda t: t[full], lambda a: a[full], [x])
    check_op(lambda t: t[first], lambda a: a[first], [x])
    check_op(lambda t: t[Tensor(first), ...], lambda a: a[first, ...], [x])


def test_getitem_gradient_scatters_and_adds_repeated_reads():
    x = Tensor(np.array([10.0, 20.0, 30.0]), requires_grad=True)
    (x[np.array([2, 0, 2, 2])] * np.array([1.0, 2.0, 3.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 8.0])


@given(vocab=st.integers(1, 7), channels=st.integers(1, 5), idx_shape=shapes(1, 2, max_size=12), seed=seeds)
@example(vocab=2, channels=3, idx_shape=(2, 5), seed=0)  # many repeats of two rows
def test_embedding_with_repeated_indices_matches_numpy_and_finite_differences(vocab, channels, idx_shape, seed):
    rng = np.random.default_rng(seed)
    weight, idx = rng.uniform(-2, 2, (vocab, channels)), rng.integers(0, vocab, idx_shape)

    def looked_up(w, i):  # out[..., :] = weight[idx[...], :], one row at a time
        return np.array([w[j] for j in i.reshape(-1)]).reshape(i.shape + (w.shape[1],))
    check_op(lambda w, i: F.embedding(i, w), looked_up, [weight, idx])


@pytest.mark.parametrize("idx_shape", [(4, 64), (0,), (1,)])
def test_embedding_backward_equals_a_scatter_add(idx_shape):
    """The sorted reduce in embedding_backward gives what np.add.at (the definition) gives."""
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 9, idx_shape)
    dout = rng.normal(size=idx_shape + (5,)).astype(np.float32)
    expected = np.zeros((11, 5), np.float32)  # rows 9 and 10 are never used: their gradient is 0
    np.add.at(expected, idx.reshape(-1), dout.reshape(-1, 5))
    dweight, didx = _shape_ops.embedding_backward(dout, ((11, 5), idx))
    assert didx is None and dweight.dtype == np.float32
    np.testing.assert_allclose(dweight, expected, rtol=1e-6, atol=1e-6)


@given(k=st.integers(1, 4), base=shapes(min_dims=1), data=st.data())
def test_concatenate_matches_numpy_and_finite_differences(k, base, data):
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    pieces = []
    for _ in range(k):
        shape = list(base)
        shape[axis] = data.draw(st.integers(1, 4))
        pieces.append(data.draw(arrays(tuple(shape))))
    check_op(lambda *ts: F.concatenate(list(ts), axis=axis), lambda *a: np.concatenate(a, axis=axis), pieces)


@given(k=st.integers(1, 4), shape=shapes(), data=st.data())
def test_stack_matches_numpy_and_finite_differences(k, shape, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    pieces = [data.draw(arrays(shape)) for _ in range(k)]
    check_op(lambda *ts: F.stack(ts, axis=axis), lambda *a: np.stack(a, axis=axis), pieces)


@given(case=arrays_and_axis(shapes(min_dims=1)), data=st.data())
def test_split_into_chunks_of_one_size_matches_slicing_and_finite_differences(case, data):
    """torch.split's int: pieces of `size` elements, the last one shorter when it does not divide."""
    x, axis = case
    n = x.shape[axis]
    size = data.draw(st.integers(1, n + 1))

    def by_slicing(a):
        return tuple(np.take(a, range(lo, min(lo + size, n)), axis=axis) for lo in range(0, n, size))
    check_op(lambda t: t.split(size, axis=axis), by_slicing, [x])
    check_op(lambda t: F.split(t, size, dim=axis), by_slicing, [x])


@given(case=arrays_and_axis(shapes(min_dims=1)), data=st.data())
def test_chunk_matches_slicing_and_finite_differences(case, data):
    """torch.chunk: at most `chunks` pieces of ceil(n / chunks), fewer when the size runs out."""
    x, axis = case
    n = x.shape[axis]
    chunks = data.draw(st.integers(1, n + 2))
    size = -(-n // chunks)

    def by_slicing(a):
        return tuple(np.take(a, range(lo, min(lo + size, n)), axis=axis) for lo in range(0, n, size))
    check_op(lambda t: t.chunk(chunks, axis), by_slicing, [x])


@st.composite
def cut_points(draw):
    """(x, cuts): sorted indices into axis 0 of x, maybe repeated, maybe 0 or the end (empty pieces)."""
    x = draw(arrays(shapes(min_dims=1)))
    return x, sorted(draw(st.lists(st.integers(0, x.shape[0]), max_size=3)))


def _sizes(cuts, n):
    """np.split's cut points -> torch.split's list of piece sizes."""
    bounds = [0] + cuts + [n]
    return [hi - lo for lo, hi in zip(bounds, bounds[1:])]


@given(case=cut_points())
@example(case=(np.arange(6.0), [0, 2, 2, 5]))  # empty first and third pieces
def test_split_at_indices_with_unused_pieces_matches_numpy_and_finite_differences(case):
    x, cuts = case
    bounds = [0] + cuts + [x.shape[0]]

    def pieces(a):
        return tuple(a[lo:max(lo, hi)] for lo, hi in zip(bounds, bounds[1:]))
    # keep every other piece: the unused ones send no gradient and must not break backward
    sizes = _sizes(cuts, x.shape[0])
    check_op(lambda t: F.split(t, sizes, 0)[::2], lambda a: pieces(a)[::2], [x])
    check_op(lambda t: F.split(t, sizes, 0)[-1], lambda a: pieces(a)[-1], [x])


@pytest.mark.parametrize("index", [(slice(None), 0), (Ellipsis, None), (1, Ellipsis, slice(None, None, -1))])
def test_getitem_basic_index_returns_float32_and_zero_gradient_elsewhere(index):
    x = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    out = x[index]
    assert out.dtype == np.float32
    (out * 2.0).sum().backward()
    expected = np.zeros((2, 3), dtype=np.float32)
    expected[index] = 2.0
    np.testing.assert_array_equal(x.grad, expected)
