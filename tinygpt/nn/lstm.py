"""A stack of LSTM layers over batch-first sequences, each layer one call of F.lstm.

Parameters of layer k, stored (in, out) like a Linear:
  weight_ih_l{k}: (I, 4D) = PyTorch's weight_ih_l{k}.T   (I = input size for k=0, else D)
  weight_hh_l{k}: (D, 4D) = PyTorch's weight_hh_l{k}.T
  bias_l{k}:      (4D,)   = PyTorch's bias_ih_l{k} + bias_hh_l{k} (they are only ever added)
Gates in PyTorch's order (input, forget, cell, output). Not here: the cell math (tinygpt/ops/lstm.py),
bidirectional or projected LSTMs.
"""

import math

import numpy as np

from tinygpt import functional as F
from tinygpt.nn.layers import Dropout
from tinygpt.nn.module import Module, Parameter, as_rng


def batch_first_input(layer, x):
    """An LSTM's or GRU's input x: (B, T, I) with layer.batch_first, else (T, B, I) -> (B, T, I),
    the layout the ops run in; a clear error for any other shape."""
    if x.ndim != 3 or x.shape[2] != layer.input_size:
        layout = "(B, T" if layer.batch_first else "(T, B"
        raise ValueError(f"{type(layer).__name__} expects x of shape {layout}, {layer.input_size}) "
                         f"(batch_first={layer.batch_first}), got {x.shape}")
    return x if layer.batch_first else F.transpose(x, 0, 1)


class LSTM(Module):
    """x: (B, T, I) with batch_first=True, else (T, B, I); state (h0, c0) each (num_layers, B, D)
    or None (zeros) -> out: (B, T, D) (or (T, B, D)) from the last layer, (h_n, c_n) each
    (num_layers, B, D). PyTorch's arguments and defaults, so batch_first=False unless asked."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, *, rng=None, dtype=np.float32):
        super().__init__()
        if bidirectional or proj_size:
            raise NotImplementedError(f"LSTM: bidirectional={bidirectional} and proj_size={proj_size} "
                                      f"are not supported; only one-directional, unprojected LSTMs")
        rng = as_rng(rng)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        D, bound = hidden_size, 1.0 / math.sqrt(hidden_size)  # PyTorch's U(-1/sqrt(D), 1/sqrt(D))
        for k in range(num_layers):
            n_in = input_size if k == 0 else D
            setattr(self, f"weight_ih_l{k}", Parameter(rng.uniform(-bound, bound, (n_in, 4 * D)), dtype=dtype))
            setattr(self, f"weight_hh_l{k}", Parameter(rng.uniform(-bound, bound, (D, 4 * D)), dtype=dtype))
            if bias:  # one bias for PyTorch's two: distributed like their sum
                b = rng.uniform(-bound, bound, 4 * D) + rng.uniform(-bound, bound, 4 * D)
                setattr(self, f"bias_l{k}", Parameter(b, dtype=dtype))
        self.dropout = Dropout(dropout, rng=rng.spawn(1)[0])  # between layers, not after the last

    def forward(self, x, state=None):
        x = batch_first_input(self, x)  # (B, T, I)
        B, L, D = x.shape[0], self.num_layers, self.hidden_size
        if state is None:
            h0 = c0 = np.zeros((L, B, D), dtype=x.dtype)  # a constant: no gradient to compute
        else:
            h0, c0 = state
            if h0.shape != (L, B, D) or c0.shape != (L, B, D):
                raise ValueError(f"LSTM state (h0, c0) must each be (num_layers, B, D) = {(L, B, D)}, "
                                 f"got {h0.shape} and {c0.shape}")
        h_n, c_n = [], []
        no_bias = None if self.bias else np.zeros(4 * D, dtype=x.dtype)  # a constant
        for k in range(L):
            b = getattr(self, f"bias_l{k}") if self.bias else no_bias
            out, h, c = F.lstm(x, h0[k], c0[k], getattr(self, f"weight_ih_l{k}"),
                               getattr(self, f"weight_hh_l{k}"), b)
            h_n.append(h)  # (B, D)
            c_n.append(c)
            x = out if k == L - 1 else self.dropout(out)  # (B, T, D)
        if not self.batch_first:
            x = F.transpose(x, 0, 1)  # (B, T, D) -> (T, B, D)
        return x, (F.stack(h_n), F.stack(c_n))  # h_n, c_n: (L, B, D)

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bias={self.bias}, batch_first={self.batch_first}, dropout={self.dropout.p}")
