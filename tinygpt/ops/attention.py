"""Causal scaled dot-product attention: out = dropout(softmax(Q Kᵀ * scale + mask)) V, per head.

The mask puts -inf above the diagonal before the softmax, so position t attends to positions <= t;
key_mask (B, Tk) bool, True where a key is real, also hides padding keys (left-padded batched
generation). A query that sees no key at all (a pad position of a left-padded prompt) gets out = 0
instead of nan, so padding never poisons later layers' keys. This reference builds the whole
(T, T) score matrix; the C and Numba versions compute the same thing in tiles of keys with an
online softmax (FlashAttention), never holding (T, T) in memory. All keep only (q, k, v, out, lse)
for backward, where lse is each row's log-sum-exp: from it the backward recomputes P = exp(S - lse)
exactly. Not here: the projections to q, k, v (models/gpt.py).

Dropout on the probabilities (GPT-2's attn_pdrop) is decided by a counter-based hash: element
(h, i, j) of the (B * nh, Tq, Tk) probabilities is kept when splitmix64(seed, its flat index) clears
a threshold. NumPy, Numba and C compute the same hash, so one seed gives one mask everywhere, and
backward recomputes the mask from the seed instead of storing a (T, T) array of it.
"""

import numpy as np

from tinygpt.backend import kernel

# splitmix64's constants (Steele, Lea and Flood 2014): an odd step and two multipliers of its mixer
_STEP, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def dropout_threshold(p):
    """dropout probability p -> the 24-bit threshold: an element is kept when its hash's top 24
    bits are >= it, so it is kept with probability 1 - floor(p * 2**24) / 2**24."""
    return min(int(p * 16777216.0), 16777216)


def dropout_keep(seed, counters, threshold):
    """seed: int in [0, 2**64), counters: uint64 array of flat indices -> keep: bool array

    splitmix64 of the counter'th step after `seed`: z = seed + (counter + 1) * step, then two
    xor-shift-multiply rounds; the top 24 bits of z decide. (uint64 arithmetic wraps mod 2**64.)"""
    z = np.uint64(seed) + (counters + np.uint64(1)) * _STEP
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(40)) >= np.uint64(threshold)


def _dropout_multiplier(shape, dropout_p, seed, dtype):
    """-> (B, nh, Tq, Tk) array of 0 (dropped) and 1 / (1 - p) (kept), or None when p = 0"""
    if dropout_p == 0.0:
        return None
    counters = np.arange(np.prod(shape), dtype=np.uint64).reshape(shape)  # h * Tq * Tk + i * Tk + j
    keep = dropout_keep(seed, counters, dropout_threshold(dropout_p))
    return np.where(keep, np.float32(1.0 / (1.0 - dropout_p)), np.float32(0.0)).astype(dtype, copy=False)


def _scores(q, k, scale, causal, key_mask=None):
    """q: (B, nh, Tq, hs), k: (B, nh, Tk, hs), key_mask: (B, Tk) bool or None
    -> S: (B, nh, Tq, Tk), masked with -inf"""
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    if key_mask is not None:
        hidden = ~key_mask[:, None, None, :]  # (B, 1, 1, Tk)
        s = np.where(hidden, -np.inf, s).astype(q.dtype, copy=False)
    if causal:
        tq, tk = q.shape[-2], k.shape[-2]
        # query i sits at absolute position i + (Tk - Tq): with a KV cache the queries are the
        # last Tq positions of the Tk keys
        future = np.triu(np.ones((tq, tk), dtype=bool), k=tk - tq + 1)
        s = np.where(future, -np.inf, s).astype(q.dtype, copy=False)
    return s


def check_attention_options(k, key_mask, dropout_p, seed):
    """Validate the options every implementation takes -> key_mask as a bool array or None."""
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"attention: dropout_p must be in [0, 1), got {dropout_p!r}")
    if dropout_p > 0.0 and not (isinstance(seed, (int, np.integer)) and 0 <= seed < 2 ** 64):
        raise ValueError(f"attention: dropout needs an integer seed in [0, 2**64), got {seed!r}")
    if key_mask is None:
        return None
    key_mask = np.asarray(key_mask, dtype=bool)
    if key_mask.shape != (k.shape[0], k.shape[-2]):
        raise ValueError(f"attention: key_mask has shape {key_mask.shape}, expected "
                         f"(B, Tk) = {(k.shape[0], k.shape[-2])}")
    return key_mask


