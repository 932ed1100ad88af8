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

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
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
    """idx: integer (...) -> (..., embedding_dim): row idx of weight (num_embeddings, embedding_dim).

    As in PyTorch, weights start N(0, 1), and the row padding_idx (if given) starts at zero and
    gets no gradient, so it stays what it is."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = as_rng(rng)
        if padding_idx is not None:
            if not isinstance(padding_idx, (int, np.integer)) or not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx={padding_idx!r} must be an int in "
                                 f"[{-num_embeddings}, {num_embeddings - 1}]")
            padding_idx = int(padding_idx) % num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = Parameter(rng.standard_normal((num_embeddings, embedding_dim)), dtype=dtype)
        if padding_idx is not None:
            self.weight.data[padding_idx] = 0.0

    def forward(self, idx):
        return F.embedding(idx, self.weight, self.padding_idx)

    def extra_repr(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


class LayerNorm(Module):
    """x: (..., *normalized_shape) -> the same shape, normalised over the trailing normalized_shape,
    then (elementwise_affine) scaled by weight and shifted by bias, both of normalized_shape."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *, dtype=np.float32):
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape, self.eps = tuple(normalized_shape), eps
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape), dtype=dtype) if elementwise_affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape), dtype=dtype) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class Dropout(Module):
    """Zero each element with probability p in training mode; the identity in eval mode.

    The masks come from this layer's own Generator (`rng`), so the same seed gives the same masks."""

    def __init__(self, p=0.5, inplace=False, *, rng=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        if inplace:
            raise NotImplementedError("Dropout: inplace=True is not supported; tinygpt ops never "
                                      "overwrite their input")
        self.p, self.inplace = p, inplace
        self.rng = as_rng(rng)

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training, generator=self.rng)

    def extra_repr(self):
        return f"p={self.p}"


class GELU(Module):
    """x Φ(x), elementwise: approximate='none' (PyTorch's default) is exact, with erf;
    'tanh' is GPT-2's approximation, which tinygpt's GPT asks for."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"
