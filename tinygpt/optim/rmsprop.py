"""RMSprop (Hinton's lecture 6e): each weight's step is divided by a running root-mean-square of
its own gradient, so weights with big gradients take small steps and the other way round.
PyTorch's rule, arguments and defaults (alpha is the decay of the running mean; eps is added to
its square root), with `centered` and `momentum` as there. `eps_inside_sqrt=True` gives Keras'
rule instead, sqrt(v + eps), which tinygpt.keras.optimizers.RMSprop uses.
Not here: Adam's bias-corrected moments (adam.py).
"""

import numpy as np

from tinygpt.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, eps_inside_sqrt=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or momentum < 0 or not 0.0 <= alpha < 1.0:
            raise ValueError(f"RMSprop: need lr, eps, weight_decay, momentum >= 0 and alpha in "
                             f"[0, 1), got lr={lr}, alpha={alpha}, eps={eps}, "
                             f"weight_decay={weight_decay}, momentum={momentum}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=bool(centered),
                                      eps_inside_sqrt=bool(eps_inside_sqrt)))

    def update(self, param, grad, group, state):
        if not state:
            state["square_avg"] = np.zeros_like(param.data)  # v, running mean of g²
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(param.data)  # running mean of g
            if group["momentum"]:
                state["momentum_buffer"] = np.zeros_like(param.data)
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.data  # L2, as in torch
        alpha = group["alpha"]
        v = state["square_avg"]
        v *= alpha
        v += (1.0 - alpha) * grad * grad  # v = alpha v + (1 - alpha) g²
        variance = v
        if group["centered"]:  # divide by the standard deviation instead of the RMS
            g_avg = state["grad_avg"]
            g_avg *= alpha
            g_avg += (1.0 - alpha) * grad
            variance = v - g_avg * g_avg
        eps = group["eps"]
        denom = np.sqrt(variance + eps) if group["eps_inside_sqrt"] else np.sqrt(variance) + eps
        if group["momentum"]:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += grad / denom  # buf = momentum buf + g / denom
            param.data -= group["lr"] * buf
        else:
            param.data -= group["lr"] * grad / denom
