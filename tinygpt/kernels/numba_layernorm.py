"""Numba layer normalisation over the last axis, forward and backward, one row per loop iteration.

Same math and cache as tinygpt/ops/layernorm.py: (xhat, rstd, w, b is None). The backward's dw and db
sum over every row, so rows are cut into a fixed number of chunks, each core sums its chunks into
its own partial row, and the partial rows are added at the end: no two threads write one number.
Not here: float64 (the reference runs), or normalising any axis but the last.
"""

import math

import numpy as np
from numba import njit, prange

from .numba_math import FAST, as_rows, threads_for

_CHUNKS = 16  # fixed, not the thread count, so dw and db do not depend on how many cores there are


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _layernorm_rows(x, w, b, has_bias, eps, out, xhat, rstd):
    """x: (N, C), w, b: (C,), eps: float32 -> out, xhat: (N, C), rstd: (N, 1)"""
    c = np.float32(x.shape[1])  # NOTE: float32 / int64 would be float64 in Numba, and so would the row
    for n in prange(x.shape[0]):
        total = np.float32(0.0)
        for j in range(x.shape[1]):
            total += x[n, j]
        mean = total / c
        # variance from the centred values (two passes): sum(x²) - mean² cancels badly
        sq = np.float32(0.0)
        for j in range(x.shape[1]):
            d = x[n, j] - mean
            sq += d * d
        r = np.float32(1.0) / np.float32(math.sqrt(sq / c + eps))  # eps inside the root
        rstd[n, 0] = r
        for j in range(x.shape[1]):
            xh = (x[n, j] - mean) * r
            xhat[n, j] = xh
            out[n, j] = xh * w[j] + b[j] if has_bias else xh * w[j]


def _float32_vector(a, c):
    return isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (c,)


def layernorm_forward(x, w, b, eps=1e-5):
    """x: (..., C), w: (C,), b: (C,) or None -> out: (..., C), cache (xhat, rstd, w, b is None)"""
    c = x.shape[-1] if x.ndim else 0
    if x.dtype != np.float32 or x.ndim == 0 or not _float32_vector(w, c) \
            or not (b is None or _float32_vector(b, c)):
        return NotImplemented
    rows = as_rows(x)
    out, xhat = np.empty_like(rows), np.empty_like(rows)
    rstd = np.empty((rows.shape[0], 1), dtype=np.float32)
    has_bias = b is not None
    with threads_for(rows.size):
        _layernorm_rows(rows, np.ascontiguousarray(w), np.ascontiguousarray(b if has_bias else w),
                        has_bias, np.float32(eps), out, xhat, rstd)
    return out.reshape(x.shape), (xhat.reshape(x.shape), rstd.reshape(x.shape[:-1] + (1,)), w, b is None)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _layernorm_backward_rows(dout, xhat, rstd, w, dx, dw_parts, db_parts):
    """dout, xhat: (N, C), rstd: (N, 1), w: (C,) -> dx: (N, C), dw_parts, db_parts: (chunks, C)"""
    rows, c = xhat.shape[0], np.float32(xhat.shape[1])
    chunks = dw_parts.shape[0]
    for k in prange(chunks):
        for n in range(k * rows // chunks, (k + 1) * rows // chunks):
            # forward: out = xhat * w + b, so dw = sum(dout * xhat) and db = sum(dout)
            sum_dxhat = np.float32(0.0)
            sum_dxhat_xhat = np.float32(0.0)
            for j in range(xhat.shape[1]):
                dw_parts[k, j] += dout[n, j] * xhat[n, j]
                db_parts[k, j] += dout[n, j]
                dxhat = dout[n, j] * w[j]
                sum_dxhat += dxhat
                sum_dxhat_xhat += dxhat * xhat[n, j]
            # xhat = (x - mean) * rstd: dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
            mean_dxhat = sum_dxhat / c
            mean_dxhat_xhat = sum_dxhat_xhat / c
            for j in range(xhat.shape[1]):
                dx[n, j] = rstd[n, 0] * (dout[n, j] * w[j] - mean_dxhat - xhat[n, j] * mean_dxhat_xhat)


def layernorm_backward(dout, cache):
    """dout: (..., C) -> dx: (..., C), dw: (C,), db: (C,) or None"""
    xhat, rstd, w, no_bias = cache
    c = xhat.shape[-1] if xhat.ndim else 0
    if xhat.dtype != np.float32 or rstd.dtype != np.float32 or dout.dtype != np.float32 \
            or dout.shape != xhat.shape or not _float32_vector(w, c):
        return NotImplemented
    rows = as_rows(xhat)
    dx = np.empty_like(rows)
    chunks = max(1, min(_CHUNKS, rows.shape[0]))
    dw_parts = np.zeros((chunks, c), dtype=np.float32)
    db_parts = np.zeros((chunks, c), dtype=np.float32)
    with threads_for(rows.size):
        _layernorm_backward_rows(as_rows(dout), rows, as_rows(rstd), np.ascontiguousarray(w),
                                 dx, dw_parts, db_parts)
    db = None if no_bias else db_parts.sum(axis=0)
    return dx.reshape(xhat.shape), dw_parts.sum(axis=0), db
