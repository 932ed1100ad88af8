"""clip_grad_norm_: rescale all gradients together so their global L2 norm is at most max_norm.

One norm over every parameter (not one per parameter), so the direction of the whole update is
kept and only its length shrinks. Not here: clipping by value.
"""

import math

import numpy as np


def clip_grad_norm_(params, max_norm, eps=1e-6):
    """params: Parameters (gradients None are skipped) -> the total norm before clipping, a float.

    Like torch.nn.utils.clip_grad_norm_: a NaN or inf total is returned as it is (not hidden), and the
    gradients are then multiplied by max_norm / (total + eps), which makes them NaN or zero."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    # accumulate in float64: the sum of a million float32 squares loses digits otherwise
    total = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    coef = max_norm / (total + eps)
    if coef < 1.0 or not math.isfinite(total):
        with np.errstate(invalid="ignore"):  # inf * 0 -> nan is the point here, not a surprise
            for g in grads:
                g *= coef  # in place: p.grad stays the same array
    return total
