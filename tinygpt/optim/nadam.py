"""NAdam (Dozat 2016): Adam with Nesterov momentum: the step uses the momentum *after* this
update (mu_next m) plus the current gradient's share ((1 - mu) g), with Dozat's momentum schedule
mu_t = beta1 (1 - 0.5 * 0.96^(t * momentum_decay)) and bias correction by the product of the mus.
PyTorch's rule, arguments and defaults; Keras' Nadam is the same rule (its decay is 0.004 too).
Not here: plain Adam (adam.py), or torch's decoupled_weight_decay variant.
"""

import numpy as np

from tinygpt.optim.optimizer import Optimizer


class NAdam(Optimizer):
    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 momentum_decay=4e-3):
        if lr < 0 or eps < 0 or weight_decay < 0 or momentum_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"NAdam: need lr, eps, weight_decay, momentum_decay >= 0 and betas in "
                             f"[0, 1), got lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}, "
                             f"momentum_decay={momentum_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay))

    def update(self, param, grad, group, state):
        if not state:
            state["step"] = 0
            state["mu_product"] = 1.0  # Π mu_1..mu_t, the bias correction of m
            state["exp_avg"] = np.zeros_like(param.data)
            state["exp_avg_sq"] = np.zeros_like(param.data)
        state["step"] += 1
        t = state["step"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.data  # L2, as in torch
        beta1, beta2 = group["betas"]
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * group["momentum_decay"]))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * group["momentum_decay"]))
        state["mu_product"] *= mu
        mu_product = state["mu_product"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * grad
        v *= beta2
        v += (1.0 - beta2) * grad * grad
        denom = np.sqrt(v / (1.0 - beta2 ** t)) + group["eps"]
        # Nesterov: this gradient's share now, plus the next step's momentum applied early
        param.data -= group["lr"] * ((1.0 - mu) / (1.0 - mu_product) * grad / denom
                                     + mu_next / (1.0 - mu_product * mu_next) * m / denom)
