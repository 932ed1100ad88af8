"""Numba FlashAttention on the CPU: softmax(Q Kᵀ * scale + causal mask) V without the (T, T) matrix.

Each query walks the keys it may see in tiles of _KEY_TILE, keeping a running max, a running sum
of exponentials and a running weighted sum of values (the online softmax): when a tile raises the
max, what was summed so far is rescaled by exp(old max - new max). Only each row's log-sum-exp is
kept, so backward recomputes P = exp(S - lse) tile by tile. Heads run in parallel (`prange`).
Same arguments and cache as tinygpt/ops/attention.py. Not here: float64, or Tq > Tk when causal.
"""

import math

import numpy as np
from numba import njit, prange

from .numba_math import FAST, exp32, threads_for

_KEY_TILE = 64  # keys per tile: their scores, a few hundred bytes, stay in L1 between the passes


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _attention_forward_heads(q, k, v, causal, scale, out, lse):
    """q: (H, Tq, hs), k, v: (H, Tk, hs) with H = B * nh -> out: (H, Tq, hs), lse: (H, Tq)"""
    heads, tq, hs = q.shape
    tk = k.shape[1]
    offset = tk - tq  # query i sits at position i + offset: with a KV cache, the last Tq of Tk
    for h in prange(heads):
        s = np.empty(_KEY_TILE, dtype=np.float32)  # one tile of scores, then of probabilities
        acc = np.empty(hs, dtype=np.float32)  # running sum of p * v, not yet divided by the sum of p
        for i in range(tq):
            # the causal mask as a loop bound: query i sees keys 0..i + offset, so no -inf is stored
            end = min(tk, i + offset + 1) if causal else tk
            row_max = np.float32(-np.inf)
            row_sum = np.float32(0.0)
            acc[:] = 0.0
            for j0 in range(0, end, _KEY_TILE):
                n = min(_KEY_TILE, end - j0)
                tile_max = row_max
                for j in range(n):  # S = Q Kᵀ * scale, one row of one tile
                    dot = np.float32(0.0)
                    for d in range(hs):
                        dot += q[h, i, d] * k[h, j0 + j, d]
                    s[j] = dot * scale
                    tile_max = max(tile_max, s[j])
                # the online softmax: sums so far were relative to row_max, move them to tile_max
                # (on the first tile row_max = -inf and the factor is exp(-inf) = 0)
                correction = exp32(row_max - tile_max)
                row_sum *= correction
                for d in range(hs):
                    acc[d] *= correction
                for j in range(n):
                    s[j] = exp32(s[j] - tile_max)
                    row_sum += s[j]
                for j in range(n):  # acc += P V for this tile
                    for d in range(hs):
                        acc[d] += s[j] * v[h, j0 + j, d]
                row_max = tile_max
            inv_sum = np.float32(1.0) / row_sum
            for d in range(hs):
                out[h, i, d] = acc[d] * inv_sum
            lse[h, i] = row_max + np.float32(math.log(row_sum))


def _heads(a):
    """(B, nh, T, hs) -> C-contiguous float32 (B * nh, T, hs), a view when a already is contiguous."""
    return np.ascontiguousarray(a).reshape(-1, a.shape[2], a.shape[3])


def _takes(q, k, v, causal):
    """True when the kernel can run: float32 4-D q, k, v of fitting shapes, and a query sees a key."""
    if not all(isinstance(a, np.ndarray) and a.dtype == np.float32 and a.ndim == 4 for a in (q, k, v)):
        return False
    if k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3] or k.shape[2] == 0:
        return False
    return not (causal and q.shape[2] > k.shape[2])  # the first queries would see no key at all


def attention_forward(q, k, v, causal=True, scale=None):
    """q: (B, nh, Tq, hs), k, v: (B, nh, Tk, hs) -> out: (B, nh, Tq, hs), cache (q, k, v, out, lse, ...)"""
    if not _takes(q, k, v, causal):
        return NotImplemented
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    b, nh, tq, hs = q.shape
    out = np.empty((b * nh, tq, hs), dtype=np.float32)
    lse = np.empty((b * nh, tq), dtype=np.float32)
    q, k, v = np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v)
    with threads_for(q.size * k.shape[2]):  # multiply-adds of Q Kᵀ
        _attention_forward_heads(_heads(q), _heads(k), _heads(v), bool(causal), np.float32(scale), out, lse)
    out = out.reshape(q.shape)
    return out, (q, k, v, out, lse.reshape(b, nh, tq), causal, scale)


@njit(parallel=True, fastmath=FAST, error_model="numpy", cache=True)
def _attention_backward_heads(q, k, v, out, dout, lse, causal, scale, dq, dk, dv):
    """q, out, dout: (H, Tq, hs), k, v: (H, Tk, hs), lse: (H, Tq) -> dq, dk, dv (zeroed by the caller)"""
    heads, tq, hs = q.shape
    tk = k.shape[1]
    offset = tk - tq
    for h in prange(heads):  # one head per iteration, so dk[h] and dv[h] have a single writer
        p = np.empty(_KEY_TILE, dtype=np.float32)
        ds = np.empty(_KEY_TILE, dtype=np.float32)
        for i in range(tq):
            end = min(tk, i + offset + 1) if causal else tk
            # softmax backward needs rowsum(dP * P), which equals rowsum(dout * out) for this row
            delta = np.float32(0.0)
            for d in range(hs):
                delta += dout[h, i, d] * out[h, i, d]
            for j0 in range(0, end, _KEY_TILE):
                n = min(_KEY_TILE, end - j0)
                for j in range(n):
                    score = np.float32(0.0)  # S = Q Kᵀ * scale, recomputed
                    dp = np.float32(0.0)  # out = P V, so dP = dout Vᵀ
                    for d in range(hs):
                        score += q[h, i, d] * k[h, j0 + j, d]
                        dp += dout[h, i, d] * v[h, j0 + j, d]
                    p[j] = score * scale
                    ds[j] = dp
                for j in range(n):
                    p[j] = exp32(p[j] - lse[h, i])  # P exactly as forward had it
                    ds[j] = p[j] * (ds[j] - delta) * scale  # dS = P (dP - delta), times scale for S
                for j in range(n):
                    # dV = Pᵀ dout; S = Q Kᵀ * scale, so dQ = dS K and dK = dSᵀ Q
                    for d in range(hs):
                        dv[h, j0 + j, d] += p[j] * dout[h, i, d]
                        dq[h, i, d] += ds[j] * k[h, j0 + j, d]
                        dk[h, j0 + j, d] += ds[j] * q[h, i, d]


def attention_backward(dout, cache):
    """dout: (B, nh, Tq, hs) -> dq, dk, dv, shaped like q, k, v"""
    q, k, v, out, lse, causal, scale = cache
    if not _takes(q, k, v, causal) or not all(
            isinstance(a, np.ndarray) and a.dtype == np.float32 for a in (out, lse, dout)) \
            or dout.shape != q.shape or out.shape != q.shape or lse.shape != q.shape[:3]:
        return NotImplemented
    dq, dk, dv = np.zeros(q.shape, np.float32), np.zeros(k.shape, np.float32), np.zeros(v.shape, np.float32)
    with threads_for(q.size * k.shape[2]):
        _attention_backward_heads(_heads(q), _heads(k), _heads(v), _heads(out), _heads(dout),
                                  np.ascontiguousarray(lse).reshape(-1, q.shape[2]), bool(causal),
                                  np.float32(scale), _heads(dq), _heads(dk), _heads(dv))
    return dq, dk, dv
