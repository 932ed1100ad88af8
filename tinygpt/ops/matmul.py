"""Matrix product with NumPy's rules: batched, broadcasting over leading axes, 1-D operands promoted.

This is the sgemm kernel of tinygpt: the C and Numba versions take over 2-D and batched float32.
Not here: a Linear layer's bias (nn), or attention's fused products (attention.py).
"""

import numpy as np

from tinygpt.backend import kernel
from tinygpt.ops.elementwise import unbroadcast


@kernel
def matmul_forward(a, b):
    """a: (..., M, K), b: (..., K, N) -> out: (..., M, N); 1-D a is (K,), 1-D b is (K,)"""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got shapes "
                         f"{a.shape} and {b.shape}; use * for a scalar product")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not fit: the last axis of "
                         f"the first ({a.shape[-1]}) must equal the "
                         f"{'second-to-last' if b.ndim > 1 else 'only'} axis of the second "
                         f"({b.shape[-2 if b.ndim > 1 else 0]})")
    if a.ndim > 2 and b.ndim == 2 and a.flags.c_contiguous:
        # the Linear-layer case (B, T, K) @ (K, N): one (B*T, K) @ (K, N) product, one BLAS call
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[1],)), (a, b)
    try:
        out = np.matmul(a, b)
    except ValueError:
        raise ValueError(f"matmul: batch axes of shapes {a.shape} and {b.shape} cannot be "
                         f"broadcast together") from None
    return out, (a, b)


@kernel
def matmul_backward(dout, cache):
    """dout: (..., M, N) -> da: a's shape, db: b's shape"""
    a, b = cache
    if a.ndim > 2 and b.ndim == 2:
        # the Linear-layer case: fold (B, T) into one axis, so db is one (K, B*T) @ (B*T, N)
        # product instead of B products of (K, N) summed afterwards
        flat_a = a.reshape(-1, a.shape[-1])  # (B*T, K)
        flat_dout = dout.reshape(-1, dout.shape[-1])  # (B*T, N)
        return (flat_dout @ b.T).reshape(a.shape), flat_a.T @ flat_dout
    # promote 1-D operands the way forward did: a (K,) is (1, K); b (K,) is (K, 1)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    # and give dout back the axes forward dropped: N=1 first, then M=1 before it
    # NOTE: in this order a dot product's 0-d dout becomes (1, 1); expand_dims(dout, -2) fails on it
    d2 = dout[..., None] if b.ndim == 1 else dout
    d2 = d2[..., None, :] if a.ndim == 1 else d2
    # out = a @ b, so da = dout @ b^T and db = a^T @ dout (then sum over broadcast batch axes)
    da = np.matmul(d2, np.swapaxes(b2, -1, -2))
    db = np.matmul(np.swapaxes(a2, -1, -2), d2)
    da = unbroadcast(da, a2.shape).reshape(a.shape)
    db = unbroadcast(db, b2.shape).reshape(b.shape)
    return da, db
