"""The basic layers: Linear, Embedding, LayerNorm, Dropout, GELU. Each is a thin Module around one
function of tinygpt.functional, holding its weights as Parameters.

Initialisation follows PyTorch's defaults (so a layer is usable on its own); models re-initialise
their weights with their own scheme (GPT-2's normal(0, 0.02), see models/gpt.py). Every random
choice comes from an explicit `rng` (None, an int seed, or a np.random.Generator).
Not here: the LSTM or containers (lstm.py, containers.py), or GPT's attention, MLP and
Block (models/gpt.py).
"""

import math

import numpy as np

from tinygpt import functional as F
from tinygpt.nn.module import Module, Parameter, as_rng


class Linear(Module):
    """x: (..., in_features) -> (..., out_features) = x @ weight + bias.

    NOTE: weight is stored (in_features, out_features), like GPT-2's Conv1D and unlike
    torch.nn.Linear's (out, in); a PyTorch weight loads here transposed."""

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=np.float32):
        super().__init__()
        rng = as_rng(rng)
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)  # PyTorch's default: U(-1/sqrt(in), 1/sqrt(in))
        self.weight = Parameter(rng.uniform(-bound, bound, (in_features, out_features)), dtype=dtype)
        self.bias = Parameter(rng.uniform(-bound, bound, out_features), dtype=dtype) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)  # (..., in) @ (in, out) + (out,) -> (..., out)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """idx: integer (...) -> (..., embedding_dim): row idx of weight (num_embeddings, embedding_dim)."""

    def __init__(self, num_embeddings, embedding_dim, rng=None, dtype=np.float32):
        super().__init__()
        rng = as_rng(rng)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(rng.standard_normal((num_embeddings, embedding_dim)), dtype=dtype)

    def forward(self, idx):
        return F.embedding(idx, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """x: (..., C) -> (..., C), normalised over C, then scaled by weight and shifted by bias."""

    def __init__(self, normalized_shape, eps=1e-5, bias=True, dtype=np.float32):
        super().__init__()
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = Parameter(np.ones(normalized_shape), dtype=dtype)
        self.bias = Parameter(np.zeros(normalized_shape), dtype=dtype) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, bias={self.bias is not None}"


class Dropout(Module):
    """Zero each element with probability p in training mode; the identity in eval mode.

    The masks come from this layer's own Generator, so the same seed gives the same masks."""

    def __init__(self, p=0.0, rng=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.rng = as_rng(rng)

    def forward(self, x):
        return F.dropout(x, self.p, self.rng, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    """GPT-2's tanh approximation of x * Φ(x), elementwise."""

    def forward(self, x):
        return F.gelu(x)
