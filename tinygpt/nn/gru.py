"""A stack of GRU layers, each layer one call of F.gru (which runs batch first).

Parameters of layer k, stored (in, out) like a Linear, gates in PyTorch's order (reset, update, new):
  weight_ih_l{k}: (I, 3D) = PyTorch's weight_ih_l{k}.T   (I = input size for k=0, else D)
  weight_hh_l{k}: (D, 3D) = PyTorch's weight_hh_l{k}.T
  bias_ih_l{k}, bias_hh_l{k}: (3D,) as PyTorch's (two biases: b_hn sits inside r * (h W_hn + b_hn))
Not here: the cell math (tinygpt/ops/gru.py), bidirectional GRUs, Keras' gate order (keras/).
"""

import math

import numpy as np

from tinygpt import functional as F
from tinygpt.nn.layers import Dropout
from tinygpt.nn.lstm import batch_first_input
from tinygpt.nn.module import Module, Parameter, as_rng


class GRU(Module):
    """x: (B, T, I) with batch_first=True, else (T, B, I); h0 (num_layers, B, D) or None (zeros)
    -> out: (B, T, D) (or (T, B, D)) from the last layer, h_n: (num_layers, B, D).
    PyTorch's arguments and defaults, so batch_first=False unless asked."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, *, rng=None, dtype=np.float32):
        super().__init__()
        if bidirectional:
            raise NotImplementedError("GRU: bidirectional=True is not supported; only one-directional GRUs")
        rng = as_rng(rng)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        D, bound = hidden_size, 1.0 / math.sqrt(hidden_size)  # PyTorch's U(-1/sqrt(D), 1/sqrt(D))
        for k in range(num_layers):
            n_in = input_size if k == 0 else D
            setattr(self, f"weight_ih_l{k}", Parameter(rng.uniform(-bound, bound, (n_in, 3 * D)), dtype=dtype))
            setattr(self, f"weight_hh_l{k}", Parameter(rng.uniform(-bound, bound, (D, 3 * D)), dtype=dtype))
            if bias:
                setattr(self, f"bias_ih_l{k}", Parameter(rng.uniform(-bound, bound, 3 * D), dtype=dtype))
                setattr(self, f"bias_hh_l{k}", Parameter(rng.uniform(-bound, bound, 3 * D), dtype=dtype))
        self.dropout = Dropout(dropout, rng=rng.spawn(1)[0])  # between layers, not after the last

    def forward(self, x, h0=None):
        x = batch_first_input(self, x)  # (B, T, I)
        B, L, D = x.shape[0], self.num_layers, self.hidden_size
        if h0 is None:
            h0 = np.zeros((L, B, D), dtype=x.dtype)  # a constant: no gradient to compute
        elif h0.shape != (L, B, D):
            raise ValueError(f"GRU h0 must be (num_layers, B, D) = {(L, B, D)}, got {h0.shape}")
        no_bias = None if self.bias else np.zeros(3 * D, dtype=x.dtype)  # a constant
        h_n = []
        for k in range(L):
            b_ih = getattr(self, f"bias_ih_l{k}") if self.bias else no_bias
            b_hh = getattr(self, f"bias_hh_l{k}") if self.bias else no_bias
            out, h = F.gru(x, h0[k], getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}"),
                           b_ih, b_hh)
            h_n.append(h)  # (B, D)
            x = out if k == L - 1 else self.dropout(out)  # (B, T, D)
        if not self.batch_first:
            x = F.transpose(x, 0, 1)  # (B, T, D) -> (T, B, D)
        return x, F.stack(h_n)  # h_n: (L, B, D)

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bias={self.bias}, batch_first={self.batch_first}, dropout={self.dropout.p}")
