"""Numba AdamW update: one pass that reads param, grad, m, v once and writes param, m, v once.

The NumPy reference makes about ten passes (each `*=`, `+=` and temporary is one); the math, and the
order of every float32 operation, are the same as there. Not here: float64, or parameters, m or v
that are not C-contiguous (an update in place cannot work on a copy): the reference runs.
"""

import numpy as np
from numba import njit, prange

from .numba_math import FAST, threads_for


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _adamw_flat(param, grad, m, v, decay, beta1, one_minus_beta1, beta2, one_minus_beta2,
                lr, m_hat_scale, v_hat_scale, eps):
    """param, grad, m, v: (N,) float32, every other argument a float32 scalar"""
    for i in prange(param.size):
        p = param[i] * decay  # decoupled weight decay: decay = 1 - lr * weight_decay
        mi = m[i] * beta1 + one_minus_beta1 * grad[i]  # running mean of the gradient
        vi = v[i] * beta2 + one_minus_beta2 * grad[i] * grad[i]  # and of its square
        m[i] = mi
        v[i] = vi
        # bias correction: m and v start at 0, so early averages are too small by (1 - beta**step)
        param[i] = p - lr * (mi * m_hat_scale) / (np.sqrt(vi * v_hat_scale) + eps)


def _in_place_float32(a, shape):
    return isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == shape \
        and a.flags.c_contiguous and a.flags.writeable


def adamw_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """param, grad, m, v: same shape, updated in place (all but grad); step counts from 1."""
    if not all(_in_place_float32(a, param.shape) for a in (param, m, v)) \
            or not isinstance(grad, np.ndarray) or grad.dtype != np.float32 or grad.shape != param.shape:
        return NotImplemented
    f32 = np.float32
    with threads_for(param.size):
        _adamw_flat(param.reshape(-1), np.ascontiguousarray(grad).reshape(-1), m.reshape(-1), v.reshape(-1),
                    f32(1.0 - lr * weight_decay), f32(beta1), f32(1.0 - beta1), f32(beta2), f32(1.0 - beta2),
                    f32(lr), f32(1.0 / (1.0 - beta1 ** step)), f32(1.0 / (1.0 - beta2 ** step)), f32(eps))
    return None
