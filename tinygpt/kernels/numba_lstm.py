"""Numba LSTM layer over a whole sequence: every step's gate nonlinearities and cell update fused
into one pass over (B, 4D), forward and backward through time.

The matrix products stay NumPy's (OpenBLAS sgemm, called with `out=` so no step allocates): the
input projection of all steps at once, then h_{t-1} W_hh step by step, then the weight gradients
of all steps at once. Same gate order (i, f, g, o), arguments and cache as tinygpt/ops/lstm.py.
Not here: float64 (the reference runs), stacking layers, or dropout (nn.LSTM).
NOTE: np.dot inside @njit would need SciPy, which tinygpt does not depend on: the matmuls are here.
"""

import numpy as np
from numba import njit

from .numba_math import FAST, sigmoid32, tanh32


# One step is B * 4D numbers, tens of microseconds: too little to pay for waking a second thread
# T times per sequence, so the steps run on one core (the matmuls between them use both).
# Each loop below touches few arrays: with more, LLVM gives up proving they do not overlap and
# does not vectorise, so the step is split into several small loops rather than one doing everything.
@njit(fastmath=FAST, error_model="numpy", cache=True)
def _lstm_step_forward(xw, a, t, gates, hs, cs, tanh_c):
    """xw: (B, T, 4D), a = h_{t-1} W_hh: (B, 4D), overwritten
    -> gates[:, t], hs[:, t + 1], cs[:, t + 1], tanh_c[:, t]"""
    d = hs.shape[2]
    for n in range(a.shape[0]):
        a_n, xw_n, gate = a[n], xw[n, t], gates[n, t]
        for j in range(4 * d):
            a_n[j] += xw_n[j]  # a_t = x_t W_ih + b + h_{t-1} W_hh
        for j in range(2 * d):  # i = σ(a_i), f = σ(a_f)
            gate[j] = sigmoid32(a_n[j])
        for j in range(2 * d, 3 * d):  # g = tanh(a_g)
            gate[j] = tanh32(a_n[j])
        for j in range(3 * d, 4 * d):  # o = σ(a_o)
            gate[j] = sigmoid32(a_n[j])
        c_prev, c, tc, h = cs[n, t], cs[n, t + 1], tanh_c[n, t], hs[n, t + 1]
        for j in range(d):
            c[j] = gate[d + j] * c_prev[j] + gate[j] * gate[2 * d + j]  # c_t = f c_{t-1} + i g
            tc[j] = tanh32(c[j])
        for j in range(d):
            h[j] = gate[3 * d + j] * tc[j]  # h_t = o tanh(c_t)


def _float32(*arrays):
    return all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays)


def lstm_forward(x, h0, c0, w_ih, w_hh, b):
    """x: (B, T, I), h0, c0: (B, D), w_ih: (I, 4D), w_hh: (D, 4D), b: (4D,)
    -> (out: (B, T, D), h_T: (B, D), c_T: (B, D)), cache"""
    if not _float32(x, h0, c0, w_ih, w_hh, b) or x.ndim != 3 or h0.ndim != 2:
        return NotImplemented
    batch, steps, features = x.shape
    d = h0.shape[1]
    if c0.shape != (batch, d) or h0.shape[0] != batch or w_ih.shape != (features, 4 * d) \
            or w_hh.shape != (d, 4 * d) or b.shape != (4 * d,):
        return NotImplemented
    xw = np.matmul(x, w_ih) + b  # (B, T, 4D): every step's input projection at once
    gates = np.empty((batch, steps, 4 * d), dtype=np.float32)  # activated i, f, g, o
    hs = np.empty((batch, steps + 1, d), dtype=np.float32)  # hs[:, 0] = h0, hs[:, t+1] = h_t
    cs = np.empty((batch, steps + 1, d), dtype=np.float32)
    tanh_c = np.empty((batch, steps, d), dtype=np.float32)
    hs[:, 0], cs[:, 0] = h0, c0
    a = np.empty((batch, 4 * d), dtype=np.float32)
    for t in range(steps):
        np.matmul(hs[:, t], w_hh, out=a)  # the recurrence: the only product that must wait for h_{t-1}
        _lstm_step_forward(xw, a, t, gates, hs, cs, tanh_c)
    return (hs[:, 1:], hs[:, -1], cs[:, -1]), (x, w_ih, w_hh, gates, hs, cs, tanh_c)


