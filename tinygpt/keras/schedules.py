"""keras.optimizers.schedules: learning rates as a function of the optimizer's step count, with
Keras 3's names, arguments and formulas. Pass one as `learning_rate=` of any tinygpt.keras
optimizer: before each step the optimizer sets its rate to schedule(iterations), iterations
counting from 0. Reachable as tinygpt.keras.optimizers.schedules.ExponentialDecay.
Not here: per-epoch changes (callbacks.LearningRateScheduler), or PiecewiseConstantDecay,
PolynomialDecay, InverseTimeDecay, CosineDecayRestarts.
"""

import math


class LearningRateSchedule:
    """step (an int >= 0) -> learning rate (a float)."""

    def __call__(self, step):
        raise NotImplementedError


def _positive(cls, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{cls}: {name} must be a number > 0, got {value!r}")


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps); with staircase the exponent is
    floored, so the rate drops once every decay_steps steps instead of smoothly."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        _positive("ExponentialDecay", "decay_steps", decay_steps)
        self.initial_learning_rate, self.decay_steps = float(initial_learning_rate), decay_steps
        self.decay_rate, self.staircase, self.name = float(decay_rate), bool(staircase), name

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p


class CosineDecay(LearningRateSchedule):
    """An optional linear warmup from initial_learning_rate to warmup_target over warmup_steps,
    then half a cosine from there (initial_learning_rate without warmup) down to alpha times it
    over decay_steps, flat afterwards (Loshchilov & Hutter's SGDR without restarts)."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        _positive("CosineDecay", "decay_steps", decay_steps)
        if warmup_steps < 0:
            raise ValueError(f"CosineDecay: warmup_steps must be >= 0, got {warmup_steps!r}")
        self.initial_learning_rate, self.decay_steps, self.alpha = float(initial_learning_rate), decay_steps, alpha
        self.name, self.warmup_target, self.warmup_steps = name, warmup_target, warmup_steps

    def _decay(self, step, decay_from):
        completed = step / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * completed))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:  # linear warmup: initial -> warmup_target
            return (self.warmup_target - self.initial_learning_rate) * step / self.warmup_steps \
                + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)


__all__ = ["LearningRateSchedule", "ExponentialDecay", "CosineDecay"]
