"""Ops that move values without changing them: reshape, transpose, indexing, embedding lookup,
concatenate, stack, split.

Their backwards put each gradient element back where its value came from; when one value was read
several times (integer-array indexing, embedding) the gradients add up (a scatter-add).
The embedding's backward has a Numba version (kernels/numba_embedding.py): the reference's sort is
the slow part of a large-vocabulary model's step. Not here: arithmetic of any kind.
"""

import numpy as np

from tinygpt.backend import kernel


def reshape_forward(x, shape):
    """x: (...) -> out: `shape` (one axis may be -1)"""
    try:
        out = x.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape an array of shape {x.shape} "
                         f"({x.size} elements) into {tuple(int(n) for n in np.ravel(shape))}") from None
    return out, x.shape


def reshape_backward(dout, shape):
    return dout.reshape(shape)


def transpose_forward(x, axes=None):
    """x: (...) -> out: x with its axes permuted (reversed when axes is None)"""
    axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(int(a) % max(x.ndim, 1) for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes of "
                         f"an array of shape {x.shape}")
    return np.transpose(x, axes), axes


def transpose_backward(dout, axes):
    # undo the permutation: the inverse of `axes` sends each axis home
    return np.transpose(dout, np.argsort(axes))


def _is_basic(index):
    """True when `index` uses only ints, slices, None and Ellipsis: each element is read at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


def getitem_forward(x, index):
    """x: (...) -> out: x[index], NumPy semantics for basic and integer-array indexing"""
    try:
        out = x[index]
    except IndexError as error:
        raise IndexError(f"index {index!r} does not fit an array of shape {x.shape}: {error}") from None
    return out, (x.shape, x.dtype, index)


def getitem_backward(dout, cache):
    shape, dtype, index = cache
    dx = np.zeros(shape, dtype=dout.dtype)
    if _is_basic(index):
        dx[index] = dout  # each element appears at most once in out
    else:
        np.add.at(dx, index, dout)  # repeated indices: gradients add (a scatter-add)
    return dx


@kernel
def embedding_forward(weight, idx):
    """weight: (V, C), idx: int (...) -> out: (..., C), the rows of weight picked by idx"""
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= weight.shape[0]):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise ValueError(f"embedding: index {bad} is out of range for a vocabulary of "
                         f"{weight.shape[0]} rows (valid: 0..{weight.shape[0] - 1})")
    return weight[idx], (weight.shape, idx)


@kernel
def embedding_backward(dout, cache):
    """dout: (..., C) -> dweight: (V, C), None (the ids get no gradient)"""
    # out[..., :] = weight[idx[...]]: row idx gets the sum of dout over every place it was used
    shape, idx = cache
    dweight = np.zeros(shape, dtype=dout.dtype)
    flat_idx, flat_dout = idx.reshape(-1), dout.reshape(-1, shape[1])  # (N,), (N, C)
    if flat_idx.size == 0:
        return dweight, None
    # a sorted reduce, not np.add.at(dweight, flat_idx, flat_dout), which is the same sum but
    # element by element: 3-4x slower at the bench's GPTs (2.7 -> 0.7 ms at 2048 tokens, C=128).
    # Sort the uses by row, then add up each run of equal rows in one reduceat.
    order = np.argsort(flat_idx, kind="stable")
    rows = flat_idx[order]
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))  # first use of each row
    dweight[rows[starts]] = np.add.reduceat(flat_dout[order], starts, axis=0)
    return dweight, None


def concatenate_forward(*arrays, axis=0):
    """arrays: (..., n_i, ...) -> out: (..., sum n_i, ...) along `axis`"""
    try:
        out = np.concatenate(arrays, axis=axis)
    except (ValueError, np.exceptions.AxisError):
        raise ValueError(f"concatenate: shapes {[a.shape for a in arrays]} differ outside "
                         f"axis {axis}, or the axis does not exist") from None
    sizes = [a.shape[axis] for a in arrays]
    return out, (axis, np.cumsum(sizes)[:-1])


def concatenate_backward(dout, cache):
    axis, boundaries = cache
    return tuple(np.split(dout, boundaries, axis=axis))


def stack_forward(*arrays, axis=0):
    """arrays: k of (...) with one shape -> out: (..., k, ...) with the new axis at `axis`"""
    try:
        out = np.stack(arrays, axis=axis)
    except ValueError:
        raise ValueError(f"stack: all arrays need one shape, got {[a.shape for a in arrays]}") from None
    return out, (axis % out.ndim, len(arrays))


def stack_backward(dout, cache):
    axis, count = cache
    return tuple(np.take(dout, i, axis=axis) for i in range(count))


def split_forward(x, sections, axis=-1):
    """x: (..., n, ...) -> tuple of pieces along `axis`: `sections` equal parts, or cut at the
    given indices (np.split's convention)"""
    axis = axis % x.ndim
    if isinstance(sections, (int, np.integer)) and (sections < 1 or x.shape[axis] % sections):
        raise ValueError(f"split: axis {axis} of size {x.shape[axis]} does not divide into "
                         f"{sections} equal parts")
    pieces = tuple(np.split(x, sections, axis=axis))
    return pieces, (axis, [p.shape for p in pieces])


def split_backward(douts, cache):
    # the pieces tile x: put each piece's gradient back in place; unused pieces contribute zeros
    axis, shapes = cache
    dtype = next(d.dtype for d in douts if d is not None)
    parts = [np.zeros(s, dtype=dtype) if d is None else d for d, s in zip(douts, shapes)]
    return np.concatenate(parts, axis=axis)
