"""Keras layers that wrap another layer: TimeDistributed (the same layer at every time step) and
Bidirectional (a recurrent layer reading forward plus a copy reading the sequence backward).

Both are compositions of tinygpt.functional calls (reshape, getitem with a reversed slice,
concatenate), so their gradients are those primitives' own. Both pass a mask (B, T) on.
Not here: Bidirectional with a custom backward_layer, or of layers other than LSTM/GRU/SimpleRNN.
"""

import copy

import numpy as np

from tinygpt import functional as F
from tinygpt.keras.layers import LSTM, Layer, _float_tensor
from tinygpt.keras.layers_recurrent import GRU, SimpleRNN

RECURRENT = (LSTM, GRU, SimpleRNN)

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class TimeDistributed(Layer):
    """x (B, T, ...) -> (B, T, ...out): `layer` applied to every step x[:, t] with one set of weights."""

    default_name = "time_distributed"
    supports_masking = True  # the (B, T) mask applies to its output as to its input

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
    """Bidirectional(LSTM(units, ...), merge_mode='concat'), or of a GRU or SimpleRNN: outputs of
    the layer and of a copy of it (its own weights) reading the sequence backward (go_backwards),
    merged by concat / sum / mul / ave, or returned as a list [forward, backward] with
    merge_mode=None. With return_sequences the backward outputs are reversed again, so step t of
    both has read x[:, t]. With return_state: [merged output, *forward states, *backward states]."""

    default_name = "bidirectional"
    supports_masking = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, RECURRENT):
            raise NotImplementedError(f"Bidirectional({type(layer).__name__}): tinygpt.keras wraps "
                                      f"LSTM, GRU and SimpleRNN")
        if backward_layer is not None:
            raise NotImplementedError("Bidirectional(backward_layer=...) is not supported by tinygpt.keras; "
                                      "the backward layer is a copy of the forward one's configuration")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        self.merge_mode = merge_mode
        self.forward_layer = layer
        backward = copy.deepcopy(layer)  # the same configuration; weights are made at build
        backward.built, backward.go_backwards = False, not layer.go_backwards
        backward.name = f"backward_{layer.name}"
        self.backward_layer = backward
        layer.name = f"forward_{layer.name}"
        self.n_states = 2 if isinstance(layer, LSTM) else 1

    def check_input_shape(self, input_shape):
        self.forward_layer.check_input_shape(input_shape)

    def make_weights(self, input_shape, rng):
        rng_forward, rng_backward = rng.spawn(2)
        for layer, layer_rng in ((self.forward_layer, rng_forward), (self.backward_layer, rng_backward)):
            if not layer.built:
                layer.build(input_shape, rng=layer_rng)

    def compute_output_shape(self, input_shape):
        shapes = self.forward_layer.compute_output_shape(input_shape)
        out, states = (shapes[0], shapes[1:]) if self.forward_layer.return_state else (shapes, [])
        if self.merge_mode is None:
            merged = [out, out]
        else:
            merged = [out[:-1] + (2 * out[-1],) if self.merge_mode == "concat" else out]
        return merged + states + states if states else (merged if self.merge_mode is None else merged[0])

    def compute_mask(self, x, mask):
        seq_mask = mask if self.forward_layer.return_sequences else None
        outs = 2 if self.merge_mode is None else 1
        if self.forward_layer.return_state:
            return [seq_mask] * outs + [None] * (2 * self.n_states)
        return [seq_mask] * outs if outs == 2 else seq_mask

    def forward(self, x):
        x = _float_tensor(x)
        mask = self.input_mask
        fwd = self.forward_layer(x, training=self.training, mask=mask)
        bwd = self.backward_layer(x, training=self.training, mask=mask)  # reads x[:, T-1] first
        fwd_states, bwd_states = [], []
        if self.forward_layer.return_state:
            fwd, fwd_states, bwd, bwd_states = fwd[0], fwd[1:], bwd[0], bwd[1:]
        if self.backward_layer.return_sequences:
            bwd = bwd[:, ::-1]  # step t of bwd now holds the state after reading x[:, T-1..t]
        if self.merge_mode == "concat":
            out = [F.concatenate([fwd, bwd], axis=-1)]
        elif self.merge_mode == "sum":
            out = [fwd + bwd]
        elif self.merge_mode == "mul":
            out = [fwd * bwd]
        elif self.merge_mode == "ave":
            out = [(fwd + bwd) * 0.5]
        else:
            out = [fwd, bwd]
        out = out + list(fwd_states) + list(bwd_states)
        return out if len(out) > 1 else out[0]

    def named_weights(self):
        kind = self.forward_layer.default_name
        return [(f"forward_{kind}/{n}", p) for n, p in self.forward_layer.named_weights()] + \
               [(f"backward_{kind}/{n}", p) for n, p in self.backward_layer.named_weights()]

    def get_config(self):
        return {"merge_mode": self.merge_mode, "layer": type(self.forward_layer).__name__,
                **self.forward_layer.get_config()}


__all__ = ["TimeDistributed", "Bidirectional"]
