"""Numba softmax, log-softmax and cross-entropy over the last axis, one row per loop iteration.

A row is handled in three passes while it sits in cache (max; exp and sum; scale), where the NumPy
reference makes a whole temporary array at every step; rows are spread over the cores (`prange`).
Not here: another axis, float64, or probability targets for cross-entropy (the reference runs).
"""

import math

import numpy as np
from numba import njit, prange

from .numba_math import FAST, as_rows, exp32, threads_for


def _last_axis_float32(x, axis):
    return isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim > 0 and axis in (-1, x.ndim - 1)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _softmax_rows(x, out):
    """x, out: (N, V) float32"""
    for n in prange(x.shape[0]):
        row_max = np.float32(-np.inf)  # the max-shift: the largest exp() is exp(0) = 1, nothing overflows
        for j in range(x.shape[1]):
            row_max = max(row_max, x[n, j])
        total = np.float32(0.0)
        for j in range(x.shape[1]):
            e = exp32(x[n, j] - row_max)
            out[n, j] = e
            total += e
        inv = np.float32(1.0) / total
        for j in range(x.shape[1]):
            out[n, j] *= inv


def _run_rows(rows_kernel, first, *more):
    """rows_kernel(*more, first, result) on (N, V) views of arrays shaped like `first`: (..., V).
    The njit kernels take their inputs in the references' order, the array the shape comes from last."""
    rows = as_rows(first)
    result = np.empty_like(rows)
    with threads_for(rows.size):
        rows_kernel(*[as_rows(a) for a in more], rows, result)
    return result.reshape(first.shape)


def softmax_forward(x, axis=-1):
    """x: (..., V) -> out: (..., V), cache (out, axis)"""
    if not _last_axis_float32(x, axis):
        return NotImplemented
    out = _run_rows(_softmax_rows, x)
    return out, (out, axis)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _softmax_backward_rows(dout, out, dx):
    """dout, out, dx: (N, V) float32"""
    for n in prange(out.shape[0]):
        # dx_i = out_i * (dout_i - sum_j dout_j out_j)
        dot = np.float32(0.0)
        for j in range(out.shape[1]):
            dot += dout[n, j] * out[n, j]
        for j in range(out.shape[1]):
            dx[n, j] = out[n, j] * (dout[n, j] - dot)


def softmax_backward(dout, cache):
    """dout: (..., V) -> dx: (..., V)"""
    out, axis = cache
    if not _last_axis_float32(out, axis) or dout.dtype != np.float32 or dout.shape != out.shape:
        return NotImplemented
    return _run_rows(_softmax_backward_rows, out, dout)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _log_softmax_rows(x, out):
    """x, out: (N, V) float32"""
    for n in prange(x.shape[0]):
        row_max = np.float32(-np.inf)
        for j in range(x.shape[1]):
            row_max = max(row_max, x[n, j])
        total = np.float32(0.0)
        for j in range(x.shape[1]):
            out[n, j] = x[n, j] - row_max
            total += exp32(out[n, j])
        # out = (x - max) - log(sum), in that order: x - (max + log(sum)) would round max + log(sum)
        # to the precision of max, ~1e-3 for logits of 1e4
        log_total = np.float32(math.log(total))
        for j in range(x.shape[1]):
            out[n, j] -= log_total


def log_softmax_forward(x, axis=-1):
    """x: (..., V) -> out: (..., V) = x - logsumexp(x), cache (out, axis)"""
    if not _last_axis_float32(x, axis):
        return NotImplemented
    out = _run_rows(_log_softmax_rows, x)
    return out, (out, axis)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _log_softmax_backward_rows(dout, out, dx):
    """dout, out, dx: (N, V) float32"""
    for n in prange(out.shape[0]):
        # out_i = x_i - lse(x) and d lse / d x_j = softmax_j = exp(out_j)
        total = np.float32(0.0)
        for j in range(out.shape[1]):
            total += dout[n, j]
        for j in range(out.shape[1]):
            dx[n, j] = dout[n, j] - exp32(out[n, j]) * total


