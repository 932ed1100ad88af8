"""Keras' GRU and SimpleRNN (LSTM is in layers.py) and the Masking layer.

Weights keep Keras' names and layouts, so get_weights() lists transfer from Keras as they are:
GRU kernel (I, 3U) and recurrent_kernel (U, 3U) with gates in Keras' order z (update), r (reset),
h (candidate); bias (2, 3U) = [input bias, recurrent bias] with reset_after=True (the default),
(3U,) with reset_after=False. PyTorch's GRU (and tinygpt's F.gru) is Keras' reset_after=True with
gates r, z, n: W_ir = kernel[:, U:2U], W_iz = kernel[:, :U], W_in = kernel[:, 2U:], the same for
the recurrent kernel and both biases (tests/test_keras_recurrent.py checks this against torch).
Not here: the time loop (recurrent.py), initial_state, stateful layers, custom cells (keras.layers.RNN).
"""

import numpy as np

from tinygpt import functional as F
from tinygpt.keras import activations, initializers, recurrent
from tinygpt.keras.layers import Layer, _check_units, _float_tensor
from tinygpt.nn.module import Parameter


def _initializer(layer, key, name):
    """An initializer name ('glorot_uniform', 'orthogonal', 'zeros', ...) -> fn(shape, rng), looked
    up among the functions of keras/initializers.py."""
    known = sorted(n for n, fn in vars(initializers).items()
                   if not n.startswith("_") and callable(fn) and getattr(fn, "__module__", "") == initializers.__name__)
    if name not in known:
        raise ValueError(f"{layer}: {key}={name!r} is not an initializer tinygpt.keras knows; "
                         f"use one of {known}")
    return getattr(initializers, name)


