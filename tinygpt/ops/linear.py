"""A Linear layer as one op: out = x @ w + b, with x's leading axes folded into one GEMM.

As `matmul` then `add` this made two ops, two output arrays and a bias gradient summed by
broadcasting rules; fused, the bias is added in place to the GEMM's fresh output and the whole
layer is one node of the graph. The products go through the registered matmul kernels, so the
C/Numba/NumPy choice is made in one place (backend). Not here: attention's products (attention.py).
"""

import numpy as np

from tinygpt.ops.matmul import matmul_backward, matmul_forward


def linear_forward(x, w, b=None):
    """x: (..., K), w: (K, N), b: (N,) or None -> out: (..., N), cache"""
    if w.ndim != 2 or x.ndim == 0 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"linear: x {x.shape} and weight {w.shape} do not fit: expected x "
                         f"(..., K) and weight (K, N) with K = {w.shape[0] if w.ndim else '?'}")
    if b is not None and b.shape != (w.shape[1],):
        raise ValueError(f"linear: bias has shape {b.shape}, expected ({w.shape[1]},) for weight {w.shape}")
    x2 = x.reshape(-1, x.shape[-1])  # (..., K) -> (rows, K); a view when x is contiguous
    out, matmul_cache = matmul_forward(x2, w)  # (rows, K) @ (K, N) -> (rows, N), a fresh array
    if b is not None:
        out += b  # in place: no second (rows, N) array for the sum
    return out.reshape(x.shape[:-1] + (w.shape[1],)), (matmul_cache, x.shape, b is not None)


def linear_backward(dout, cache):
    """dout: (..., N) -> dx: (..., K), dw: (K, N), db: (N,) or None"""
    matmul_cache, x_shape, has_bias = cache
    d2 = dout.reshape(-1, dout.shape[-1])  # (..., N) -> (rows, N)
    # out = x2 @ w + b: dx2 = dout @ wᵀ, dw = x2ᵀ @ dout (summed over rows inside one GEMM)
    dx2, dw = matmul_backward(d2, matmul_cache)
    # and b was added to every row, so db is dout summed over the rows
    db = np.sum(d2, axis=0) if has_bias else None
    return dx2.reshape(x_shape), dw, db
