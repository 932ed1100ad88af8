"""Layer normalisation over the last axis: out = (x - mean) / sqrt(var + eps) * w + b.

eps goes inside the square root, as in GPT-2 and PyTorch, so a constant row gives 0, not nan.
Not here: batch norm or RMSNorm (GPT-2 uses neither).
"""

import numpy as np

from tinygpt.backend import kernel


@kernel
def layernorm_forward(x, w, b, eps=1e-5):
    """x: (..., C), w: (C,), b: (C,) or None -> out: (..., C), cache (xhat, rstd, w, b is None)"""
    mean = np.mean(x, axis=-1, keepdims=True)  # (..., 1)
    centered = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True)  # biased, as in GPT-2
    rstd = 1.0 / np.sqrt(var + eps)  # (..., 1)
    xhat = centered * rstd
    out = xhat * w if b is None else xhat * w + b
    return out, (xhat, rstd, w, b is None)


@kernel
def layernorm_backward(dout, cache):
    """dout: (..., C) -> dx: (..., C), dw: (C,), db: (C,) or None"""
    xhat, rstd, w, no_bias = cache
    c = xhat.shape[-1]
    lead = tuple(range(xhat.ndim - 1))
    # forward: out = xhat * w + b, so dw = sum(dout * xhat) and db = sum(dout)
    dw = np.sum(dout * xhat, axis=lead)
    db = None if no_bias else np.sum(dout, axis=lead)
    # xhat = (x - mean) * rstd; differentiating through mean and rstd gives the classic
    # dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    dxhat = dout * w
    dx = rstd * (dxhat - np.sum(dxhat, axis=-1, keepdims=True) / c
                 - xhat * (np.sum(dxhat * xhat, axis=-1, keepdims=True) / c))
    return dx, dw, db
