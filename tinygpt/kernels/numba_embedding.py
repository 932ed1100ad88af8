"""Numba embedding backward: one pass adding each use's gradient row onto its token's row.

The NumPy reference sorts the uses by row and adds each run with reduceat (NumPy has no fast
scatter-add of rows); a loop needs no sort. Rows are added in order of use, as the reference's stable
sort adds them, so the sums are the same. Serial: two uses of one token would race in a parallel loop.
Not here: float64 (the reference runs), the forward (a NumPy gather is already one pass).
"""

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def _add_rows(dweight, idx, dout):
    """dweight: (V, C) float32 += dout (N, C) float32 at rows idx (N,) int64"""
    for i in range(idx.shape[0]):
        row = idx[i]
        for c in range(dout.shape[1]):
            dweight[row, c] += dout[i, c]


def embedding_backward(dout, cache):
    """dout: (..., C) -> dweight: (V, C), None; the reference's signature and result."""
    shape, idx = cache
    if dout.dtype != np.float32:
        return NotImplemented
    dweight = np.zeros(shape, dtype=np.float32)
    flat_dout = np.ascontiguousarray(dout.reshape(-1, shape[1]))  # (N, C)
    _add_rows(dweight, idx.reshape(-1).astype(np.int64, copy=False), flat_dout)
    return dweight, None
