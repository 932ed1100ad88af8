"""Reductions along axes: sum, mean, max, var, with NumPy's `axis` and `keepdims`.

Each backward first puts the reduced axes back (`expand`) so that dout broadcasts against x.
Not here: softmax and log-softmax (softmax.py), which reduce and broadcast back in one op.
"""

import numpy as np

from tinygpt.backend import kernel

_CHUNK = 1 << 16  # floats squared at a time by sum_of_squares: a 512 KiB float64 temporary


def normalize_axes(axis, ndim):
    """`axis` (None, int or tuple, possibly negative) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    result = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for an array with {ndim} dimensions")
        result.append(int(a) % max(ndim, 1))
    if len(set(result)) != len(result):
        raise ValueError(f"axis {axis} repeats an axis")
    return tuple(sorted(result))


def expand(dout, axes, keepdims):
    """Put back the reduced `axes` as size-1 axes, so dout broadcasts against the input."""
    return dout if keepdims else np.expand_dims(dout, axes)


def sum_forward(x, axis=None, keepdims=False):
    """x: (...) -> out: x with `axis` summed away (or kept as 1 with keepdims)"""
    axes = normalize_axes(axis, x.ndim)
    return np.sum(x, axis=axes, keepdims=keepdims), (x.shape, axes, keepdims)


def sum_backward(dout, cache):
    # every element of x contributed with weight 1 to its sum
    shape, axes, keepdims = cache
    return np.broadcast_to(expand(dout, axes, keepdims), shape)


def mean_forward(x, axis=None, keepdims=False):
    axes = normalize_axes(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes]))
    return np.mean(x, axis=axes, keepdims=keepdims), (x.shape, axes, keepdims, count)


def mean_backward(dout, cache):
    # out = sum(x) / count
    shape, axes, keepdims, count = cache
    return np.broadcast_to(expand(dout, axes, keepdims) / count, shape)


def max_forward(x, axis=None, keepdims=False):
    axes = normalize_axes(axis, x.ndim)
    if x.size == 0:
        raise ValueError(f"max of an empty array of shape {x.shape}")
    out = np.max(x, axis=axes, keepdims=True)
    return (out if keepdims else np.squeeze(out, axes)), (x, out, axes, keepdims)


def max_backward(dout, cache):
    # the gradient goes to the maximum; ties share it equally (as the subgradient average)
    x, out_kept, axes, keepdims = cache
    is_max = x == out_kept
    share = is_max / is_max.sum(axis=axes, keepdims=True)
    return (expand(dout, axes, keepdims) * share).astype(x.dtype, copy=False)


def var_forward(x, axis=None, keepdims=False, ddof=0):
    """x: (...) -> out: the variance over `axis`, dividing by (count - ddof)"""
    axes = normalize_axes(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes]))
    centered = x - np.mean(x, axis=axes, keepdims=True)
    out = np.sum(centered * centered, axis=axes, keepdims=keepdims) / (count - ddof)
    return out, (centered, axes, keepdims, count - ddof)


def var_backward(dout, cache):
    # out = sum(c**2) / n with c = x - mean(x); the mean's own gradient cancels, because sum(c) = 0
    centered, axes, keepdims, divisor = cache
    return expand(dout, axes, keepdims) * (2.0 / divisor) * centered


@kernel
def sum_of_squares(x):
    """x: any shape -> float: sum(x ** 2) accumulated in float64, a chunk at a time (the squared
    norm clip_grad_norm_ takes): a float64 copy of the whole array would be twice its size (300
    MiB for GPT-2's token-embedding gradient) at the step's memory peak. Not differentiable."""
    flat = x.reshape(-1)
    total = 0.0
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start:start + _CHUNK].astype(np.float64)
        # NOTE: not np.dot: BLAS would wake its threads for every chunk, and on a busy machine
        # each wake-up waits for a core
        total += float(np.multiply(chunk, chunk, out=chunk).sum())
    return total
