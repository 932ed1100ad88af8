"""Numba GRU layer over a whole sequence: every step's gates and state update fused into one pass
over (B, 3D), forward and backward through time.

Laid out as numba_lstm.py: the matrix products stay NumPy's (called with `out=` so no step
allocates), the input projection and the weight gradients of all steps at once. Same gate order
(r, z, n, reset after), arguments and cache as tinygpt/ops/gru.py.
Not here: float64 (the reference runs), stacking layers, Keras' reset_after=False.
"""

import numpy as np
from numba import njit

from .numba_math import FAST, sigmoid32, tanh32


# As the LSTM's: one step is too little work to wake a second thread for, so it runs on one core.
@njit(fastmath=FAST, error_model="numpy", cache=True)
def _gru_step_forward(xw, hw, t, gates, hs, hn):
    """xw: (B, T, 3D), hw = h_{t-1} W_hh + b_hh: (B, 3D) -> gates[:, t], hs[:, t + 1], hn[:, t]"""
    d = hs.shape[2]
    for b in range(hw.shape[0]):
        hw_b, xw_b, gate = hw[b], xw[b, t], gates[b, t]
        for j in range(2 * d):  # r, z = σ(xw + hw)
            gate[j] = sigmoid32(xw_b[j] + hw_b[j])
        hn_b = hn[b, t]
        for j in range(d):
            hn_b[j] = hw_b[2 * d + j]
            gate[2 * d + j] = tanh32(xw_b[2 * d + j] + gate[j] * hn_b[j])  # n = tanh(xw_n + r hn)
        h_prev, h = hs[b, t], hs[b, t + 1]
        for j in range(d):
            z = gate[d + j]
            h[j] = (np.float32(1.0) - z) * gate[2 * d + j] + z * h_prev[j]  # h_t = (1 - z) n + z h


def _float32(*arrays):
    return all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays)


def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    """x: (B, T, I), h0: (B, D), w_ih: (I, 3D), w_hh: (D, 3D), b_ih, b_hh: (3D,)
    -> (out: (B, T, D), h_T: (B, D)), cache"""
    if not _float32(x, h0, w_ih, w_hh, b_ih, b_hh) or x.ndim != 3 or h0.ndim != 2:
        return NotImplemented
    batch, steps, features = x.shape
    d = h0.shape[1]
    if h0.shape[0] != batch or w_ih.shape != (features, 3 * d) or w_hh.shape != (d, 3 * d) \
            or b_ih.shape != (3 * d,) or b_hh.shape != (3 * d,):
        return NotImplemented
    xw = np.matmul(x, w_ih) + b_ih  # (B, T, 3D): every step's input projection at once
    gates = np.empty((batch, steps, 3 * d), dtype=np.float32)  # activated r, z, n
    hn = np.empty((batch, steps, d), dtype=np.float32)
    hs = np.empty((batch, steps + 1, d), dtype=np.float32)  # hs[:, 0] = h0, hs[:, t+1] = h_t
    hs[:, 0] = h0
    hw = np.empty((batch, 3 * d), dtype=np.float32)
    for t in range(steps):
        np.matmul(hs[:, t], w_hh, out=hw)  # the recurrence: the only product that waits for h_{t-1}
        hw += b_hh
        _gru_step_forward(xw, hw, t, gates, hs, hn)
    return (hs[:, 1:], hs[:, -1]), (x, w_ih, w_hh, gates, hs, hn)


@njit(fastmath=FAST, error_model="numpy", cache=True)
def _gru_step_backward(dout, t, dh_next, gates, hs, hn, dxw, dhw):
    """dout: (B, T, D), dh_next: (B, D) -> dxw[:, t], dhw[:, t]; dh_next becomes the direct part
    of dh_{t-1} (dh z) in place; the part through W_hh is added by the caller"""
    d = hs.shape[2]
    for b in range(dout.shape[0]):
        dout_b, dh_b, gate, h_prev, hn_b = dout[b, t], dh_next[b], gates[b, t], hs[b, t], hn[b, t]
        dx_b, dhw_b = dxw[b, t], dhw[b, t]
        for j in range(d):
            dh = dout_b[j] + dh_b[j]
            r, z, n = gate[j], gate[d + j], gate[2 * d + j]
            # h = (1 - z) n + z h_prev; n = tanh(xw_n + r hn); r, z = σ(xw + hw)
            da_n = dh * (np.float32(1.0) - z) * (np.float32(1.0) - n * n)
            da_r = da_n * hn_b[j] * r * (np.float32(1.0) - r)
            da_z = dh * (h_prev[j] - n) * z * (np.float32(1.0) - z)
            dx_b[j] = da_r
            dhw_b[j] = da_r
            dx_b[d + j] = da_z
            dhw_b[d + j] = da_z
            dx_b[2 * d + j] = da_n
            dhw_b[2 * d + j] = da_n * r
            dh_b[j] = dh * z


def gru_backward(douts, cache):
    """douts: (dout (B, T, D) or None, dh_T (B, D) or None) -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh"""
    x, w_ih, w_hh, gates, hs, hn = cache
    dout, dh_last = douts
    if not _float32(x, w_ih, w_hh, gates, hs, hn) or not all(g is None or _float32(g) for g in douts):
        return NotImplemented
    batch, steps, _ = x.shape
    d = hs.shape[2]
    dout = np.zeros((batch, steps, d), np.float32) if dout is None else np.ascontiguousarray(dout)
    dh_next = np.zeros((batch, d), np.float32) if dh_last is None else np.array(dh_last, np.float32, order="C")
    gates, hs, hn = (np.ascontiguousarray(a) for a in (gates, hs, hn))
    dxw = np.empty((batch, steps, 3 * d), dtype=np.float32)  # gradient of x W_ih + b_ih
    dhw = np.empty((batch, steps, 3 * d), dtype=np.float32)  # gradient of h W_hh + b_hh
    w_hh_t = np.ascontiguousarray(w_hh.T)
    through = np.empty((batch, d), dtype=np.float32)
    for t in reversed(range(steps)):
        _gru_step_backward(dout, t, dh_next, gates, hs, hn, dxw, dhw)
        np.matmul(dhw[:, t], w_hh_t, out=through)  # hw = h_prev W_hh + b_hh
        dh_next += through
    flat_dxw, flat_dhw = dxw.reshape(-1, 3 * d), dhw.reshape(-1, 3 * d)  # (B*T, 3D)
    dw_hh = hs[:, :-1].reshape(-1, d).T @ flat_dhw  # summed over every step at once
    dw_ih = x.reshape(-1, x.shape[2]).T @ flat_dxw
    dx = np.matmul(dxw, w_ih.T)  # (B, T, I)
    return dx, dh_next, dw_ih, dw_hh, flat_dxw.sum(axis=0), flat_dhw.sum(axis=0)
