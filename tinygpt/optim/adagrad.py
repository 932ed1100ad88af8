"""Adagrad (Duchi et al. 2011): each weight's step is lr divided by the root of the *sum* of all
its squared gradients so far, so often-updated weights slow down and rare ones keep big steps.
PyTorch's rule, arguments and defaults (eps added to the square root, lr_decay, an initial sum).
`eps_inside_sqrt=True` gives Keras' rule, sqrt(sum + eps), which tinygpt.keras Adagrad uses.
Not here: a running *mean* of squares that forgets old gradients (rmsprop.py).
"""

import numpy as np

from tinygpt.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, *, eps_inside_sqrt=False):
        if lr < 0 or lr_decay < 0 or weight_decay < 0 or initial_accumulator_value < 0 or eps < 0:
            raise ValueError(f"Adagrad: need lr, lr_decay, weight_decay, initial_accumulator_value and "
                             f"eps >= 0, got lr={lr}, lr_decay={lr_decay}, weight_decay={weight_decay}, "
                             f"initial_accumulator_value={initial_accumulator_value}, eps={eps}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      eps_inside_sqrt=bool(eps_inside_sqrt)))

    def update(self, param, grad, group, state):
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(param.data, group["initial_accumulator_value"])  # Σ g²
        state["step"] += 1
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.data  # L2, as in torch
        lr = group["lr"] / (1.0 + (state["step"] - 1) * group["lr_decay"])
        total = state["sum"]
        total += grad * grad
        eps = group["eps"]
        denom = np.sqrt(total + eps) if group["eps_inside_sqrt"] else np.sqrt(total) + eps
        param.data -= lr * grad / denom
