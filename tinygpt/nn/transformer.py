"""GPT-2's MLP and its pre-LayerNorm residual Block: x + attn(ln_1(x)), then x + mlp(ln_2(x)).

Normalising *before* each sub-layer (GPT-2, unlike the original Transformer) keeps the residual
stream an untouched sum, which is what makes deep stacks train stably.
Not here: embeddings, the final LayerNorm or the head (models/gpt.py).
"""

from tinygpt.nn.attention import CausalSelfAttention
from tinygpt.nn.layers import GELU, Dropout, LayerNorm, Linear
from tinygpt.nn.module import Module, as_rng


class MLP(Module):
    """x: (B, T, C) -> (B, T, C) through a 4C-wide hidden layer with GELU."""

    def __init__(self, n_embd, dropout=0.0, bias=True, rng=None):
        super().__init__()
        rng = as_rng(rng)
        self.c_fc = Linear(n_embd, 4 * n_embd, bias=bias, rng=rng)
        self.gelu = GELU(approximate="tanh")  # GPT-2 uses the tanh approximation
        self.c_proj = Linear(4 * n_embd, n_embd, bias=bias, rng=rng)
        self.dropout = Dropout(dropout, rng=rng.spawn(1)[0])

    def forward(self, x):
        x = self.gelu(self.c_fc(x))  # (B, T, C) -> (B, T, 4C)
        return self.dropout(self.c_proj(x))  # (B, T, 4C) -> (B, T, C)


class Block(Module):
    """One transformer layer: x: (B, T, C) -> (B, T, C)."""

    def __init__(self, n_embd, n_head, dropout=0.0, bias=True, rng=None):
        super().__init__()
        rng = as_rng(rng)
        self.ln_1 = LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias, rng=rng)
        self.ln_2 = LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias, rng=rng)

    def forward(self, x, kv_cache=None):
        """x: (B, T, C), kv_cache: this block's LayerKVCache or None -> (B, T, C)"""
        x = x + self.attn(self.ln_1(x), kv_cache=kv_cache)
        return x + self.mlp(self.ln_2(x))
