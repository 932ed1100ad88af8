"""Stochastic gradient descent with optional momentum, Nesterov momentum and (L2) weight decay,
with PyTorch's update rule (dampening 0), so both libraries take the same steps.
Not here: adaptive methods (adam.py).
"""

from tinygpt.optim.optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr=1e-2, momentum=0.0, nesterov=False, weight_decay=0.0):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got lr={lr}, "
                             f"momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    def update(self, param, grad, group, state):
        lr, momentum = group["lr"], group["momentum"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * param.data  # L2: the penalty's gradient, wd * w
        if momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()  # the first step starts the average at g
            else:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += grad  # buf = momentum * buf + g
            buf = state["momentum_buffer"]
            # Nesterov: step along the gradient plus the *next* momentum, a look-ahead
            grad = grad + momentum * buf if group["nesterov"] else buf
        param.data -= lr * grad
