"""Keras-style optimizers: made with hyperparameters only (`Adam(learning_rate=1e-3)`), bound to
the model's parameters when it is compiled and built. The update itself is tinygpt.optim's
(SGD, Adam, AdamW, RMSprop, Adagrad, Adamax, NAdam): no update rule is written here.

Defaults are Keras': Adam/AdamW epsilon 1e-7, AdamW weight_decay 0.004, SGD learning_rate 0.01.
learning_rate may be a schedule (schedules.py, also reachable as optimizers.schedules).
Not here: clipvalue, EMA, or Lion, Adafactor, Ftrl.
"""

import numbers

from tinygpt import optim
from tinygpt.keras import schedules


class Optimizer:
    """Hyperparameters now; `build(params)` makes the tinygpt.optim optimizer (`engine`) that steps.

    clipnorm clips each parameter's gradient to that L2 norm; global_clipnorm clips all together."""

    def __init__(self, learning_rate, clipnorm=None, global_clipnorm=None):
        self.schedule = None  # a schedules.LearningRateSchedule: the rate is schedule(iterations)
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            self.schedule, learning_rate = learning_rate, learning_rate(0)
        elif isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) or learning_rate < 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be a number >= 0 or a "
                             f"keras.optimizers.schedules schedule, got {learning_rate!r}")
        self._learning_rate = float(learning_rate)
        self.clipnorm, self.global_clipnorm = clipnorm, global_clipnorm
        self.engine = None
        self.iterations = 0  # steps taken, as Keras' optimizer.iterations

    def make_engine(self, params):
        raise NotImplementedError

    def build(self, params):
        self.engine = self.make_engine(list(params))
        return self

    @property
    def learning_rate(self):
        if self.schedule is not None:
            return float(self.schedule(self.iterations))  # the rate the next step will use
        return self.engine.param_groups[0]["lr"] if self.engine else self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):  # model.optimizer.learning_rate = 1e-4 works as in Keras
        if self.schedule is not None:
            raise TypeError(f"{type(self).__name__} was made with learning_rate="
                            f"{type(self.schedule).__name__}(...), so its rate cannot be set; "
                            f"make the optimizer with a float learning_rate instead")
        self._learning_rate = float(value)
        for group in self.engine.param_groups if self.engine else []:
            group["lr"] = float(value)

    def zero_grad(self):
        self.engine.zero_grad()

    def step(self):
        """Clip (if asked) and update every parameter that has a gradient."""
        params = self.engine.parameters()
        if self.clipnorm is not None:
            for p in params:
                optim.clip_grad_norm_([p], self.clipnorm)
        if self.global_clipnorm is not None:
            optim.clip_grad_norm_(params, self.global_clipnorm)
        if self.schedule is not None:  # Keras: step t (from 0) uses schedule(t)
            for group in self.engine.param_groups:
                group["lr"] = float(self.schedule(self.iterations))
        self.engine.step()
        self.iterations += 1

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


class SGD(Optimizer):
    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum, self.nesterov = momentum, nesterov

    def make_engine(self, params):
        return optim.SGD(params, lr=self._learning_rate, momentum=self.momentum, nesterov=self.nesterov)


class Adam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def make_engine(self, params):
        return optim.Adam(params, lr=self._learning_rate, betas=(self.beta_1, self.beta_2), eps=self.epsilon)


class AdamW(Adam):
    """NOTE: decays only the 2-D weights (kernels, embeddings), not biases (tinygpt.optim.AdamW);
    Keras' AdamW decays every variable unless told otherwise."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.weight_decay = weight_decay

    def make_engine(self, params):
        return optim.AdamW(params, lr=self._learning_rate, betas=(self.beta_1, self.beta_2),
                           eps=self.epsilon, weight_decay=self.weight_decay)


class RMSprop(Optimizer):
    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def make_engine(self, params):
        # Keras adds epsilon inside the square root, torch outside: same rule otherwise
        return optim.RMSprop(params, lr=self._learning_rate, alpha=self.rho, eps=self.epsilon,
                             momentum=self.momentum, centered=self.centered, eps_inside_sqrt=True)


class Adagrad(Optimizer):
    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def make_engine(self, params):
        # Keras adds epsilon inside the square root, torch outside: same rule otherwise
        return optim.Adagrad(params, lr=self._learning_rate, eps=self.epsilon, eps_inside_sqrt=True,
                             initial_accumulator_value=self.initial_accumulator_value)


class Adamax(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def make_engine(self, params):
        # Keras divides by (u + epsilon), torch keeps max(beta_2 u, |g| + eps): same rule otherwise
        return optim.Adamax(params, lr=self._learning_rate, betas=(self.beta_1, self.beta_2),
                            eps=self.epsilon, eps_after_max=True)


class Nadam(Optimizer):
    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def make_engine(self, params):  # Keras' rule is torch's NAdam with momentum_decay 0.004
        return optim.NAdam(params, lr=self._learning_rate, betas=(self.beta_1, self.beta_2),
                           eps=self.epsilon)


class _Given(Optimizer):
    """A tinygpt.optim optimizer passed to compile() as it is: it must hold the model's parameters."""

    def __init__(self, engine):
        super().__init__(engine.param_groups[0]["lr"])
        self.given = engine

    def make_engine(self, params):
        if {id(p) for p in params} != {id(p) for p in self.given.parameters()}:
            raise ValueError(f"the {type(self.given).__name__} passed to compile() does not hold "
                             f"exactly this model's {len(params)} parameters; make it from "
                             f"model.parameters(), or pass a name like 'adam' instead")
        return self.given


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad,
              "adamax": Adamax, "nadam": Nadam}


def get(identifier):
    """A name (any case), a tinygpt.keras optimizer, or a tinygpt.optim optimizer -> an Optimizer."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, optim.Optimizer):
        return _Given(identifier)
    if isinstance(identifier, str) and identifier.lower() in OPTIMIZERS:
        return OPTIMIZERS[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; valid: {sorted(OPTIMIZERS)}, a "
                     f"tinygpt.keras.optimizers object such as Adam(learning_rate=1e-3), or a "
                     f"tinygpt.optim optimizer over model.parameters()")


__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "Nadam", "get"]
