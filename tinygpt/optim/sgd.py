"""Stochastic gradient descent with optional momentum (and its dampening), Nesterov momentum and
(L2) weight decay, with PyTorch's update rule, arguments and defaults, so both take the same steps.
Not here: adaptive methods (adam.py).
"""

from tinygpt.optim.optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got lr={lr}, "
                             f"momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening 0, got "
                             f"momentum={momentum}, dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

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
                buf += (1.0 - group["dampening"]) * grad  # buf = momentum buf + (1 - dampening) g
            buf = state["momentum_buffer"]
            # Nesterov: step along the gradient plus the *next* momentum, a look-ahead
            grad = grad + momentum * buf if group["nesterov"] else buf
        param.data -= lr * grad
