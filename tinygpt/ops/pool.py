"""1-D pooling over time, batch and channels last as Keras' MaxPooling1D / AveragePooling1D:
x (B, T, C) -> (B, T_out, C), each output step the max (or mean) of `pool_size` input steps.

Window t reads the padded steps t * stride .. t * stride + pool_size - 1. Padding never takes
part: max pooling pads with -inf, average pooling divides each window's sum by the number of
*real* steps in it (Keras' padding='same'; torch's count_include_pad=False).
Not here: the choice of pad_left / pad_right (the layer computes 'same' as TensorFlow does), 2-D pooling.
"""

import numpy as np


def _windows(T, pool_size, stride, pad_left, pad_right):
    """-> rows (T_out, P): the padded step each window position reads."""
    T_out = (T + pad_left + pad_right - pool_size) // stride + 1
    if T_out < 1:
        raise ValueError(f"pool1d: an input of {T} steps (padded to {T + pad_left + pad_right}) is "
                         f"shorter than pool_size {pool_size}")
    return np.arange(T_out)[:, None] * stride + np.arange(pool_size)[None, :]


def _scatter_rows(dcols, rows, shape, pad_left, dtype):
    """dcols (B, T_out, P, C) added back onto the padded rows they were read from -> dx (B, T, C)."""
    B, T, C = shape
    dxpad = np.zeros((B, int(rows.max()) + 1, C), dtype=dtype)
    for k in range(rows.shape[1]):  # for one k the rows are distinct, so += adds every window
        dxpad[:, rows[:, k]] += dcols[:, :, k]
    dx = np.zeros(shape, dtype=dtype)
    real = dxpad[:, pad_left:pad_left + T]  # drop the padding rows
    dx[:, :real.shape[1]] = real
    return dx


def maxpool1d_forward(x, pool_size, stride, pad_left=0, pad_right=0):
    """x: (B, T, C) -> out: (B, T_out, C), cache"""
    rows = _windows(x.shape[1], pool_size, stride, pad_left, pad_right)
    xpad = np.pad(x, ((0, 0), (pad_left, pad_right), (0, 0)), constant_values=-np.inf)
    cols = np.take(xpad, rows, axis=1)  # (B, T_out, P, C), contiguous (xpad[:, rows] would not be)
    # every window holds at least one real step ('same' padding is < pool_size), so the max is finite
    arg = np.argmax(cols, axis=2)  # (B, T_out, C): which of the P steps won (the first on ties)
    out = np.take_along_axis(cols, arg[:, :, None, :], axis=2)[:, :, 0]
    return out, (arg, rows, x.shape, pad_left)


def maxpool1d_backward(dout, cache):
    """dout: (B, T_out, C) -> dx: (B, T, C)"""
    arg, rows, x_shape, pad_left = cache
    # out = cols[..., arg, :]: the whole gradient goes to the step that won its window
    dcols = (np.arange(rows.shape[1])[None, None, :, None] == arg[:, :, None, :]) * dout[:, :, None, :]
    return _scatter_rows(dcols, rows, x_shape, pad_left, dout.dtype)


def avgpool1d_forward(x, pool_size, stride, pad_left=0, pad_right=0):
    """x: (B, T, C) -> out: (B, T_out, C), cache"""
    T = x.shape[1]
    rows = _windows(T, pool_size, stride, pad_left, pad_right)
    xpad = np.pad(x, ((0, 0), (pad_left, pad_right), (0, 0)))  # zeros add nothing to a sum
    real = (rows >= pad_left) & (rows < pad_left + T)  # (T_out, P)
    count = real.sum(axis=1).astype(x.dtype)[None, :, None]  # (1, T_out, 1): real steps per window
    out = np.take(xpad, rows, axis=1).sum(axis=2) / count  # (B, T_out, P, C) -> (B, T_out, C)
    return out, (count, real, rows, x.shape, pad_left)


def avgpool1d_backward(dout, cache):
    """dout: (B, T_out, C) -> dx: (B, T, C)"""
    count, real, rows, x_shape, pad_left = cache
    # out = sum of the window's real steps / count: each real step gets dout / count
    dcols = (dout / count)[:, :, None, :] * real[None, :, :, None]  # (B, T_out, P, C)
    return _scatter_rows(dcols, rows, x_shape, pad_left, dout.dtype)
