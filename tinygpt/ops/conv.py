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
    # (B, T + pads, C_in); without padding x itself (np.pad would copy it anyway)
    xpad = np.pad(x, ((0, 0), (pad_left, pad_right), (0, 0))) if pad_left or pad_right else x
    span = (K - 1) * dilation + 1  # how many input steps one output step reads
    T_out = (xpad.shape[1] - span) // stride + 1
    if T_out < 1:
        raise ValueError(f"conv1d: an input of {x.shape[1]} steps (padded to {xpad.shape[1]}) is shorter "
                         f"than the kernel's span {span} (kernel_size {K}, dilation {dilation})")
    rows = np.arange(T_out)[:, None] * stride + np.arange(K)[None, :] * dilation  # (T_out, K)
    # (B, T_out, K, C_in): the K input rows each output step reads. NOTE: np.take, not xpad[:, rows]:
    # that indexing returns a transposed (non-contiguous) view, and every reshape of it then copies
    cols = np.take(xpad, rows, axis=1)
    B, C_in, C_out = x.shape[0], w.shape[1], w.shape[2]
    out = (cols.reshape(B * T_out, K * C_in) @ w.reshape(K * C_in, C_out)).reshape(B, T_out, C_out)
    return out, (cols, w, (stride, dilation), x.shape, pad_left)


def conv1d_backward(dout, cache):
    """dout: (B, T_out, C_out) -> dx: (B, T, C_in), dw: (K, C_in, C_out)"""
    cols, w, (stride, dilation), x_shape, pad_left = cache
    B, T_out, K, C_in = cols.shape
    C_out = w.shape[2]
    cols2d, dout2d = cols.reshape(B * T_out, K * C_in), dout.reshape(B * T_out, C_out)
    # out = sum_k,c cols[b,t,k,c] * w[k,c,o]: dw[k,c,o] = sum_b,t cols[b,t,k,c] * dout[b,t,o]
    dw = (cols2d.T @ dout2d).reshape(w.shape)
    # and dcols[b,t,k,c] = sum_o dout[b,t,o] * w[k,c,o], each added back to the row it was read from
    dcols = (dout2d @ w.reshape(K * C_in, C_out).T).reshape(B, T_out, K, C_in)
    span = stride * (T_out - 1) + 1  # tap k of step t read padded row k * dilation + t * stride
    dxpad = np.zeros((B, max((K - 1) * dilation + span, pad_left + x_shape[1]), C_in), dtype=dout.dtype)
    for k in range(K):  # one slice per tap: its rows are distinct, so += adds every step's gradient
        dxpad[:, k * dilation:k * dilation + span:stride] += dcols[:, :, k]
    return dxpad[:, pad_left:pad_left + x_shape[1]], dw  # the padding rows' gradients are dropped