@kernel
def attention_forward(q, k, v, causal=True, scale=None, key_mask=None, dropout_p=0.0, seed=0):
    """q: (B, nh, Tq, hs), k, v: (B, nh, Tk, hs), key_mask: (B, Tk) bool or None,
    dropout_p with an int seed -> out: (B, nh, Tq, hs),
    cache (q, k, v, out, lse, causal, scale, key_mask, dropout_p, seed)"""
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    key_mask = check_attention_options(k, key_mask, dropout_p, seed)
    s = _scores(q, k, float(scale), causal, key_mask)
    row_max = np.max(s, axis=-1, keepdims=True)
    if key_mask is not None:
        # a query that sees no key: every score is -inf; shift by 0 so e = 0 and out = 0, not nan
        row_max = np.where(np.isneginf(row_max), 0, row_max).astype(s.dtype, copy=False)
    e = np.exp(s - row_max)
    row_sum = np.sum(e, axis=-1, keepdims=True)
    if key_mask is not None:
        row_sum = np.where(row_sum == 0, 1, row_sum).astype(s.dtype, copy=False)
    p = e / row_sum  # (B, nh, Tq, Tk)
    keep = _dropout_multiplier(p.shape, dropout_p, seed, p.dtype)
    if keep is not None:
        p = p * keep  # dropped after normalising, as torch and GPT-2 do: the kept rows sum to ~1
    out = np.matmul(p, v)  # (B, nh, Tq, hs)
    lse = (row_max + np.log(row_sum))[..., 0]  # (B, nh, Tq), of the probabilities before dropout
    return out, (q, k, v, out, lse, causal, float(scale), key_mask, float(dropout_p), int(seed))


@kernel
def attention_backward(dout, cache):
    """dout: (B, nh, Tq, hs) -> dq, dk, dv, shaped like q, k, v"""
    q, k, v, out, lse, causal, scale, key_mask, dropout_p, seed = cache
    p = np.exp(_scores(q, k, scale, causal, key_mask) - lse[..., None])  # (B, nh, Tq, Tk), exact softmax
    keep = _dropout_multiplier(p.shape, dropout_p, seed, p.dtype)  # the forward's mask, from its seed
    # out = (P * keep) V: dV = (P * keep)ᵀ dout, and d(P * keep) = dout Vᵀ, so dP = dout Vᵀ * keep
    dv = np.matmul(np.swapaxes(p if keep is None else p * keep, -1, -2), dout)
    dp = np.matmul(dout, np.swapaxes(v, -1, -2))
    if keep is not None:
        dp *= keep
    # softmax backward row by row: dS = P * (dP - rowsum(dP * P)), and rowsum(dP * P) = rowsum(dout * out)
    # (with dropout too: rowsum(dout Vᵀ * keep * P) = rowsum(dout * ((P * keep) V)))
    delta = np.sum(dout * out, axis=-1, keepdims=True)  # (B, nh, Tq, 1)
    ds = p * (dp - delta) * scale
    # S = Q Kᵀ * scale: dQ = dS K, dK = dSᵀ Q (scale already folded into dS)
    dq = np.matmul(ds, k)
    dk = np.matmul(np.swapaxes(ds, -1, -2), q)
    return dq.astype(q.dtype, copy=False), dk.astype(k.dtype, copy=False), dv.astype(v.dtype, copy=False)


def causal_self_attention_forward(qkv, n_head, dropout_p=0.0, seed=0):
    """qkv: (B, T, 3C), the c_attn projection -> out: (B, T, C), the heads merged back, cache

    The head split and merge of multi-head attention, around the attention kernel, as one op:
    one graph node instead of a split, three reshapes, three transposes and a merge, and no
    copy of the activations for each transpose that feeds the kernel."""
    B, T, C3 = qkv.shape
    if C3 % (3 * n_head):
        raise ValueError(f"causal_self_attention: last axis {C3} of qkv is not 3 * n_embd with "
                         f"n_embd divisible by n_head={n_head}")
    C = C3 // 3
    hs = C // n_head
    # (B, T, 3C) -> (B, T, 3, nh, hs) -> (3, B, nh, T, hs): one copy, after which q, k and v
    # are each a contiguous (B, nh, T, hs) block, as the kernels want them
    heads = np.ascontiguousarray(qkv.reshape(B, T, 3, n_head, hs).transpose(2, 0, 3, 1, 4))
    y, attention_cache = attention_forward(heads[0], heads[1], heads[2], causal=True,
                                           dropout_p=dropout_p, seed=seed)
    out = y.transpose(0, 2, 1, 3).reshape(B, T, C)  # (B, nh, T, hs) -> (B, T, nh, hs) -> (B, T, C)
    return out, (attention_cache, n_head)


def causal_self_attention_backward(dout, cache):
    """dout: (B, T, C) -> dqkv: (B, T, 3C)"""
    attention_cache, n_head = cache
    B, T, C = dout.shape
    hs = C // n_head
    # undo the merge: (B, T, C) -> (B, T, nh, hs) -> (B, nh, T, hs)
    dy = np.ascontiguousarray(dout.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3))
    dq, dk, dv = attention_backward(dy, attention_cache)
    # undo the split: each (B, nh, T, hs) gradient goes back to its third of (B, T, 3, nh, hs)
    dqkv = np.empty((B, T, 3, n_head, hs), dtype=dq.dtype)
    for i, d in enumerate((dq, dk, dv)):
        dqkv[:, :, i] = d.transpose(0, 2, 1, 3)
    return dqkv.reshape(B, T, 3 * C)
