"""GPT-2, top to bottom: GPTConfig, causal self-attention (with its KV cache), the MLP, the
pre-LayerNorm residual Block, and GPT: token + position embeddings, n_layer Blocks, a final
LayerNorm and a language-model head that reuses the token embedding matrix (weight tying).

Parameter names and layouts are GPT-2's (`transformer.h.0.attn.c_attn.weight`, stored (in, out)),
so a Hugging Face GPT-2 state dict maps onto this one name for name. Not here: the generic layers
(tinygpt.nn), sampling (generate.py, and the graph-free decoder in gpt_inference.py), training
loops (tinygpt.train), or reading Hugging Face files (hf_gpt2.py, behind from_pretrained).
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from tinygpt import functional as F
from tinygpt.nn import GELU, Dropout, Embedding, LayerNorm, Linear, Module, ModuleDict, ModuleList, as_rng
from tinygpt.optim import AdamW, weight_decay_groups
from tinygpt.tensor import Tensor


def check_positive_ints(config, names):
    """Raise ValueError naming the first field of `config` in `names` that is not an int > 0."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}")


def check_dropout(config, names=("dropout",)):
    """Raise ValueError naming the first field in `names` that is not a probability in [0, 1)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"{type(config).__name__}.{name} must be in [0, 1), got {value!r}")


@dataclass
class GPTConfig:
    """The shape of a GPT. The defaults are GPT-2 small (124M parameters)."""

    vocab_size: int = 50257
    block_size: int = 1024  # the longest sequence the model can see (rows of wpe)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0  # the one knob most runs set: GPT-2's three dropouts below default to it
    bias: bool = True  # biases in Linear and LayerNorm layers, as in GPT-2
    # GPT-2's (and Hugging Face's) three dropouts; None means "the same as dropout"
    embd_pdrop: float | None = None  # on wte + wpe
    attn_pdrop: float | None = None  # on the attention probabilities, inside the fused attention op
    resid_pdrop: float | None = None  # on the outputs of attn.c_proj and mlp.c_proj

    def __post_init__(self):
        check_positive_ints(self, ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"))
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head "
                             f"({self.n_head}): each head gets n_embd // n_head channels")
        check_dropout(self, ["dropout"] + [f"{w}_pdrop" for w in ("embd", "attn", "resid")
                                           if getattr(self, f"{w}_pdrop") is not None])

    def pdrop(self, where):
        """'embd', 'attn' or 'resid' -> that dropout probability: its own field, else `dropout`.
        (The fields keep None rather than a copy of dropout, so that a config.json saved with
        None follows a later change of dropout, and one saved before the fields existed loads.)"""
        value = getattr(self, f"{where}_pdrop")
        return self.dropout if value is None else value

    def to_dict(self):
        return asdict(self)


def check_idx(idx, what="idx"):
    """idx: integer token ids (B, T), as an array or Tensor -> the array; else a clear error."""
    idx = idx.data if isinstance(idx, Tensor) else np.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{what} must hold integer token ids, got dtype {idx.dtype}; "
                        f"hint: {what}.astype(np.int64)")
    if idx.ndim != 2:
        hint = f"; add a batch axis: {what}[None]" if idx.ndim == 1 else ""
        raise ValueError(f"{what} must have shape (B, T), got shape {idx.shape}{hint}")
    if idx.shape[1] == 0:
        raise ValueError(f"{what} is an empty sequence (shape {idx.shape}); give at least one token")
    return idx


# ---- attention, and the KV cache that makes generation cheap --------------------------------
# One (C, 3C) projection makes queries, keys and values for all heads at once; the heads attend
# independently (F.causal_self_attention: head split, attention kernel and merge as one op), and
# c_proj mixes them back. During generation the keys and values of earlier positions never
# change, so a KVCache keeps them and each new token computes only its own.


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

    def __init__(self, n_embd, n_head, attn_pdrop=0.0, resid_pdrop=0.0, bias=True, rng=None):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} must be divisible by n_head {n_head}")
        rng = as_rng(rng)
        self.n_embd, self.n_head = n_embd, n_head
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias, rng=rng)  # q, k, v for all heads
        self.c_proj = Linear(n_embd, n_embd, bias=bias, rng=rng)  # mixes the heads back
        self.resid_dropout = Dropout(resid_pdrop, rng=rng.spawn(1)[0])
        # NOTE: never called: the fused attention op drops the probabilities itself, seeded from
        # this module's Generator. Being a Dropout (GPT-2's name, attn.attn_dropout) puts its p
        # and Generator where train() and eval() and the checkpoints find every dropout's.
        self.attn_dropout = Dropout(attn_pdrop, rng=rng.spawn(1)[0])

    def forward(self, x, kv_cache=None):
        """x: (B, T, C), kv_cache: a LayerKVCache or None -> (B, T, C)"""
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        p = self.attn_dropout.p if self.training else 0.0
        if kv_cache is None:  # training and uncached inference: head split and merge in one op
            qkv = self.c_attn(x)  # (B, T, C) -> (B, T, 3C)
            y = F.causal_self_attention(qkv, nh, p, rng=self.attn_dropout.rng)  # (B, T, 3C) -> (B, T, C)
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
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True,
                                           rng=self.attn_dropout.rng)  # (B, nh, T, hs)
        y = y.permute(0, 2, 1, 3).reshape(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}"


# ---- the MLP and the residual Block ---------------------------------------------------------
# Block: x + attn(ln_1(x)), then x + mlp(ln_2(x)). Normalising *before* each sub-layer (GPT-2,
# unlike the original Transformer) keeps the residual stream an untouched sum, which is what
# makes deep stacks train stably.


class MLP(Module):
    """x: (B, T, C) -> (B, T, C) through a 4C-wide hidden layer with GELU."""

    def __init__(self, n_embd, resid_pdrop=0.0, bias=True, rng=None):
        super().__init__()
        rng = as_rng(rng)
        self.c_fc = Linear(n_embd, 4 * n_embd, bias=bias, rng=rng)
        self.gelu = GELU(approximate="tanh")  # GPT-2 uses the tanh approximation
        self.c_proj = Linear(4 * n_embd, n_embd, bias=bias, rng=rng)
        self.dropout = Dropout(resid_pdrop, rng=rng.spawn(1)[0])

    def forward(self, x):
        x = self.gelu(self.c_fc(x))  # (B, T, C) -> (B, T, 4C)
        return self.dropout(self.c_proj(x))  # (B, T, 4C) -> (B, T, C)


class Block(Module):
    """One transformer layer: x: (B, T, C) -> (B, T, C)."""

    def __init__(self, n_embd, n_head, attn_pdrop=0.0, resid_pdrop=0.0, bias=True, rng=None):
        super().__init__()
        rng = as_rng(rng)
        self.ln_1 = LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, attn_pdrop, resid_pdrop, bias, rng=rng)
        self.ln_2 = LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, resid_pdrop, bias, rng=rng)

    def forward(self, x, kv_cache=None):
        """x: (B, T, C), kv_cache: this block's LayerKVCache or None -> (B, T, C)"""
        x = x + self.attn(self.ln_1(x), kv_cache=kv_cache)
        return x + self.mlp(self.ln_2(x))


