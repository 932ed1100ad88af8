"""One LSTM layer over a whole sequence, forward and backpropagation through time.

Gates in PyTorch's order (input, forget, cell, output), weights stored (in, out) like a Linear:
a_t = x_t W_ih + h_{t-1} W_hh + b, i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o),
c_t = f c_{t-1} + i g, h_t = o tanh(c_t). The input projection for all steps is one matmul; only
the recurrence h_{t-1} W_hh runs step by step. Not here: stacking layers or dropout (nn.LSTM).
"""

import numpy as np

from tinygpt.backend import kernel


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


@kernel
def lstm_forward(x, h0, c0, w_ih, w_hh, b):
    """x: (B, T, I), h0, c0: (B, D), w_ih: (I, 4D), w_hh: (D, 4D), b: (4D,)
    -> (out: (B, T, D), h_T: (B, D), c_T: (B, D)), cache"""
    batch, steps, _ = x.shape
    d = h0.shape[1]
    xw = np.matmul(x, w_ih) + b  # (B, T, 4D): every step's input projection at once
    gates = np.empty((batch, steps, 4 * d), dtype=x.dtype)  # activated i, f, g, o
    hs = np.empty((batch, steps + 1, d), dtype=x.dtype)  # hs[:, 0] = h0, hs[:, t+1] = h_t
    cs = np.empty((batch, steps + 1, d), dtype=x.dtype)
    tanh_c = np.empty((batch, steps, d), dtype=x.dtype)
    hs[:, 0], cs[:, 0] = h0, c0
    for t in range(steps):
        a = xw[:, t] + hs[:, t] @ w_hh  # (B, 4D)
        ifo = _sigmoid(a[:, np.r_[0:2 * d, 3 * d:4 * d]])
        i, f, o = ifo[:, :d], ifo[:, d:2 * d], ifo[:, 2 * d:]
        g = np.tanh(a[:, 2 * d:3 * d])
        cs[:, t + 1] = f * cs[:, t] + i * g
        tanh_c[:, t] = np.tanh(cs[:, t + 1])
        hs[:, t + 1] = o * tanh_c[:, t]
        gates[:, t, :2 * d], gates[:, t, 2 * d:3 * d], gates[:, t, 3 * d:] = ifo[:, :2 * d], g, o
    out = hs[:, 1:]
    return (out, hs[:, -1], cs[:, -1]), (x, w_ih, w_hh, gates, hs, cs, tanh_c)


@kernel
def lstm_backward(douts, cache):
    """douts: (dout (B, T, D) or None, dh_T (B, D) or None, dc_T (B, D) or None)
    -> dx, dh0, dc0, dw_ih, dw_hh, db"""
    x, w_ih, w_hh, gates, hs, cs, tanh_c = cache
    dout, dh_next, dc_next = douts
    batch, steps, _ = x.shape
    d = hs.shape[2]
    dh_next = np.zeros((batch, d), x.dtype) if dh_next is None else dh_next
    dc_next = np.zeros((batch, d), x.dtype) if dc_next is None else dc_next
    da_all = np.empty((batch, steps, 4 * d), dtype=x.dtype)  # gradient of the pre-activations
    for t in reversed(range(steps)):
        dh = dh_next if dout is None else dout[:, t] + dh_next
        i, f = gates[:, t, :d], gates[:, t, d:2 * d]
        g, o = gates[:, t, 2 * d:3 * d], gates[:, t, 3 * d:]
        tc = tanh_c[:, t]
        # h = o tanh(c): do = dh tanh(c), and c receives dh o (1 - tanh²) on top of what t+1 sent
        dc = dc_next + dh * o * (1.0 - tc * tc)
        # c = f c_prev + i g
        da = da_all[:, t]
        da[:, :d] = dc * g * i * (1.0 - i)  # through σ: σ' = σ (1 - σ)
        da[:, d:2 * d] = dc * cs[:, t] * f * (1.0 - f)
        da[:, 2 * d:3 * d] = dc * i * (1.0 - g * g)  # through tanh: 1 - tanh²
        da[:, 3 * d:] = dh * tc * o * (1.0 - o)
        dc_next = dc * f
        dh_next = da @ w_hh.T  # a = ... + h_prev W_hh
    flat_da = da_all.reshape(-1, 4 * d)  # (B*T, 4D)
    dw_hh = hs[:, :-1].reshape(-1, d).T @ flat_da  # summed over every step at once
    dw_ih = x.reshape(-1, x.shape[2]).T @ flat_da
    db = flat_da.sum(axis=0)
    dx = np.matmul(da_all, w_ih.T)  # (B, T, I)
    return dx, dh_next, dc_next, dw_ih, dw_hh, db
