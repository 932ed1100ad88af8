"""Adam and AdamW. Both run the fused `adamw_update` kernel (tinygpt/ops/adamw.py) on each
parameter's arrays in place; they differ only in weight decay:
  Adam  adds weight_decay * w to the gradient (L2, then scaled by the adaptive step, like torch.optim.Adam);
  AdamW shrinks w by lr * weight_decay directly (decoupled, Loshchilov & Hutter; torch.optim.AdamW).
Not here: the update arithmetic itself (the kernel) or the schedule (schedule.py).
"""

import numpy as np

from tinygpt.ops.adamw import adamw_update
from tinygpt.optim.optimizer import Optimizer, weight_decay_groups


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"{type(self).__name__}: need lr, eps, weight_decay >= 0 and betas in "
                             f"[0, 1), got lr={lr}, eps={eps}, weight_decay={weight_decay}, betas={betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    decoupled = False  # AdamW sets True

    def update(self, param, grad, group, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param.data)  # m, the running mean of the gradient
            state["exp_avg_sq"] = np.zeros_like(param.data)  # v, of its square
        state["step"] += 1
        wd = group["weight_decay"]
        if wd and not self.decoupled:
            grad = grad + wd * param.data  # L2 penalty folded into the gradient
        beta1, beta2 = group["betas"]
        adamw_update(param.data, grad, state["exp_avg"], state["exp_avg_sq"], group["lr"], beta1,
                     beta2, group["eps"], wd if self.decoupled else 0.0, state["step"])


class AdamW(Adam):
    """Adam with decoupled weight decay. Given plain parameters (or (name, Parameter) pairs), it
    decays only the 2-D ones: no decay on biases, LayerNorm gains or any 1-D parameter (see
    weight_decay_groups). Given group dicts, it uses them as they are."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = weight_decay_groups(params, weight_decay)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
