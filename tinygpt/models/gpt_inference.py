"""GPT's forward for generation, on plain arrays, with no graph.

Decoding one token at a time is ~100 small ops per token; in the Module path each one makes a
Tensor, dispatches through apply and calls a Module, which costs more than the arithmetic of a
(1, C) row. GPTDecoder runs the same ops and registered kernels (layernorm_forward,
linear_forward over matmul_forward, attention_forward, gelu_forward: TINYGPT_BACKEND still picks
their implementation) on the weights' arrays and scores only the last position. It is tested
equal to GPT.forward (tests/test_gpt_inference.py). Not here: training (no backward, no dropout:
eval only), sampling (generate.py), or any model other than GPT itself."""

from collections import namedtuple

import numpy as np

from tinygpt.ops.attention import attention_forward
from tinygpt.ops.elementwise import gelu_forward
from tinygpt.ops.layernorm import layernorm_forward
from tinygpt.ops.linear import linear_forward
from tinygpt.ops.shape import embedding_forward

# A Block's arrays under GPT-2's parameter names, so that blk.attn.c_attn.weight is the array of
# the model's h.{i}.attn.c_attn.weight; a bias is None when config.bias is False.
Linear = namedtuple("Linear", "weight bias")        # weight (in, out), bias (out,)
LayerNorm = namedtuple("LayerNorm", "weight bias")  # (C,), (C,)
Attention = namedtuple("Attention", "c_attn c_proj")
MLP = namedtuple("MLP", "c_fc c_proj")
Block = namedtuple("Block", "ln_1 attn ln_2 mlp")


def _arrays(module, kind):
    """A tinygpt Linear or LayerNorm -> kind(weight, bias) of its arrays (bias None if absent)."""
    bias = getattr(module, "bias", None)
    return kind(module.weight.data, None if bias is None else bias.data)


def block_arrays(block):
    """A GPT Block (Module) -> Block of its arrays, named as GPT-2 names them."""
    return Block(ln_1=_arrays(block.ln_1, LayerNorm),
                 attn=Attention(_arrays(block.attn.c_attn, Linear), _arrays(block.attn.c_proj, Linear)),
                 ln_2=_arrays(block.ln_2, LayerNorm),
                 mlp=MLP(_arrays(block.mlp.c_fc, Linear), _arrays(block.mlp.c_proj, Linear)))


def linear(x, layer):
    """x: (N, in), layer: Linear of w (in, out), b (out,) or None -> (N, out) = x @ w + b"""
    return linear_forward(x, *layer)[0]


class GPTDecoder:
    """idx: (B, T) new token ids (+ a KVCache holding the earlier ones) -> logits (B, V) of the
    last position, computed as GPT.forward computes them in eval mode.

    Holds references to the model's arrays, not copies: make one per generation (weights changed
    in place are seen, weights replaced by new arrays are not)."""

    def __init__(self, model):
        c, tr = model.config, model.transformer
        self.n_head, self.block_size = c.n_head, c.block_size
        self.wte, self.wpe = tr.wte.weight.data, tr.wpe.weight.data  # (V, C), (block_size, C)
        self.h = [block_arrays(block) for block in tr.h]
        self.ln_f = _arrays(tr.ln_f, LayerNorm)
        self.lm_head = Linear(self.wte.T, None)  # (C, V): tied to wte

    def logits(self, idx, kv_cache=None, positions=None, key_mask=None):
        """idx: (B, T) int -> logits: (B, V) of the last position. With a KVCache, idx holds only
        the tokens it has not seen; their positions start at kv_cache.length.

        Left-padded batches: positions (B, T) int gives each new token's position id (0 at a
        row's first real token, as Hugging Face derives them from the attention mask), and
        key_mask (B, start + T) bool marks the real tokens among all keys so far (cached and
        new); padding is then hidden from every query's attention."""
        B, T = idx.shape
        start = 0 if kv_cache is None else kv_cache.length
        if start + T > self.block_size:
            raise ValueError(f"sequence length {start + T} ({start} cached + {T} new) exceeds "
                             f"block_size {self.block_size}; hint: crop to the last "
                             f"{self.block_size} tokens or reset the cache")
        C = self.wte.shape[1]
        nh, hs = self.n_head, C // self.n_head
        tok, _ = embedding_forward(self.wte, idx)  # (B, T, C); an id outside the vocabulary raises
        if positions is None:
            x = tok + self.wpe[start:start + T]  # (B, T, C) + (T, C) -> (B, T, C)
        else:
            positions = np.asarray(positions)
            if positions.shape != (B, T):
                raise ValueError(f"positions has shape {positions.shape}, expected (B, T) = {(B, T)}")
            x = tok + self.wpe[positions]  # (B, T, C) + (B, T, C); wpe[...] raises past block_size
        if key_mask is not None and np.shape(key_mask) != (B, start + T):
            raise ValueError(f"key_mask has shape {np.shape(key_mask)}, expected "
                             f"(B, cached + new) = {(B, start + T)}")
        x = x.reshape(B * T, C)  # rows: every matmul below is one 2-D product
        for i, block in enumerate(self.h):
            # attention: x + attn.c_proj(attention(ln_1(x)))
            h, _ = layernorm_forward(x, *block.ln_1)
            qkv = linear(h, block.attn.c_attn)  # (B*T, 3C)
            # (B*T, 3C) -> (B, T, 3, nh, hs) -> (3, B, nh, T, hs): q, k, v as views, no copy
            q, k, v = qkv.reshape(B, T, 3, nh, hs).transpose(2, 0, 3, 1, 4)
            if kv_cache is not None:
                k, v = kv_cache.layers[i].append(k, v)  # (B, nh, start + T, hs)
            # queries are the last T positions of the keys: causal masking lines them up
            if key_mask is None:
                y, _ = attention_forward(q, k, v, causal=True)  # (B, nh, T, hs)
            else:  # runs on the NumPy reference: the C and Numba kernels take no mask
                y, _ = attention_forward(q, k, v, causal=True, key_mask=key_mask)
            y = y.transpose(0, 2, 1, 3).reshape(B * T, C)  # (B, nh, T, hs) -> (B*T, C)
            x += linear(y, block.attn.c_proj)
            # MLP: x + mlp.c_proj(gelu(mlp.c_fc(ln_2(x))))
            h, _ = layernorm_forward(x, *block.ln_2)
            h, _ = gelu_forward(linear(h, block.mlp.c_fc))  # (B*T, 4C)
            x += linear(h, block.mlp.c_proj)
        # only the last position is scored; LayerNorm works row by row, so ln_f of that row alone
        # is the row of ln_f over all of them
        last = x.reshape(B, T, C)[:, -1]  # (B, C)
        last, _ = layernorm_forward(np.ascontiguousarray(last), *self.ln_f)
        return linear(last, self.lm_head)  # (B, C) @ (C, V): the tied head
