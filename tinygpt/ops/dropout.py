"""Inverted dropout: zero each element with probability p and scale the survivors by 1 / (1 - p),
so the expected activation is unchanged and evaluation needs no rescaling.

The mask comes from a `np.random.Generator` passed in, so the same seed drops the same elements.
Not here: the train/eval switch (the Dropout module skips this op entirely in eval mode).
"""

import numpy as np


def dropout_forward(x, p, rng):
    """x: (...), p in [0, 1), rng: np.random.Generator -> out: (...), cache: the scaled mask"""
    keep = rng.random(x.shape, dtype=np.float32) >= p
    mask = keep * np.asarray(1.0 / (1.0 - p), dtype=x.dtype)  # (...), 0 or 1/(1-p)
    return x * mask, mask


def dropout_backward(dout, mask):
    # out = x * mask, with mask a constant
    return dout * mask
