"""Keras' weight penalties: `Dense(8, kernel_regularizer=keras.regularizers.L2(1e-4))`.

A regularizer maps a weight (or, as activity_regularizer, a layer's output) to a scalar Tensor
that fit adds to the loss it minimises and reports, as Keras does: L1 is l1 * sum(|w|), L2 is
l2 * sum(w²) (no 1/2). The penalties are collected by `collect_penalties` after the forward pass.
Not here: OrthogonalRegularizer, or penalties on layers that are not tinygpt.keras layers.
"""

import contextlib

import numpy as np

from tinygpt import functional as F
from tinygpt.tensor import Tensor

_activity_sink = None  # a list while fit/evaluate runs a forward pass (see collecting)


class Regularizer:
    """reg(x: Tensor) -> a scalar Tensor."""

    def __call__(self, x):
        raise NotImplementedError

    def get_config(self):
        return dict(vars(self))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


def _factor(cls, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or value < 0:
        raise ValueError(f"{cls}: {name} must be a number >= 0, got {value!r}")
    return float(value)


def _abs(x):
    return F.where(x.data >= 0, x, -x)  # |x| with the gradient sign(x) (0 treated as +)


class L1L2(Regularizer):
    """l1 * sum(|x|) + l2 * sum(x²)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _factor("L1L2", "l1", l1), _factor("L1L2", "l2", l2)

    def __call__(self, x):
        total = None
        if self.l1:
            total = _abs(x).sum() * self.l1
        if self.l2:
            term = (x * x).sum() * self.l2
            total = term if total is None else total + term
        return total if total is not None else (x * 0.0).sum()


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2  # Keras' lowercase aliases: keras.regularizers.l2(1e-4)
ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    """None, a name ('l2'), a Regularizer or a callable(x) -> a regularizer (or None)."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        if identifier not in ALIASES:
            raise ValueError(f"unknown regularizer {identifier!r}; tinygpt.keras has {sorted(ALIASES)}")
        return ALIASES[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in ALIASES:  # from a saved config
        return ALIASES[identifier["class_name"]](**identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise TypeError(f"a regularizer must be a name such as 'l2', a keras.regularizers object "
                    f"(L1, L2, L1L2) or a function of a tensor, got {identifier!r}")


def to_config(reg):
    if reg is None:
        return None
    if not isinstance(reg, Regularizer):
        raise ValueError(f"the regularizer function {reg!r} cannot be saved in a config; use "
                         f"keras.regularizers.L1/L2/L1L2 instead")
    return {"class_name": type(reg).__name__, "config": reg.get_config()}


# ----- what fit adds to the loss -------------------------------------------------------------
@contextlib.contextmanager
def collecting():
    """with collecting() as activity: ... the layers' activity penalties of the forward passes
    inside are appended to `activity` (outside, e.g. in predict, they are not computed at all)."""
    global _activity_sink
    outer, _activity_sink = _activity_sink, []
    try:
        yield _activity_sink
    finally:
        _activity_sink = outer


def add_activity_penalty(reg, out):
    """Called by Layer.__call__: reg(output) for each output Tensor, as Keras 3 does (summed over
    the batch, not divided by it as tf.keras 2 did)."""
    if _activity_sink is None:
        return
    for t in out if isinstance(out, (list, tuple)) else [out]:
        if isinstance(t, Tensor):
            _activity_sink.append(reg(t))


def weight_penalties(model):
    """[scalar Tensor]: every regularized weight's penalty under `model` (a stack walk, no recursion)."""
    found, stack, seen = [], [model], set()
    while stack:
        module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        penalties = getattr(module, "regularization_penalties", None)
        if penalties is not None:
            found.extend(penalties())
        stack.extend(module._modules.values())
    return found


def add_penalties(loss, penalties):
    """loss + the sum of penalties (a list of scalar Tensors), or loss itself when there are none."""
    for p in penalties:
        loss = loss + p
    return loss


__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get"]