@njit(fastmath=FAST, error_model="numpy", cache=True)
def _lstm_step_backward(dout, t, dh_next, dc_next, gates, cs, tanh_c, da_all):
    """dout: (B, T, D), dh_next, dc_next: (B, D) -> da_all[:, t]; dc_next becomes dc_{t-1} in place"""
    d = cs.shape[2]
    for n in range(dout.shape[0]):
        dout_n, dh_n, dc_n = dout[n, t], dh_next[n], dc_next[n]
        gate, tc, c_prev, da = gates[n, t], tanh_c[n, t], cs[n, t], da_all[n, t]
        for j in range(d):
            dh = dout_n[j] + dh_n[j]
            o = gate[3 * d + j]
            # h = o tanh(c): do = dh tanh(c), and c receives dh o (1 - tanh²) on top of what t+1 sent
            dc_n[j] += dh * o * (np.float32(1.0) - tc[j] * tc[j])
            da[3 * d + j] = dh * tc[j] * o * (np.float32(1.0) - o)  # through σ' = σ (1 - σ)
        for j in range(d):
            i, f, g = gate[j], gate[d + j], gate[2 * d + j]
            # c = f c_prev + i g, then through σ' = σ (1 - σ) and tanh' = 1 - tanh²
            da[j] = dc_n[j] * g * i * (np.float32(1.0) - i)
            da[d + j] = dc_n[j] * c_prev[j] * f * (np.float32(1.0) - f)
            da[2 * d + j] = dc_n[j] * i * (np.float32(1.0) - g * g)
            dc_n[j] *= f  # what c_{t-1} receives


def lstm_backward(douts, cache):
    """douts: (dout (B, T, D) or None, dh_T (B, D) or None, dc_T (B, D) or None)
    -> dx, dh0, dc0, dw_ih, dw_hh, db"""
    x, w_ih, w_hh, gates, hs, cs, tanh_c = cache
    dout, dh_last, dc_last = douts
    if not _float32(x, w_ih, w_hh, gates, hs, cs, tanh_c) \
            or not all(g is None or _float32(g) for g in douts):
        return NotImplemented
    batch, steps, _ = x.shape
    d = hs.shape[2]
    zeros = np.zeros((batch, d), dtype=np.float32)
    dout = np.zeros((batch, steps, d), np.float32) if dout is None else np.ascontiguousarray(dout)
    dh_next = zeros.copy() if dh_last is None else np.array(dh_last, dtype=np.float32, order="C")
    dc_next = zeros.copy() if dc_last is None else np.array(dc_last, dtype=np.float32, order="C")
    gates, cs, tanh_c = (np.ascontiguousarray(a) for a in (gates, cs, tanh_c))
    da_all = np.empty((batch, steps, 4 * d), dtype=np.float32)  # gradient of the pre-activations
    w_hh_t = np.ascontiguousarray(w_hh.T)
    for t in reversed(range(steps)):
        _lstm_step_backward(dout, t, dh_next, dc_next, gates, cs, tanh_c, da_all)
        np.matmul(da_all[:, t], w_hh_t, out=dh_next)  # a = ... + h_prev W_hh
    flat_da = da_all.reshape(-1, 4 * d)  # (B*T, 4D)
    dw_hh = hs[:, :-1].reshape(-1, d).T @ flat_da  # summed over every step at once
    dw_ih = x.reshape(-1, x.shape[2]).T @ flat_da
    db = flat_da.sum(axis=0)
    dx = np.matmul(da_all, w_ih.T)  # (B, T, I)
    return dx, dh_next, dc_next, dw_ih, dw_hh, db