# ---- the model ------------------------------------------------------------------------------


class LMHead(Module):
    """x: (B, T, C) -> logits: (B, T, V) = x @ weightᵀ, where `weight` (V, C) IS the token
    embedding Parameter: GPT-2 uses one matrix to read tokens in and to score them out."""

    def __init__(self, weight):
        super().__init__()
        self.weight = weight  # the same Parameter object as transformer.wte.weight

    def forward(self, x):
        # NOTE: F.linear, not F.matmul: linear folds (B, T) and hands the transposed weight to the
        # GEMM as strides, where a batched matmul would make a contiguous copy of it and keep that
        # for backward (148 MiB at GPT-2's V=50257, C=768)
        return F.linear(x, self.weight.T)  # (B, T, C) @ (C, V) -> (B, T, V)

    def extra_repr(self):
        return "weight tied to the token embedding"


class GPT(Module):
    """idx: (B, T) token ids -> (logits (B, T, V), loss or None)."""

    def __init__(self, config, seed=0, init=True):
        """init=False skips GPT-2's initialisation, for weights about to be assigned (from_pretrained)."""
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        rng = as_rng(seed)  # an int seed or a np.random.Generator: same seed, same model
        self.config = config
        C, attn_p, resid_p = config.n_embd, config.pdrop("attn"), config.pdrop("resid")
        self.transformer = ModuleDict(
            wte=Embedding(config.vocab_size, C, rng=rng),  # token embedding (V, C)
            wpe=Embedding(config.block_size, C, rng=rng),  # position embedding (block_size, C)
            drop=Dropout(config.pdrop("embd"), rng=rng.spawn(1)[0]),
            h=ModuleList([Block(C, config.n_head, attn_p, resid_p, config.bias, rng=rng)
                          for _ in range(config.n_layer)]),
            ln_f=LayerNorm(C, bias=config.bias),
        )
        self.lm_head = LMHead(self.transformer.wte.weight)  # tied: listed and saved once, as wte
        if init:
            self._init_weights(rng)

    @classmethod
    def from_pretrained(cls, path):
        """A local Hugging Face GPT-2 folder (config.json + safetensors) -> GPT in eval mode."""
        from tinygpt.models.hf_gpt2 import load_gpt2
        return load_gpt2(path)

    def save_pretrained(self, path):
        """Write path/config.json + path/model.safetensors for transformers' GPT2LMHeadModel."""
        from tinygpt.models.hf_gpt2 import save_gpt2
        return save_gpt2(self, path)

    def _init_weights(self, rng):
        """GPT-2's initialisation: weights normal(0, 0.02), biases 0, LayerNorm gains 1; and the
        projections that write into the residual stream (c_proj) scaled by 1/sqrt(2 n_layer), so
        the sum of 2 n_layer residual branches does not grow with depth."""
        for module in self.modules():
            if isinstance(module, (Linear, Embedding)):
                module.weight.data[...] = rng.normal(0.0, 0.02, module.weight.shape)
            if isinstance(module, Linear) and module.bias is not None:
                module.bias.data[...] = 0.0
        std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, param in self.named_parameters():
            if name.endswith("c_proj.weight"):
                param.data[...] = rng.normal(0.0, std, param.shape)

    # ----- forward ----------------------------------------------------------------------------
    def features(self, idx, kv_cache=None):
        """idx: (B, T) -> the final hidden states (B, T, C), after ln_f and before the head.
        With a KVCache, idx holds only the new tokens; their positions start at kv_cache.length."""
        idx = check_idx(idx)
        T, start = idx.shape[1], 0 if kv_cache is None else kv_cache.length
        if start + T > self.config.block_size:
            cached = "" if kv_cache is None else f" ({start} cached + {T} new)"
            raise ValueError(f"sequence length {start + T}{cached} exceeds block_size "
                             f"{self.config.block_size}; hint: crop idx to its last "
                             f"{self.config.block_size} tokens")
        if kv_cache is not None and len(kv_cache.layers) != self.config.n_layer:
            raise ValueError(f"kv_cache has {len(kv_cache.layers)} layers, the model has "
                             f"{self.config.n_layer}; make it with model.make_kv_cache(batch_size)")
        tr = self.transformer
        pos = np.arange(start, start + T)  # (T,)
        x = tr.drop(tr.wte(idx) + tr.wpe(pos))  # (B, T, C) + (T, C) -> (B, T, C)
        for i, block in enumerate(tr.h):
            x = block(x, kv_cache=None if kv_cache is None else kv_cache.layers[i])
        return tr.ln_f(x)

    def forward(self, idx, targets=None, kv_cache=None):
        """idx: (B, T), targets: (B, T) or None (-100 marks positions to ignore)
        -> logits (B, T, V), loss (a scalar Tensor) or None."""
        logits = self.lm_head(self.features(idx, kv_cache))  # (B, T, C) -> (B, T, V)
        loss = None if targets is None else F.cross_entropy(logits, targets, ignore_index=-100)
        return logits, loss

    def make_kv_cache(self, batch_size, max_len=None):
        """An empty KVCache for generating up to max_len (default block_size) positions."""
        c = self.config
        return KVCache(c.n_layer, batch_size, c.n_head, max_len or c.block_size, c.n_embd // c.n_head,
                       dtype=self.transformer.wte.weight.dtype)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, seed=None, **options):
        """idx: (B, T) -> (B, T + max_new_tokens), sampled through a KV cache (tinygpt/generate.py);
        options: attention_mask, eos_token_id, pad_token_id, repetition_penalty, num_return_sequences."""
        from tinygpt.generate import generate  # generate.py imports this module: import on use
        return generate(self, idx, max_new_tokens, temperature, top_k, top_p, seed, **options)

    @property
    def feature_size(self):
        return self.config.n_embd

    # ----- accounting -------------------------------------------------------------------------
    def num_params(self, non_embedding=True):
        """Parameter count. non_embedding=True leaves out the position embedding (as nanoGPT does);
        the token embedding stays in because it is also the output layer."""
        n = self.num_parameters()
        return n - self.transformer.wpe.weight.size if non_embedding else n

    def flops_per_token(self):
        """Training FLOPs (forward + backward) per token at full context, as in nanoGPT's
        estimate_mfu (PaLM paper, appendix B): 6N for the weights (2 forward, 4 backward, per
        parameter) + 12 L H Q T for attention's Q Kᵀ and P V, with N = num_params()."""
        c = self.config
        n_layer, n_head, head_size, T = c.n_layer, c.n_head, c.n_embd // c.n_head, c.block_size
        return 6 * self.num_params() + 12 * n_layer * n_head * head_size * T

    def configure_optimizers(self, weight_decay=0.1, learning_rate=6e-4, betas=(0.9, 0.95), eps=1e-8):
        """AdamW that decays the 2-D weights (matrices and embeddings) but no biases or LayerNorm gains."""
        return AdamW(weight_decay_groups(self.named_parameters(), weight_decay), lr=learning_rate,
                     betas=betas, eps=eps)

    def extra_repr(self):
        c = self.config
        return (f"vocab_size={c.vocab_size}, block_size={c.block_size}, n_layer={c.n_layer}, "
                f"n_head={c.n_head}, n_embd={c.n_embd}")
