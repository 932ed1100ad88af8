"""One GRU layer over a whole sequence, forward and backpropagation through time.

Gates in PyTorch's order (reset, update, new), weights stored (in, out) like a Linear, the reset
gate applied after the recurrent product (PyTorch's GRU, Keras' default reset_after=True):
r = σ(x W_r + b_ir + h W_hr + b_hr), z = σ(x W_z + b_iz + h W_hz + b_hz),
n = tanh(x W_n + b_in + r (h W_hn + b_hn)), h_t = (1 - z) n + z h_{t-1}.
Keras names the same gates z, r, h and stores them in that order (keras/layers_recurrent.py maps).
Not here: Keras' reset_after=False variant (composed from primitives in tinygpt.keras), stacking.
"""

import numpy as np

from tinygpt.backend import kernel


def _sigmoid(x):
    return np.exp(-np.logaddexp(0.0, -x))


@kernel
def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    """x: (B, T, I), h0: (B, D), w_ih: (I, 3D), w_hh: (D, 3D), b_ih, b_hh: (3D,)
    -> (out: (B, T, D), h_T: (B, D)), cache"""
    batch, steps, _ = x.shape
    d = h0.shape[1]
    xw = np.matmul(x, w_ih) + b_ih  # (B, T, 3D): every step's input projection at once
    gates = np.empty((batch, steps, 3 * d), dtype=x.dtype)  # activated r, z, n
    hn = np.empty((batch, steps, d), dtype=x.dtype)  # h_{t-1} W_hn + b_hn, which r scales
    hs = np.empty((batch, steps + 1, d), dtype=x.dtype)  # hs[:, 0] = h0, hs[:, t+1] = h_t
    hs[:, 0] = h0
    for t in range(steps):
        hw = hs[:, t] @ w_hh + b_hh  # (B, 3D)
        rz = _sigmoid(xw[:, t, :2 * d] + hw[:, :2 * d])
        r, z = rz[:, :d], rz[:, d:]
        n = np.tanh(xw[:, t, 2 * d:] + r * hw[:, 2 * d:])
        hs[:, t + 1] = (1.0 - z) * n + z * hs[:, t]
        gates[:, t, :2 * d], gates[:, t, 2 * d:] = rz, n
        hn[:, t] = hw[:, 2 * d:]
    return (hs[:, 1:], hs[:, -1]), (x, w_ih, w_hh, gates, hs, hn)


@kernel
def gru_backward(douts, cache):
    """douts: (dout (B, T, D) or None, dh_T (B, D) or None)
    -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh"""
    x, w_ih, w_hh, gates, hs, hn = cache
    dout, dh_next = douts
    batch, steps, _ = x.shape
    d = hs.shape[2]
    dh_next = np.zeros((batch, d), x.dtype) if dh_next is None else dh_next
    dxw = np.empty((batch, steps, 3 * d), dtype=x.dtype)  # gradient of x W_ih + b_ih
    dhw = np.empty((batch, steps, 3 * d), dtype=x.dtype)  # gradient of h W_hh + b_hh
    for t in reversed(range(steps)):
        dh = dh_next if dout is None else dout[:, t] + dh_next
        r, z, n = gates[:, t, :d], gates[:, t, d:2 * d], gates[:, t, 2 * d:]
        h_prev = hs[:, t]
        # h = (1 - z) n + z h_prev
        dn = dh * (1.0 - z)
        dz = dh * (h_prev - n)
        # n = tanh(a_n), a_n = xw_n + r hn: through tanh' = 1 - tanh², then the product r hn
        da_n = dn * (1.0 - n * n)
        dxw[:, t, 2 * d:] = da_n
        dhw[:, t, 2 * d:] = da_n * r
        dr = da_n * hn[:, t]
        # r, z = σ(xw + hw): σ' = σ (1 - σ); both products receive the same gradient
        dxw[:, t, :d] = dhw[:, t, :d] = dr * r * (1.0 - r)
        dxw[:, t, d:2 * d] = dhw[:, t, d:2 * d] = dz * z * (1.0 - z)
        dh_next = dh * z + dhw[:, t] @ w_hh.T  # hw = h_prev W_hh + b_hh
    flat_dxw, flat_dhw = dxw.reshape(-1, 3 * d), dhw.reshape(-1, 3 * d)  # (B*T, 3D)
    dw_hh = hs[:, :-1].reshape(-1, d).T @ flat_dhw  # summed over every step at once
    dw_ih = x.reshape(-1, x.shape[2]).T @ flat_dxw
    dx = np.matmul(dxw, w_ih.T)  # (B, T, I)
    return dx, dh_next, dw_ih, dw_hh, flat_dxw.sum(axis=0), flat_dhw.sum(axis=0)
