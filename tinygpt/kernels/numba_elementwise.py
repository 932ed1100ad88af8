"""Numba GELUs, forward and backward, one pass over memory each: GPT-2's tanh approximation
(`gelu`) and the exact erf form (`gelu_erf`, PyTorch's default).

Written with the sigmoid, since 0.5 (1 + tanh(u)) = σ(2u): out = x σ(2u), which never computes
1 + tanh(u) for u far below 0, where the reference loses digits to cancellation. Cache: x, as there.
Not here: the other pointwise ops (NumPy's own loops are already single passes), or float64.
"""

import math

import numpy as np
from numba import njit, prange

from .numba_math import FAST, exp32, threads_for

GELU_SCALE = np.float32(math.sqrt(2.0 / math.pi))  # the constants of tinygpt/ops/elementwise.py
GELU_CUBIC = np.float32(0.044715)
INV_SQRT2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _gelu_flat(x, out):
    """x, out: (N,) float32"""
    for i in prange(x.size):
        u = GELU_SCALE * (x[i] + GELU_CUBIC * x[i] * x[i] * x[i])
        e = exp32(np.float32(-2.0) * abs(u))
        s = np.float32(1.0) / (np.float32(1.0) + e)  # σ(2|u|)
        out[i] = x[i] * (s if u >= 0 else e * s)  # σ(2u), and σ(-2|u|) = e σ(2|u|)


def _forward(flat_kernel, x):
    """out = flat_kernel over x's elements -> (out, cache x), or NotImplemented for non-float32."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        return NotImplemented
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    with threads_for(flat.size):
        flat_kernel(flat, out)
    return out.reshape(x.shape), x


def _backward(flat_kernel, dout, x):
    """dx = flat_kernel over (dout, x) elementwise, or NotImplemented for non-float32."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or dout.dtype != np.float32 \
            or dout.shape != x.shape:
        return NotImplemented
    flat = np.ascontiguousarray(x).reshape(-1)
    dx = np.empty_like(flat)
    with threads_for(flat.size):
        flat_kernel(np.ascontiguousarray(dout).reshape(-1), flat, dx)
    return dx.reshape(x.shape)


def gelu_forward(x):
    """x: (...) -> out: (...), cache x. GPT-2's 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))"""
    return _forward(_gelu_flat, x)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _gelu_backward_flat(dout, x, dx):
    """dout, x, dx: (N,) float32"""
    for i in prange(x.size):
        u = GELU_SCALE * (x[i] + GELU_CUBIC * x[i] * x[i] * x[i])
        e = exp32(np.float32(-2.0) * abs(u))
        a = np.float32(1.0) / (np.float32(1.0) + e)
        s = a if u >= 0 else e * a  # σ(2u)
        # out = x σ(2u): d/dx = σ(2u) + x 2σ(2u)(1 - σ(2u)) du/dx, and σ(2u)(1 - σ(2u)) = e a²
        du = GELU_SCALE * (np.float32(1.0) + np.float32(3.0) * GELU_CUBIC * x[i] * x[i])
        dx[i] = dout[i] * (s + np.float32(2.0) * x[i] * e * a * a * du)


def gelu_backward(dout, x):
    """dout: (...) -> dx: (...)"""
    return _backward(_gelu_backward_flat, dout, x)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _gelu_erf_flat(x, out):
    """x, out: (N,) float32; erf in float64, as math.erf is, then rounded once"""
    for i in prange(x.size):
        xi = np.float64(x[i])
        out[i] = 0.5 * xi * (1.0 + math.erf(xi * INV_SQRT2))


def gelu_erf_forward(x):
    """x: (...) -> out: (...), cache x. The exact GELU: 0.5 x (1 + erf(x / sqrt(2)))"""
    return _forward(_gelu_erf_flat, x)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _gelu_erf_backward_flat(dout, x, dx):
    """dout, x, dx: (N,) float32"""
    for i in prange(x.size):
        xi = np.float64(x[i])
        # out = x Φ(x): d/dx = Φ(x) + x φ(x)
        cdf = 0.5 * (1.0 + math.erf(xi * INV_SQRT2))
        dx[i] = dout[i] * (cdf + xi * INV_SQRT_2PI * math.exp(-0.5 * xi * xi))


def gelu_erf_backward(dout, x):
    """dout: (...) -> dx: (...)"""
    return _backward(_gelu_erf_backward_flat, dout, x)
