"""1-D convolution over time, batch first as Keras' Conv1D: x (B, T, C_in), w (K, C_in, C_out).

out[b, t, o] = sum over k, c of xpad[b, t * stride + k * dilation, c] * w[k, c, o]
The forward gathers, for every output step, the K input rows it reads (an "im2col" array of shape
(B, T_out, K, C_in)) and contracts it with w as one matrix product (B*T_out, K*C_in) @ (K*C_in, C_out);
the backward multiplies the same array with dout for dw and adds dout @ wᵀ back onto the rows for dx.
NOTE: matmul, not np.einsum: einsum's batched path ran these shapes ~10x slower than one BLAS GEMM.
Not here: padding choice ('same'/'causal' are computed by the caller as pad_left, pad_right), bias
(added by the layer as a broadcast add), 2-D convolution, a fast kernel.
"""

import numpy as np


def conv1d_forward(x, w, stride=1, dilation=1, pad_left=0, pad_right=0):
    """x: (B, T, C_in), w: (K, C_in, C_out) -> out: (B, T_out, C_out), cache"""
    if x.ndim != 3 or w.ndim != 3 or x.shape[2] != w.shape[1]:
        raise ValueError(f"conv1d: x {x.shape} and w {w.shape} do not fit: expected x (B, T, C_in) "
                         f"and w (K, C_in, C_out) with C_in = {x.shape[-1] if x.ndim else '?'}")
    K = w.shape[0]
    xpad = np.pad(x, ((0, 0), (pad_left, pad_right), (0, 0)))  # (B, T + pads, C_in)
    span = (K - 1) * dilation + 1  # how many input steps one output step reads
    T_out = (xpad.shape[1] - span) // stride + 1
    if T_out < 1:
        raise ValueError(f"conv1d: an input of {x.shape[1]} steps (padded to {xpad.shape[1]}) is shorter "
                         f"than the kernel's span {span} (kernel_size {K}, dilation {dilation})")
    rows = np.arange(T_out)[:, None] * stride + np.arange(K)[None, :] * dilation  # (T_out, K)
    cols = xpad[:, rows]  # (B, T_out, K, C_in): the K input rows each output step reads
    B, C_in, C_out = x.shape[0], w.shape[1], w.shape[2]
    out = (cols.reshape(B * T_out, K * C_in) @ w.reshape(K * C_in, C_out)).reshape(B, T_out, C_out)
    return out, (cols, w, rows, x.shape, pad_left)


def conv1d_backward(dout, cache):
    """dout: (B, T_out, C_out) -> dx: (B, T, C_in), dw: (K, C_in, C_out)"""
    cols, w, rows, x_shape, pad_left = cache
    B, T_out, K, C_in = cols.shape
    C_out = w.shape[2]
    cols2d, dout2d = cols.reshape(B * T_out, K * C_in), dout.reshape(B * T_out, C_out)
    # out = sum_k,c cols[b,t,k,c] * w[k,c,o]: dw[k,c,o] = sum_b,t cols[b,t,k,c] * dout[b,t,o]
    dw = (cols2d.T @ dout2d).reshape(w.shape)
    # and dcols[b,t,k,c] = sum_o dout[b,t,o] * w[k,c,o], each added back to the row it was read from
    dcols = (dout2d @ w.reshape(K * C_in, C_out).T).reshape(B, T_out, K, C_in)
    dxpad = np.zeros((B, rows.max() + 1, C_in), dtype=dout.dtype)
    for k in range(K):  # for one k the rows are distinct, so += adds every step's gradient
        dxpad[:, rows[:, k]] += dcols[:, :, k]
    dx = np.zeros(x_shape, dtype=dout.dtype)
    valid = dxpad[:, pad_left:pad_left + x_shape[1]]  # drop the padding rows (they were zeros)
    dx[:, :valid.shape[1]] = valid
    return dx, dw
