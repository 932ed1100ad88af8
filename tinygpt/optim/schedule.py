"""Learning-rate schedules: the learning rate as a pure function of the step, and an object that
writes it into an optimizer's groups. Being pure functions of a saved step count, they resume exactly.

    schedule = WarmupCosine(max_lr=6e-4, min_lr=6e-5, warmup_steps=100, max_steps=5000)
    for step in ...:  schedule.step(optimizer)  # sets every group's lr, then advances
Not here: per-group rates: step() gives every group of the optimizer the same lr.
"""

import math


class LRSchedule:
    """Base: subclasses define lr_at(step). `last_step` counts the calls to step()."""

    def __init__(self):
        self.last_step = 0

    def lr_at(self, step):
        raise NotImplementedError

    def __call__(self, step):
        return self.lr_at(step)

    def step(self, optimizer):
        """Set every group's lr to lr_at(last_step), advance one step, and return that lr."""
        lr = self.lr_at(self.last_step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        self.last_step += 1
        return lr

    def _config(self):
        return {}

    def state_dict(self):
        return {"type": type(self).__name__, "last_step": self.last_step, **self._config()}

    def load_state_dict(self, state):
        """Resume at the saved step; the saved settings must be this schedule's own."""
        same = state.get("type") == type(self).__name__ and all(
            state.get(k) == v for k, v in self._config().items())
        if not same:
            raise ValueError(f"{type(self).__name__}.load_state_dict: saved schedule {state} "
                             f"differs from this one {self.state_dict()}")
        self.last_step = int(state["last_step"])


class ConstantLR(LRSchedule):
    def __init__(self, lr):
        super().__init__()
        self.lr = lr

    def lr_at(self, step):
        return self.lr

    def _config(self):
        return {"lr": self.lr}


class WarmupCosine(LRSchedule):
    """Linear warmup from max_lr / warmup_steps to max_lr over warmup_steps, then a cosine from
    max_lr down to min_lr at max_steps, then min_lr (nanoGPT's get_lr)."""

    def __init__(self, max_lr, min_lr, warmup_steps, max_steps):
        super().__init__()
        if not 0 <= warmup_steps <= max_steps:
            raise ValueError(f"WarmupCosine: need 0 <= warmup_steps <= max_steps, got "
                             f"warmup_steps={warmup_steps}, max_steps={max_steps}")
        if not 0 <= min_lr <= max_lr:
            raise ValueError(f"WarmupCosine: need 0 <= min_lr <= max_lr, got min_lr={min_lr}, max_lr={max_lr}")
        self.max_lr, self.min_lr = max_lr, min_lr
        self.warmup_steps, self.max_steps = warmup_steps, max_steps

    def lr_at(self, step):
        if step < self.warmup_steps:
            return self.max_lr * (step + 1) / self.warmup_steps  # step 0 already moves a little
        if step >= self.max_steps:
            return self.min_lr
        progress = (step - self.warmup_steps) / (self.max_steps - self.warmup_steps)  # 0 -> 1
        coeff = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
        return self.min_lr + coeff * (self.max_lr - self.min_lr)

    def _config(self):
        return {"max_lr": self.max_lr, "min_lr": self.min_lr, "warmup_steps": self.warmup_steps,
                "max_steps": self.max_steps}
