"""Keras layers that wrap another layer: TimeDistributed (the same layer at every time step) and
Bidirectional (an LSTM reading forward plus a copy reading the sequence backward).

Both are compositions of tinygpt.functional calls (reshape, getitem with a reversed slice,
concatenate), so their gradients are those primitives' own.
Not here: Bidirectional with return_state or a custom backward_layer, wrappers of GRU/SimpleRNN.
"""

import numpy as np

from tinygpt import functional as F
from tinygpt.keras.layers import LSTM, Layer, _float_tensor

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class TimeDistributed(Layer):
    """x (B, T, ...) -> (B, T, ...out): `layer` applied to every step x[:, t] with one set of weights."""

    default_name = "time_distributed"

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise TypeError(f"TimeDistributed wraps a tinygpt.keras layer, got {type(layer).__name__}")
        self.layer = layer
        if kwargs.get("name") is None:
            self.name = f"time_distributed_{layer.name}" if not layer.auto_named else self.default_name

    def check_input_shape(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"TimeDistributed {self.name!r} takes input of shape (batch, steps, ...), "
                             f"got {input_shape}")
        if self.built:
            self.layer.check_input_shape((None,) + tuple(input_shape[2:]))

    def make_weights(self, input_shape, rng):
        if not self.layer.built:
            self.layer.build((None,) + tuple(input_shape[2:]), rng=rng)

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def forward(self, x):
        if not (isinstance(x, np.ndarray) and x.dtype.kind in "iu"):  # token ids stay a NumPy array
            x = _float_tensor(x)
        B, T = x.shape[:2]
        flat = x.reshape((B * T,) + tuple(x.shape[2:]))  # fold time into the batch
        out = self.layer(flat, training=self.training)  # (B * T, ...) -> (B * T, ...out)
        return F.reshape(out, (B, T) + tuple(out.shape[1:]))

    def named_weights(self):
        return self.layer.named_weights()

    def get_config(self):
        return {"layer": type(self.layer).__name__, **self.layer.get_config()}


class Bidirectional(Layer):
    """Bidirectional(LSTM(units, ...), merge_mode='concat'): outputs of a forward LSTM and of a
    second LSTM (its own weights) run on the time-reversed input, merged by concat / sum / mul /
    ave, or returned as a list [forward, backward] with merge_mode=None. With return_sequences
    the backward outputs are reversed again, so step t of both has read x[:, t]."""

    default_name = "bidirectional"

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, LSTM):
            raise NotImplementedError(f"Bidirectional({type(layer).__name__}): tinygpt.keras wraps only LSTM")
        if backward_layer is not None:
            raise NotImplementedError("Bidirectional(backward_layer=...) is not supported by tinygpt.keras; "
                                      "the backward LSTM is a copy of the forward one's configuration")
        if layer.return_state:
            raise NotImplementedError("Bidirectional(LSTM(return_state=True)) is not supported by tinygpt.keras")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        self.merge_mode = merge_mode
        self.forward_layer = layer
        self.backward_layer = LSTM(layer.units, return_sequences=layer.return_sequences, dropout=layer.dropout,
                                   unit_forget_bias=layer.unit_forget_bias, name=f"backward_{layer.name}")
        layer.name = f"forward_{layer.name}"

    def check_input_shape(self, input_shape):
        self.forward_layer.check_input_shape(input_shape)

    def make_weights(self, input_shape, rng):
        rng_forward, rng_backward = rng.spawn(2)
        for layer, layer_rng in ((self.forward_layer, rng_forward), (self.backward_layer, rng_backward)):
            if not layer.built:
                layer.build(input_shape, rng=layer_rng)

    def compute_output_shape(self, input_shape):
        out = self.forward_layer.compute_output_shape(input_shape)
        if self.merge_mode is None:
            return [out, out]
        return out[:-1] + (2 * out[-1],) if self.merge_mode == "concat" else out

    def forward(self, x):
        x = _float_tensor(x)
        fwd = self.forward_layer(x, training=self.training)
        bwd = self.backward_layer(x[:, ::-1], training=self.training)  # reads x[:, T-1] first
        if self.backward_layer.return_sequences:
            bwd = bwd[:, ::-1]  # step t of bwd now holds the state after reading x[:, T-1..t]
        if self.merge_mode == "concat":
            return F.concatenate([fwd, bwd], axis=-1)
        if self.merge_mode == "sum":
            return fwd + bwd
        if self.merge_mode == "mul":
            return fwd * bwd
        if self.merge_mode == "ave":
            return (fwd + bwd) * 0.5
        return [fwd, bwd]

    def named_weights(self):
        return [(f"forward_lstm/{n}", p) for n, p in self.forward_layer.named_weights()] + \
               [(f"backward_lstm/{n}", p) for n, p in self.backward_layer.named_weights()]

    def get_config(self):
        return {"merge_mode": self.merge_mode, **self.forward_layer.get_config()}


__all__ = ["TimeDistributed", "Bidirectional"]
