"""Causal scaled dot-product attention: out = softmax(Q Kᵀ / sqrt(hs) + mask) V, per head.

The mask puts -inf above the diagonal before the softmax, so position t attends to positions <= t.
This reference builds the whole (T, T) score matrix; the C and Numba versions compute the same
thing in tiles of keys with an online softmax (FlashAttention), never holding (T, T) in memory.
Both keep only (q, k, v, out, lse) for backward, where lse is each row's log-sum-exp: from it the
backward recomputes P = exp(S - lse) exactly. Not here: the projections to q, k, v (nn).

key_mask (B, Tk) bool, True where a key is real, hides padding keys (left-padded batched
generation): only this NumPy reference takes it; the C and Numba kernels return NotImplemented
when it is given, so the reference runs. A query that sees no key at all (a pad position in a
left-padded prompt) gets out = 0 instead of nan, so padding never poisons later layers' keys.
"""

import numpy as np

from tinygpt.backend import kernel


def _scores(q, k, scale, causal, key_mask=None):
    """q: (B, nh, Tq, hs), k: (B, nh, Tk, hs), key_mask: (B, Tk) bool or None
    -> S: (B, nh, Tq, Tk), masked with -inf"""
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    if key_mask is not None:
        hidden = ~np.asarray(key_mask, dtype=bool)[:, None, None, :]  # (B, 1, 1, Tk)
        s = np.where(hidden, -np.inf, s).astype(q.dtype, copy=False)
    if causal:
        tq, tk = q.shape[-2], k.shape[-2]
        # query i sits at absolute position i + (Tk - Tq): with a KV cache the queries are the
        # last Tq positions of the Tk keys
        future = np.triu(np.ones((tq, tk), dtype=bool), k=tk - tq + 1)
        s = np.where(future, -np.inf, s).astype(q.dtype, copy=False)
    return s


@kernel
def attention_forward(q, k, v, causal=True, scale=None, key_mask=None):
    """q: (B, nh, Tq, hs), k, v: (B, nh, Tk, hs), key_mask: (B, Tk) bool or None
    -> out: (B, nh, Tq, hs), cache (q, k, v, out, lse, ...)"""
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    if key_mask is not None:
        key_mask = np.asarray(key_mask, dtype=bool)
        if key_mask.shape != (k.shape[0], k.shape[-2]):
            raise ValueError(f"attention: key_mask has shape {key_mask.shape}, expected "
                             f"(B, Tk) = {(k.shape[0], k.shape[-2])}")
    s = _scores(q, k, float(scale), causal, key_mask)
    row_max = np.max(s, axis=-1, keepdims=True)
    if key_mask is not None:
        # a query that sees no key: every score is -inf; shift by 0 so e = 0 and out = 0, not nan
        row_max = np.where(np.isneginf(row_max), 0, row_max).astype(s.dtype, copy=False)
    e = np.exp(s - row_max)
    row_sum = np.sum(e, axis=-1, keepdims=True)
    if key_mask is not None:
        row_sum = np.where(row_sum == 0, 1, row_sum).astype(s.dtype, copy=False)
    out = np.matmul(e / row_sum, v)  # (B, nh, Tq, hs)
    lse = (row_max + np.log(row_sum))[..., 0]  # (B, nh, Tq)
    if key_mask is None:
        return out, (q, k, v, out, lse, causal, float(scale))
    # the mask rides at the end of the cache: the C and Numba backward decline an 8-tuple
    return out, (q, k, v, out, lse, causal, float(scale), key_mask)


@kernel
def attention_backward(dout, cache):
    """dout: (B, nh, Tq, hs) -> dq, dk, dv, shaped like q, k, v"""
    q, k, v, out, lse, causal, scale = cache[:7]
    key_mask = cache[7] if len(cache) > 7 else None
    p = np.exp(_scores(q, k, scale, causal, key_mask) - lse[..., None])  # (B, nh, Tq, Tk), exact softmax
    # out = P V: dV = Pᵀ dout, dP = dout Vᵀ
    dv = np.matmul(np.swapaxes(p, -1, -2), dout)
    dp = np.matmul(dout, np.swapaxes(v, -1, -2))
    # softmax backward row by row: dS = P * (dP - rowsum(dP * P)), and rowsum(dP * P) = rowsum(dout * out)
    delta = np.sum(dout * out, axis=-1, keepdims=True)  # (B, nh, Tq, 1)
    ds = p * (dp - delta) * scale
    # S = Q Kᵀ * scale: dQ = dS K, dK = dSᵀ Q (scale already folded into dS)
    dq = np.matmul(ds, k)
    dk = np.matmul(np.swapaxes(ds, -1, -2), q)
    return dq.astype(q.dtype, copy=False), dk.astype(k.dtype, copy=False), dv.astype(v.dtype, copy=False)


def causal_self_attention_forward(qkv, n_head):
    """qkv: (B, T, 3C), the c_attn projection -> out: (B, T, C), the heads merged back, cache

    The head split and merge of multi-head attention, around the attention kernel, as one op:
    composed from split, reshape and transpose the same thing takes nine graph nodes, and each
    transpose that feeds a kernel costs a copy of the activations."""
    B, T, C3 = qkv.shape
    if C3 % (3 * n_head):
        raise ValueError(f"causal_self_attention: last axis {C3} of qkv is not 3 * n_embd with "
                         f"n_embd divisible by n_head={n_head}")
    C = C3 // 3
    hs = C // n_head
    # (B, T, 3C) -> (B, T, 3, nh, hs) -> (3, B, nh, T, hs): one copy, after which q, k and v
    # are each a contiguous (B, nh, T, hs) block, as the kernels want them
    heads = np.ascontiguousarray(qkv.reshape(B, T, 3, n_head, hs).transpose(2, 0, 3, 1, 4))
    y, attention_cache = attention_forward(heads[0], heads[1], heads[2], causal=True)
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