class _Recurrent(Layer):
    """What GRU and SimpleRNN share: arguments, shapes, masks; subclasses define the weights,
    `project` (x -> every step's input part), `step` (one time step) and `fused` (or None)."""

    n_states = 1
    gates = 1  # blocks of `units` columns in the kernel

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        _check_units(kind, units=units)
        recurrent.check_rates(kind, dropout, recurrent_dropout)
        recurrent.check_unsupported(kind, stateful=stateful, unroll=unroll)
        self.units, self.dropout, self.recurrent_dropout = int(units), float(dropout), float(recurrent_dropout)
        self.activation_name, self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.initializer_names = {"kernel_initializer": kernel_initializer,
                                  "recurrent_initializer": recurrent_initializer,
                                  "bias_initializer": bias_initializer}
        self.initializers = {k: _initializer(kind, k, v) for k, v in self.initializer_names.items()}
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards = bool(go_backwards)

    def bias_shape(self):
        return (self.gates * self.units,)

    def make_weights(self, input_shape, rng):
        n_in, width = input_shape[-1], self.gates * self.units
        init = self.initializers
        self.kernel = Parameter(init["kernel_initializer"]((n_in, width), rng), dtype=np.float32)
        self.recurrent_kernel = Parameter(init["recurrent_initializer"]((self.units, width), rng), dtype=np.float32)
        if self.use_bias:
            shape = self.bias_shape()
            flat = init["bias_initializer"]((int(np.prod(shape)),), rng) if len(shape) == 2 \
                else init["bias_initializer"](shape, rng)
            self.bias = Parameter(np.reshape(flat, shape), dtype=np.float32)
        self.dropout_rng = rng.spawn(1)[0]

    def check_input_shape(self, input_shape):
        recurrent.check_input_shape(self, input_shape)

    def compute_output_shape(self, input_shape):
        return recurrent.output_shape(self, input_shape, self.n_states)

    def compute_mask(self, x, mask):
        return recurrent.output_mask(self, mask, self.n_states)

    def forward(self, x):
        return recurrent.run(self, _float_tensor(x), self.fused, self.project, self.step, self.n_states)

    def fused(self, x):
        return None

    def input_bias(self):
        return self.bias if self.use_bias else None

    def project(self, x):
        xw = F.matmul(x, self.kernel)  # (B, T, I) @ (I, G) -> (B, T, G)
        b = self.input_bias()
        return xw if b is None else xw + b

    def named_weights(self):
        return [("kernel", self.kernel), ("recurrent_kernel", self.recurrent_kernel)] + \
            ([("bias", self.bias)] if self.use_bias else [])

    def get_config(self):
        return {"units": self.units, "activation": self.activation_name, "use_bias": self.use_bias,
                **self.initializer_names, "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards}


class SimpleRNN(_Recurrent):
    """x (B, T, I) -> h_t = activation(x_t kernel + h_{t-1} recurrent_kernel + bias), units each;
    the last h (B, units), or every h with return_sequences; with return_state, [output, h]."""

    default_name = "simple_rnn"

    def step(self, xw_t, states, h_dropped):
        return [self.activation(xw_t + F.matmul(h_dropped, self.recurrent_kernel))]


class GRU(_Recurrent):
    """x (B, T, I) -> the last state (B, units), or every state with return_sequences; with
    return_state, [output, h]. Keras' cell, gates z, r, h (reset_after=True, the default):
    z = σ(x K_z + b_z + h R_z + b'_z), r = σ(x K_r + b_r + h R_r + b'_r),
    hh = tanh(x K_h + b_h + r (h R_h + b'_h)), h_t = z h_{t-1} + (1 - z) hh.
    reset_after=False: hh = tanh(x K_h + b_h + (r h) R_h), one bias."""

    default_name = "gru"
    gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
                 **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation_name, self.recurrent_activation = activations.get(recurrent_activation)
        self.reset_after = bool(reset_after)

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def input_bias(self):
        if not self.use_bias:
            return None
        return self.bias[0] if self.reset_after else self.bias

    def _torch_order(self, w):
        """(..., 3U) in Keras' z, r, h order -> (..., 3U) in F.gru's (PyTorch's) r, z, n order."""
        u = self.units
        return F.concatenate([w[..., u:2 * u], w[..., :u], w[..., 2 * u:]], axis=-1)

    def fused(self, x):
        """The whole sequence through F.gru (C kernel) when the cell is exactly PyTorch's."""
        if not (self.reset_after and self.activation_name == "tanh"
                and self.recurrent_activation_name == "sigmoid"):
            return None
        zeros = np.zeros(3 * self.units, x.dtype)
        b_ih, b_hh = (self._torch_order(self.bias[0]), self._torch_order(self.bias[1])) if self.use_bias \
            else (zeros, zeros)
        h0 = np.zeros((x.shape[0], self.units), x.dtype)
        out, h = F.gru(x, h0, self._torch_order(self.kernel), self._torch_order(self.recurrent_kernel),
                       b_ih, b_hh)
        return out, [h]

    def step(self, xw_t, states, h_dropped):
        u, sigma, act = self.units, self.recurrent_activation, self.activation
        x_z, x_r, x_h = F.chunk(xw_t, 3, axis=-1)  # (B, U) each
        if self.reset_after:
            inner = F.matmul(h_dropped, self.recurrent_kernel)  # (B, 3U)
            if self.use_bias:
                inner = inner + self.bias[1]
            i_z, i_r, i_h = F.chunk(inner, 3, axis=-1)
            z, r = sigma(x_z + i_z), sigma(x_r + i_r)
            hh = act(x_h + r * i_h)  # the reset gate scales the recurrent product
        else:
            zr = F.matmul(h_dropped, self.recurrent_kernel[:, :2 * u])  # (B, 2U)
            i_z, i_r = F.chunk(zr, 2, axis=-1)
            z, r = sigma(x_z + i_z), sigma(x_r + i_r)
            hh = act(x_h + F.matmul(r * h_dropped, self.recurrent_kernel[:, 2 * u:]))  # reset first
        # NOTE: with recurrent dropout the update reads the dropped state too: Keras' cells
        # replace h_tm1 by h_tm1 * mask before the whole step
        return [z * h_dropped + (1.0 - z) * hh]

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation_name,
                "reset_after": self.reset_after}


class Masking(Layer):
    """x (B, T, C) -> x with every step whose C values all equal mask_value set to 0, and a mask
    (B, T) marking those steps as padding for the layers after it (LSTM, GRU, pooling, the loss)."""

    default_name = "masking"
    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def check_input_shape(self, input_shape):
        if len(input_shape) < 3:
            raise ValueError(f"Masking {self.name!r} takes input of shape (batch, steps, features), "
                             f"got {input_shape}")

    def compute_mask(self, x, mask):
        data = np.asarray(x.data if hasattr(x, "data") else x)
        real = np.any(data != self.mask_value, axis=tuple(range(2, data.ndim)))  # (B, T)
        return real if mask is None else real & mask

    def forward(self, x):
        x = _float_tensor(x)
        real = self.compute_mask(x, None)  # (B, T)
        keep = real.reshape(real.shape + (1,) * (x.ndim - 2)).astype(x.dtype)
        return x * keep  # as Keras: masked steps become zeros

    def get_config(self):
        return {"mask_value": self.mask_value}


__all__ = ["GRU", "SimpleRNN", "Masking"]
