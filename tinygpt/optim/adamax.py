"""Adamax (Kingma & Ba 2015, section 7): Adam with the root-mean-square of the gradient replaced
by an exponentially decaying *maximum* of its absolute value, u = max(beta2 u, |g|), which needs
no bias correction. PyTorch's rule, arguments and defaults: eps goes inside the max,
u = max(beta2 u, |g| + eps). `eps_after_max=True` gives Keras' rule instead, m / (u + eps).
Not here: Adam's second moment (adam.py).
"""

import numpy as np

from tinygpt.optim.optimizer import Optimizer


class Adamax(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 eps_after_max=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Adamax: need lr, eps, weight_decay >= 0 and betas in [0, 1), got "
                             f"lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      eps_after_max=bool(eps_after_max)))

    def update(self, param, grad, group, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param.data)  # m, running mean of g
            state["exp_inf"] = np.zeros_like(param.data)  # u, decaying max of |g|
        state["step"] += 1
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.data  # L2, as in torch
        beta1, beta2 = group["betas"]
        m, u, eps = state["exp_avg"], state["exp_inf"], group["eps"]
        m *= beta1
        m += (1.0 - beta1) * grad  # m = beta1 m + (1 - beta1) g
        if group["eps_after_max"]:
            np.maximum(beta2 * u, np.abs(grad), out=u)
            denom = u + eps
        else:
            np.maximum(beta2 * u, np.abs(grad) + eps, out=u)
            denom = u
        param.data -= group["lr"] / (1.0 - beta1 ** state["step"]) * m / denom  # only m is bias-corrected
