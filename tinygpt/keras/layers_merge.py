"""Keras layers that join several inputs into one: Concatenate and Add, called on a list,
`Concatenate()([a, b])`. They are what lets a functional Model (functional.py) merge branches.
Not here: Multiply, Average, Dot (not yet in tinygpt.keras).
"""

from tinygpt import functional as F
from tinygpt.keras import masking
from tinygpt.keras.layers import Layer, _float_tensor


def _need_list(layer, input_shape):
    if not isinstance(input_shape, list) or len(input_shape) < 2:
        raise ValueError(f"{type(layer).__name__} {layer.name!r} is called on a list of at least 2 "
                         f"inputs, e.g. {type(layer).__name__}()([a, b]); got input shape {input_shape}")


class Concatenate(Layer):
    """[x1 (B, ..., C1), x2 (B, ..., C2), ...] -> (B, ..., C1 + C2 + ...) along `axis`."""

    default_name = "concatenate"

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def check_input_shape(self, input_shape):
        _need_list(self, input_shape)
        rank = len(input_shape[0])
        axis = self.axis % rank
        if axis == 0 or any(len(s) != rank for s in input_shape) or any(
                len({s[i] for s in input_shape}) > 1 for i in range(1, rank) if i != axis):
            raise ValueError(f"Concatenate {self.name!r} (axis={self.axis}) needs inputs whose shapes "
                             f"agree on every axis but the batch and axis {self.axis}, got {input_shape}")

    def compute_output_shape(self, input_shape):
        axis = self.axis % len(input_shape[0])
        out = list(input_shape[0])
        out[axis] = sum(s[axis] for s in input_shape)
        return tuple(out)

    def compute_mask(self, xs, masks):
        return masking.combine(masks)  # a step is real where it is real in every input

    def forward(self, xs):
        return F.concatenate([_float_tensor(x) for x in xs], axis=self.axis)

    def get_config(self):
        return {"axis": self.axis}


class Add(Layer):
    """[x1, x2, ...] all of one shape -> x1 + x2 + ... (a residual connection)."""

    default_name = "add"

    def check_input_shape(self, input_shape):
        _need_list(self, input_shape)
        if len({tuple(s[1:]) for s in input_shape}) > 1:
            raise ValueError(f"Add {self.name!r} needs inputs of one shape, got {input_shape}")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def compute_mask(self, xs, masks):
        return masking.combine(masks)

    def forward(self, xs):
        total = _float_tensor(xs[0])
        for x in xs[1:]:
            total = total + _float_tensor(x)
        return total


__all__ = ["Concatenate", "Add"]