def log_softmax_backward(dout, cache):
    """dout: (..., V) -> dx: (..., V)"""
    out, axis = cache
    if not _last_axis_float32(out, axis) or dout.dtype != np.float32 or dout.shape != out.shape:
        return NotImplemented
    return _run_rows(_log_softmax_backward_rows, out, dout)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _cross_entropy_rows(logits, targets, keep, lse, losses):
    """logits: (N, V) float32, targets: (N,) int64, keep: (N,) bool -> lse: (N, 1), losses: (N,)"""
    for n in prange(logits.shape[0]):
        row_max = np.float32(-np.inf)
        for j in range(logits.shape[1]):
            row_max = max(row_max, logits[n, j])
        total = np.float32(0.0)
        for j in range(logits.shape[1]):
            total += exp32(logits[n, j] - row_max)
        lse[n, 0] = row_max + np.float32(math.log(total))
        # loss_n = -log_softmax(logits)[n, t_n] = lse_n - logits[n, t_n]; ignored rows add 0
        losses[n] = lse[n, 0] - logits[n, targets[n]] if keep[n] else np.float32(0.0)


def _safe_targets(logits, targets, keep):
    """int64 (N,) targets with ignored rows set to 0, or None if the kernel cannot take these inputs."""
    if not (isinstance(logits, np.ndarray) and logits.dtype == np.float32 and logits.ndim == 2):
        return None
    if targets.ndim != 1 or targets.dtype.kind not in "iu" or targets.shape != keep.shape:
        return None  # probability targets, or shapes the reference will explain
    safe = np.where(keep, targets, 0).astype(np.int64)
    if safe.size and (safe.min() < 0 or safe.max() >= logits.shape[1]):
        return None  # out of range: the reference raises the IndexError (no unchecked reads here)
    return safe


def cross_entropy_forward(logits, targets, ignore_index=-100, reduction="mean"):
    """logits: (N, V), targets: int (N,) -> loss: () for mean/sum, (N,) for none; cache as the reference"""
    if targets.ndim != 1 or reduction not in ("mean", "sum", "none"):
        return NotImplemented
    keep = targets != ignore_index  # (N,)
    safe = _safe_targets(logits, targets, keep)
    if safe is None:
        return NotImplemented
    n = logits.shape[0]
    lse = np.empty((n, 1), dtype=np.float32)
    losses = np.empty(n, dtype=np.float32)
    with threads_for(logits.size):
        _cross_entropy_rows(np.ascontiguousarray(logits), safe, keep, lse, losses)
    count = int(keep.sum())
    if reduction == "mean":
        # NOTE: with every target ignored this is 0/0 = nan, as in the reference and PyTorch
        loss = np.asarray(losses.sum() / count if count else np.nan, dtype=np.float32)
    elif reduction == "sum":
        loss = np.asarray(losses.sum(), dtype=np.float32)
    else:
        loss = losses
    return loss, (logits, lse, targets, keep, reduction, count)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _cross_entropy_backward_rows(logits, lse, targets, keep, row_scale, dlogits):
    """logits: (N, V), lse: (N, 1), targets: (N,) int64, keep: (N,), row_scale: (N,) -> dlogits: (N, V)"""
    for n in prange(logits.shape[0]):
        # loss_n = lse_n - logits[n, t_n]: d/dlogits = softmax - one_hot(t), zero for ignored rows
        weight = row_scale[n] if keep[n] else np.float32(0.0) * row_scale[n]  # 0 * nan stays nan
        for j in range(logits.shape[1]):
            dlogits[n, j] = exp32(logits[n, j] - lse[n, 0]) * weight
        if keep[n]:
            dlogits[n, targets[n]] -= weight


def cross_entropy_backward(dout, cache):
    """dout: () or (N,) -> dlogits: (N, V), None for the targets"""
    logits, lse, targets, keep, reduction, count = cache
    if keep is None or lse.dtype != np.float32 or dout.dtype != np.float32:
        return NotImplemented  # probability targets (keep is None): the reference runs
    safe = _safe_targets(logits, targets, keep)
    if safe is None:
        return NotImplemented
    n = logits.shape[0]
    if reduction == "mean":
        row_scale = np.full(n, dout / count if count else np.nan, dtype=np.float32)
    elif reduction == "sum":
        row_scale = np.full(n, dout, dtype=np.float32)
    else:
        row_scale = np.ascontiguousarray(dout, dtype=np.float32).reshape(n)
    dlogits = np.empty((n, logits.shape[1]), dtype=np.float32)
    with threads_for(logits.size):
        _cross_entropy_backward_rows(np.ascontiguousarray(logits), np.ascontiguousarray(lse),
                                     safe, keep, row_scale, dlogits)
    return dlogits, None
