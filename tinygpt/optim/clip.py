"""clip_grad_norm_: rescale all gradients together so their global L2 norm is at most max_norm.

One norm over every parameter (not one per parameter), so the direction of the whole update is
kept and only its length shrinks. Not here: clipping by value.
"""

import math

import numpy as np

from tinygpt.ops.reduce import sum_of_squares
from tinygpt.tensor import Tensor


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, *, eps=1e-6):
    """parameters: a Parameter or Parameters (gradients None are skipped) -> the total norm before
    clipping, a float. norm_type p: (Σ |g|^p)^(1/p) over every gradient element, or the largest
    |g| for p = inf.

    Like torch.nn.utils.clip_grad_norm_: a NaN or inf total raises with error_if_nonfinite=True and
    is otherwise returned as it is (not hidden); the gradients are then multiplied by
    max_norm / (total + eps), which makes them NaN or zero."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (or inf), got {norm_type}")
    if not grads:
        return 0.0
    # accumulate in float64: the sum of a million float32 squares loses digits otherwise
    if norm_type == 2.0:
        total = math.sqrt(sum(sum_of_squares(g) for g in grads))
    elif norm_type == math.inf:
        total = max(float(np.max(np.abs(g), initial=0.0)) for g in grads)
    else:
        total = sum(float(np.sum(np.abs(g, dtype=np.float64) ** norm_type)) for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients "
                           f"is {total}; with error_if_nonfinite=False it would be returned instead")
    coef = max_norm / (total + eps)
    if coef < 1.0 or not math.isfinite(total):
        with np.errstate(invalid="ignore"):  # inf * 0 -> nan is the point here, not a surprise
            for g in grads:
                g *= coef  # in place: p.grad stays the same array
    return total
