"""The AdamW parameter update, in place: the one optimizer step worth a kernel (it touches every
parameter and both moments once per step, so fusing it saves several passes over memory).

Decoupled weight decay (Loshchilov & Hutter): the parameter shrinks by lr * weight_decay directly,
not through the gradient, so the adaptive scaling does not weaken it. Adam is weight_decay=0.
Not here: which parameters decay, the schedule, or state bookkeeping (tinygpt/optim.py).
"""

import numpy as np

from tinygpt.backend import kernel


@kernel
def adamw_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """param, grad, m, v: same shape, updated in place (all but grad); step counts from 1."""
    if weight_decay:
        param *= 1.0 - lr * weight_decay
    m *= beta1
    m += (1.0 - beta1) * grad  # m: running mean of the gradient
    v *= beta2
    v += (1.0 - beta2) * grad * grad  # v: running mean of its square
    # bias correction: m and v start at 0, so early averages are too small by (1 - beta**step)
    m_hat_scale = 1.0 / (1.0 - beta1 ** step)
    v_hat_scale = 1.0 / (1.0 - beta2 ** step)
    param -= lr * (m * m_hat_scale) / (np.sqrt(v * v_hat_scale) + eps)
