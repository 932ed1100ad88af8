"""Keras layers without weights that move or pool values: Flatten, Reshape, RepeatVector,
GlobalMaxPooling1D, GlobalAveragePooling1D, Activation. Each is one or two tinygpt.functional
calls, so each backward is the primitives' own (reshape, stack, max, mean). The global poolings
honour a mask (B, T): padding steps count neither in the max nor in the mean.
Not here: layers with weights (layers.py, layers_conv.py), pooling with a window (MaxPooling1D).
"""

import math

import numpy as np

from tinygpt import functional as F
from tinygpt.keras import activations
from tinygpt.keras.layers import Layer, _check_units, _float_tensor


def _need_rank(layer, input_shape, rank, what):
    if len(input_shape) != rank or any(d is None for d in input_shape[1:]):
        raise ValueError(f"{type(layer).__name__} {layer.name!r} takes input of shape {what}, got {input_shape}")


class Flatten(Layer):
    """x (B, d1, d2, ...) -> (B, d1 * d2 * ...)."""

    default_name = "flatten"

    def check_input_shape(self, input_shape):
        if len(input_shape) < 2 or any(d is None for d in input_shape[1:]):
            raise ValueError(f"Flatten {self.name!r} needs every axis but the batch known, got {input_shape}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], math.prod(input_shape[1:]))

    def forward(self, x):
        x = _float_tensor(x)
        return F.reshape(x, (x.shape[0], -1))


class Reshape(Layer):
    """x (B, ...) -> (B, *target_shape); one entry of target_shape may be -1, as in Keras."""

    default_name = "reshape"

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if sum(d == -1 for d in self.target_shape) > 1 or any(d < 1 and d != -1 for d in self.target_shape):
            raise ValueError(f"Reshape: target_shape must be positive ints with at most one -1, got {target_shape!r}")

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if (-1 in self.target_shape and size % known) or (-1 not in self.target_shape and size != known):
            raise ValueError(f"Reshape {self.name!r}: input {input_shape} has {size} values per sample, "
                             f"which do not fit target_shape={self.target_shape}")
        return (input_shape[0],) + tuple(size // known if d == -1 else d for d in self.target_shape)

    check_input_shape = compute_output_shape

    def forward(self, x):
        x = _float_tensor(x)
        return F.reshape(x, (x.shape[0],) + self.target_shape)

    def get_config(self):
        return {"target_shape": self.target_shape}


class RepeatVector(Layer):
    """x (B, C) -> (B, n, C): the same vector at each of n steps (e.g. a decoder's input)."""

    default_name = "repeat_vector"

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        _check_units("RepeatVector", n=n)
        self.n = int(n)

    def check_input_shape(self, input_shape):
        _need_rank(self, input_shape, 2, "(batch, features)")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, x):
        return F.stack([_float_tensor(x)] * self.n, axis=1)  # backward: the n copies' gradients add

    def get_config(self):
        return {"n": self.n}


class GlobalMaxPooling1D(Layer):
    """x (B, T, C) -> (B, C): the largest value of each channel over time."""

    default_name = "global_max_pooling1d"

    def check_input_shape(self, input_shape):
        if len(input_shape) != 3 or input_shape[2] is None:
            raise ValueError(f"{type(self).__name__} {self.name!r} takes input of shape "
                             f"(batch, steps, channels), got {input_shape}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def compute_mask(self, x, mask):
        return None  # the time axis is gone

    def forward(self, x):
        x, mask = _float_tensor(x), self.input_mask
        if mask is not None:  # padding steps never win: they become -inf before the max
            x = F.where(np.broadcast_to(mask[:, :, None], x.shape), x, -np.inf)
        return F.amax(x, axis=1)


class GlobalAveragePooling1D(GlobalMaxPooling1D):
    """x (B, T, C) -> (B, C): the mean of each channel over time."""

    default_name = "global_average_pooling1d"

    def forward(self, x):
        x, mask = _float_tensor(x), self.input_mask
        if mask is None:
            return F.mean(x, axis=1)
        # the mean over the real steps only: sum(x m) / sum(m), as Keras
        weights = mask.astype(x.dtype)[:, :, None]  # (B, T, 1)
        return F.sum(x * weights, axis=1) / np.maximum(weights.sum(axis=1), 1.0)


class Activation(Layer):
    """activation(x), elementwise (softmax over the last axis): Activation('relu')."""

    default_name = "activation"
    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation_name, self.activation = activations.get(activation)

    def forward(self, x):
        return self.activation(_float_tensor(x))

    def get_config(self):
        return {"activation": self.activation_name}


__all__ = ["Flatten", "Reshape", "RepeatVector", "GlobalMaxPooling1D", "GlobalAveragePooling1D", "Activation"]
