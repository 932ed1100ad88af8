"""Multi-head causal self-attention (GPT-2's `attn`), and the KV cache that makes generation cheap.

One (C, 3C) projection makes queries, keys and values for all heads at once; the heads attend
independently (F.causal_self_attention: head split, attention kernel and merge as one op);
c_proj mixes them back. During generation
the keys and values of earlier positions never change, so a KVCache keeps them and each new
token only computes its own. Not here: the MLP or the residual Block (transformer.py).
"""

import numpy as np

from tinygpt import functional as F
from tinygpt.nn.layers import Dropout, Linear
from tinygpt.nn.module import Module, as_rng
from tinygpt.tensor import Tensor


class LayerKVCache:
    """One attention layer's keys and values for positions 0..length-1, in preallocated buffers
    k, v: (B, nh, max_len, hs). `append` writes new positions and returns everything so far."""

    def __init__(self, batch_size, n_head, max_len, head_size, dtype=np.float32):
        self.k = np.zeros((batch_size, n_head, max_len, head_size), dtype=dtype)
        self.v = np.zeros((batch_size, n_head, max_len, head_size), dtype=dtype)
        self.length = 0

    def append(self, k, v):
        """k, v: (B, nh, T, hs) arrays -> keys, values: (B, nh, length + T, hs) views of the buffers"""
        end = self.length + k.shape[2]
        if k.shape[:2] + k.shape[3:] != self.k.shape[:2] + self.k.shape[3:]:
            raise ValueError(f"KV cache holds (B, nh, ·, hs) = {self.k.shape}, got keys {k.shape}; "
                             f"make the cache with this batch size and model")
        if end > self.k.shape[2]:
            raise ValueError(f"KV cache is full: {self.length} positions cached + {k.shape[2]} new "
                             f"> max_len {self.k.shape[2]}")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """The KV caches of every layer of a model: `cache.layers[i]` belongs to block i.

    Make one per generation (e.g. `GPT.make_kv_cache(batch_size)`), feed the prompt once, then
    one token per call; positions continue from `cache.length`. Inference only (under no_grad)."""

    def __init__(self, n_layer, batch_size, n_head, max_len, head_size, dtype=np.float32):
        self.layers = [LayerKVCache(batch_size, n_head, max_len, head_size, dtype)
                       for _ in range(n_layer)]
        self.max_len = max_len

    @property
    def length(self):
        """How many positions are cached (the position the next token will have)."""
        return self.layers[0].length

    def reset(self):
        for layer in self.layers:
            layer.length = 0


class CausalSelfAttention(Module):
    """x: (B, T, C) -> (B, T, C): each position attends to itself and the positions before it."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, rng=None):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} must be divisible by n_head {n_head}")
        rng = as_rng(rng)
        self.n_embd, self.n_head = n_embd, n_head
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias, rng=rng)  # q, k, v for all heads
        self.c_proj = Linear(n_embd, n_embd, bias=bias, rng=rng)  # mixes the heads back
        # NOTE: GPT-2 also drops attention probabilities; the fused attention op has no dropout,
        # so here dropout acts on this layer's output only (the residual branch).
        self.resid_dropout = Dropout(dropout, rng=rng.spawn(1)[0])

    def forward(self, x, kv_cache=None):
        """x: (B, T, C), kv_cache: a LayerKVCache or None -> (B, T, C)"""
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        if kv_cache is None:  # training and uncached inference: head split and merge in one op
            y = F.causal_self_attention(self.c_attn(x), nh)  # (B, T, 3C) -> (B, T, C)
            return self.resid_dropout(self.c_proj(y))
        # the same steps one by one, so the new keys and values can join the cache
        q, k, v = F.split(self.c_attn(x), C, dim=-1)  # (B, T, 3C) -> 3 x (B, T, C)
        q = q.reshape(B, T, nh, hs).permute(0, 2, 1, 3)  # (B, T, C) -> (B, nh, T, hs)
        k = k.reshape(B, T, nh, hs).permute(0, 2, 1, 3)
        v = v.reshape(B, T, nh, hs).permute(0, 2, 1, 3)
        if k.requires_grad:
            raise RuntimeError("the KV cache is for inference and would cut gradients; "
                               "run cached forwards inside `with tinygpt.no_grad():`")
        k_all, v_all = kv_cache.append(k.data, v.data)  # (B, nh, length + T, hs)
        k, v = Tensor(k_all), Tensor(v_all)
        # queries are the last T positions of the keys: causal masking lines them up (see F)
        y = F.scaled_dot_product_attention(q, k, v, causal=True)  # (B, nh, T, hs)
        y = y.permute(0, 2, 1, 3).reshape(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}"
