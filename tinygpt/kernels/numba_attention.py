"""Numba FlashAttention on the CPU: softmax(Q Kᵀ * scale + causal mask) V without the (T, T) matrix.

Blocks of 4 queries walk the keys they may see in tiles of _KEY_TILE, keeping a running max, a
running sum of exponentials and a running weighted sum of values (the online softmax): when a tile
raises the max, what was summed so far is rescaled by exp(old max - new max). Only each row's
log-sum-exp is kept, so backward recomputes P = exp(S - lse) tile by tile. Heads run in parallel.
A key_mask hides padding keys like the causal mask; dropout on the probabilities uses the same
splitmix64 counter hash as the reference, so a seed gives the reference's mask and backward
recomputes it. Same arguments and cache as tinygpt/ops/attention.py. Not here: float64, or
Tq > Tk when causal.
"""

import math

import numpy as np
from numba import njit, prange

from .numba_math import FAST, exp32, threads_for

_KEY_TILE = 64  # keys per tile: their scores, a few hundred bytes, stay in L1 between the passes
_QUERIES = 4  # queries per block (written out as q0..q3 below): each key and value row loaded once serves 4
# splitmix64's step and mixers, as in tinygpt/ops/attention.py (the mask must be the same bits)
_STEP, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_NO_MASK = np.ones((1, 1), dtype=np.bool_)  # stands in for key_mask when there is none (never read)


@njit(cache=True)
def _keep(seed, counter, threshold):
    """seed, counter, threshold: uint64 -> True when probability `counter` survives dropout."""
    z = seed + (counter + np.uint64(1)) * _STEP
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)) >= threshold


@njit(fastmath=FAST, error_model="numpy", cache=True)
def _attention_forward_head(q, k, v, causal, scale, out, lse, km, masked, h, seed, threshold, drop_scale):
    """One head (number h of B * nh). q: (Tq, hs), k, v: (Tk, hs), km: (Tk,) bool, read when
    masked; dropout when threshold > 0 -> out: (Tq, hs), lse: (Tq,)"""
    tq, hs = q.shape
    tk = k.shape[0]
    offset = tk - tq  # query i sits at position i + offset: with a KV cache, the last Tq of Tk
    last = tq - 1
    s = np.empty((_QUERIES, _KEY_TILE), dtype=np.float32)  # a tile of scores, then of probabilities
    acc = np.empty((_QUERIES, hs), dtype=np.float32)  # running sum of p * v, not yet divided by sum(p)
    row_max = np.empty(_QUERIES, dtype=np.float32)
    row_sum = np.empty(_QUERIES, dtype=np.float32)
    ends = np.empty(_QUERIES, dtype=np.int64)
    dropping = threshold > np.uint64(0)
    for i0 in range(0, tq, _QUERIES):
        # past the last query the block repeats it; those rows are computed and never written
        i1, i2, i3 = min(i0 + 1, last), min(i0 + 2, last), min(i0 + 3, last)
        q0, q1, q2, q3 = q[i0], q[i1], q[i2], q[i3]
        for r in range(_QUERIES):
            # the causal mask: query i sees keys 0..i + offset (with Tq <= Tk, at least key 0)
            ends[r] = min(tk, min(i0 + r, last) + offset + 1) if causal else tk
        row_max[:] = -np.inf
        row_sum[:] = 0.0
        acc[:, :] = 0.0
        for j0 in range(0, ends[_QUERIES - 1], _KEY_TILE):
            n = min(_KEY_TILE, ends[_QUERIES - 1] - j0)
            for j in range(n):  # S = Q Kᵀ * scale for the block and the tile
                kj = k[j0 + j]
                s0 = s1 = s2 = s3 = np.float32(0.0)
                for d in range(hs):
                    s0 += q0[d] * kj[d]
                    s1 += q1[d] * kj[d]
                    s2 += q2[d] * kj[d]
                    s3 += q3[d] * kj[d]
                s[0, j], s[1, j], s[2, j], s[3, j] = s0 * scale, s1 * scale, s2 * scale, s3 * scale
            for r in range(_QUERIES):
                for j in range(max(0, ends[r] - j0), n):
                    s[r, j] = -np.inf  # keys in this tile that query r may not see
                if masked:
                    for j in range(n):
                        if not km[j0 + j]:
                            s[r, j] = -np.inf  # padding keys
                # the online softmax: sums so far were relative to row_max, move them to tile_max
                # (on the first tile row_max = -inf and the factor is exp(-inf) = 0)
                tile_max = row_max[r]
                for j in range(n):
                    tile_max = max(tile_max, s[r, j])
                if tile_max == -np.inf:  # no key seen yet (only with a key_mask): nothing to add
                    for j in range(n):
                        s[r, j] = 0.0
                    continue
                correction = exp32(row_max[r] - tile_max)
                total = np.float32(0.0)
                for j in range(n):
                    s[r, j] = exp32(s[r, j] - tile_max)  # exp(-inf) = 0 for the masked keys
                    total += s[r, j]
                row_sum[r] = row_sum[r] * correction + total
                row_max[r] = tile_max
                for d in range(hs):
                    acc[r, d] *= correction
                if dropping:  # after the sum: the softmax normalises over every key, kept or not
                    first = np.uint64((h * tq + min(i0 + r, last)) * tk + j0)  # flat index of (i, j0)
                    for j in range(n):
                        s[r, j] = s[r, j] * drop_scale if _keep(seed, first + np.uint64(j), threshold) else 0.0
            for j in range(n):  # acc += P V for this tile
                vj = v[j0 + j]
                p0, p1, p2, p3 = s[0, j], s[1, j], s[2, j], s[3, j]
                for d in range(hs):
                    acc[0, d] += p0 * vj[d]
                    acc[1, d] += p1 * vj[d]
                    acc[2, d] += p2 * vj[d]
                    acc[3, d] += p3 * vj[d]
        for r in range(min(_QUERIES, tq - i0)):
            if row_sum[r] == 0.0:  # a query that sees no key (key_mask): out = 0 and lse = 0
                out[i0 + r, :] = 0.0
                lse[i0 + r] = 0.0
                continue
            inv_sum = np.float32(1.0) / row_sum[r]
            for d in range(hs):
                out[i0 + r, d] = acc[r, d] * inv_sum
            lse[i0 + r] = row_max[r] + np.float32(math.log(row_sum[r]))


@njit(parallel=True, cache=True)
def _attention_forward_heads(q, k, v, causal, scale, out, lse, key_mask, masked, nh, seed, threshold,
                             drop_scale):
    """q: (H, Tq, hs), k, v: (H, Tk, hs) with H = B * nh, key_mask: (B, Tk) bool
    -> out: (H, Tq, hs), lse: (H, Tq)"""
    # the heads are independent: spread them over the cores. (The head itself is a separate, serial
    # function because Numba compiles a small `prange` body many times faster than a large one.)
    for h in prange(q.shape[0]):
        km = key_mask[h // nh] if masked else key_mask[0]
        _attention_forward_head(q[h], k[h], v[h], causal, scale, out[h], lse[h], km, masked, h, seed,
                                threshold, drop_scale)


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


def _options(k, key_mask, dropout_p, seed):
    """-> (key_mask as bool or None, threshold, drop_scale), or None for options the reference
    must judge (and reject with its error)."""
    if not 0.0 <= dropout_p < 1.0 or (dropout_p > 0.0 and not (
            isinstance(seed, (int, np.integer)) and 0 <= seed < 2 ** 64)):
        return None
    if key_mask is not None:
        # contiguous, as _NO_MASK is: one compiled signature for masked and unmasked calls
        key_mask = np.ascontiguousarray(key_mask, dtype=np.bool_)
        if key_mask.shape != (k.shape[0], k.shape[2]):
            return None
    threshold = min(int(dropout_p * 16777216.0), 16777216)  # as ops.attention.dropout_threshold
    return key_mask, threshold, np.float32(1.0 / (1.0 - dropout_p))


def attention_forward(q, k, v, causal=True, scale=None, key_mask=None, dropout_p=0.0, seed=0):
    """q: (B, nh, Tq, hs), k, v: (B, nh, Tk, hs), key_mask: (B, Tk) bool or None, dropout_p with an
    int seed -> out: (B, nh, Tq, hs), cache (q, k, v, out, lse, causal, scale, key_mask, dropout_p, seed)"""
    if not _takes(q, k, v, causal):
        return NotImplemented
    options = _options(k, key_mask, dropout_p, seed)
    if options is None:
        return NotImplemented
    key_mask, threshold, drop_scale = options
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    b, nh, tq, hs = q.shape
    out = np.empty((b * nh, tq, hs), dtype=np.float32)
    lse = np.empty((b * nh, tq), dtype=np.float32)
    q, k, v = np.ascontiguousarray(q), np.ascontiguousarray(k), np.ascontiguousarray(v)
    with threads_for(q.size * k.shape[2]):  # multiply-adds of Q Kᵀ
        _attention_forward_heads(_heads(q), _heads(k), _heads(v), bool(causal), np.float32(scale), out, lse,
                                 _NO_MASK if key_mask is None else key_mask, key_mask is not None, nh,
                                 np.uint64(seed), np.uint64(threshold), drop_scale)
    out = out.reshape(q.shape)
    return out, (q, k, v, out, lse.reshape(b, nh, tq), causal, scale, key_mask, float(dropout_p), int(seed))


@njit(fastmath=FAST, error_model="numpy", cache=True)
def _attention_backward_head(q, k, v, out, dout, lse, causal, scale, dq, dk, dv, km, masked, h, seed,
                             threshold, drop_scale):
    """One head (number h). q, out, dout: (Tq, hs), k, v: (Tk, hs), lse: (Tq,), km, masked and the
    dropout as in forward -> dq, dk, dv (zeroed by the caller)"""
    tq, hs = q.shape
    tk = k.shape[0]
    offset = tk - tq
    last = tq - 1
    p = np.empty((_QUERIES, _KEY_TILE), dtype=np.float32)
    ds = np.empty((_QUERIES, _KEY_TILE), dtype=np.float32)
    delta = np.empty(_QUERIES, dtype=np.float32)
    row_lse = np.empty(_QUERIES, dtype=np.float32)
    ends = np.empty(_QUERIES, dtype=np.int64)
    dropping = threshold > np.uint64(0)
    for i0 in range(0, tq, _QUERIES):
        i1, i2, i3 = min(i0 + 1, last), min(i0 + 2, last), min(i0 + 3, last)
        q0, q1, q2, q3 = q[i0], q[i1], q[i2], q[i3]
        g0, g1, g2, g3 = dout[i0], dout[i1], dout[i2], dout[i3]
        dq0, dq1, dq2, dq3 = dq[i0], dq[i1], dq[i2], dq[i3]
        for r in range(_QUERIES):
            i = min(i0 + r, last)
            # a repeated row past the last query sees no key, so all it adds is 0
            ends[r] = 0 if i0 + r > last else (min(tk, i + offset + 1) if causal else tk)
            row_lse[r] = lse[i]
            # softmax backward needs rowsum(dP * P), which equals rowsum(dout * out) for this row
            delta[r] = 0.0
            for d in range(hs):
                delta[r] += dout[i, d] * out[i, d]
        end = max(max(ends[0], ends[1]), max(ends[2], ends[3]))
        for j0 in range(0, end, _KEY_TILE):
            n = min(_KEY_TILE, end - j0)
            for j in range(n):
                kj, vj = k[j0 + j], v[j0 + j]
                s0 = s1 = s2 = s3 = np.float32(0.0)  # S = Q Kᵀ, recomputed
                t0 = t1 = t2 = t3 = np.float32(0.0)  # out = P V, so dP = dout Vᵀ
                for d in range(hs):
                    s0 += q0[d] * kj[d]
                    s1 += q1[d] * kj[d]
                    s2 += q2[d] * kj[d]
                    s3 += q3[d] * kj[d]
                    t0 += g0[d] * vj[d]
                    t1 += g1[d] * vj[d]
                    t2 += g2[d] * vj[d]
                    t3 += g3[d] * vj[d]
                p[0, j], p[1, j], p[2, j], p[3, j] = s0, s1, s2, s3
                ds[0, j], ds[1, j], ds[2, j], ds[3, j] = t0, t1, t2, t3
            for r in range(_QUERIES):
                if not (masked or dropping):
                    for j in range(n):
                        # P exactly as forward had it (0 where the mask hides the key)
                        pj = exp32(p[r, j] * scale - row_lse[r]) if j0 + j < ends[r] else np.float32(0.0)
                        p[r, j] = pj
                        ds[r, j] = pj * (ds[r, j] - delta[r]) * scale  # dS = P (dP - delta), scaled as S
                    continue
                first = np.uint64((h * tq + min(i0 + r, last)) * tk + j0)
                for j in range(n):
                    seen = j0 + j < ends[r] and (not masked or km[j0 + j])
                    pj = exp32(p[r, j] * scale - row_lse[r]) if seen else np.float32(0.0)
                    # out = (P * keep) V, so dP = dout Vᵀ * keep, and dV below takes P * keep
                    kept = np.float32(1.0)
                    if dropping:
                        kept = drop_scale if _keep(seed, first + np.uint64(j), threshold) else np.float32(0.0)
                    p[r, j] = pj * kept
                    ds[r, j] = pj * (ds[r, j] * kept - delta[r]) * scale
            for j in range(n):
                # dV = Pᵀ dout and, with S = Q Kᵀ * scale, dK = dSᵀ Q: 4 queries per store of a row
                a0, a1, a2, a3 = ds[0, j], ds[1, j], ds[2, j], ds[3, j]
                b0, b1, b2, b3 = p[0, j], p[1, j], p[2, j], p[3, j]
                kj, dkj, dvj = k[j0 + j], dk[j0 + j], dv[j0 + j]
                for d in range(hs):
                    dkj[d] += a0 * q0[d] + a1 * q1[d] + a2 * q2[d] + a3 * q3[d]
                    dvj[d] += b0 * g0[d] + b1 * g1[d] + b2 * g2[d] + b3 * g3[d]
                for d in range(hs):  # dQ = dS K
                    dq0[d] += a0 * kj[d]
                    dq1[d] += a1 * kj[d]
                    dq2[d] += a2 * kj[d]
                    dq3[d] += a3 * kj[d]


@njit(parallel=True, cache=True)
def _attention_backward_heads(q, k, v, out, dout, lse, causal, scale, dq, dk, dv, key_mask, masked, nh,
                              seed, threshold, drop_scale):
    """q, out, dout: (H, Tq, hs), k, v: (H, Tk, hs), lse: (H, Tq), key_mask: (B, Tk)
    -> dq, dk, dv (zeroed by the caller)"""
    for h in prange(q.shape[0]):  # one head per iteration, so dk[h] and dv[h] have a single writer
        km = key_mask[h // nh] if masked else key_mask[0]
        _attention_backward_head(q[h], k[h], v[h], out[h], dout[h], lse[h], causal, scale,
                                 dq[h], dk[h], dv[h], km, masked, h, seed, threshold, drop_scale)


def attention_backward(dout, cache):
    """dout: (B, nh, Tq, hs) -> dq, dk, dv, shaped like q, k, v"""
    q, k, v, out, lse, causal, scale, key_mask, dropout_p, seed = cache
    options = _options(k, key_mask, dropout_p, seed)
    if options is None:
        return NotImplemented
    key_mask, threshold, drop_scale = options
    if not _takes(q, k, v, causal) or not all(
            isinstance(a, np.ndarray) and a.dtype == np.float32 for a in (out, lse, dout)) \
            or dout.shape != q.shape or out.shape != q.shape or lse.shape != q.shape[:3]:
        return NotImplemented
    dq, dk, dv = np.zeros(q.shape, np.float32), np.zeros(k.shape, np.float32), np.zeros(v.shape, np.float32)
    with threads_for(q.size * k.shape[2]):
        _attention_backward_heads(_heads(q), _heads(k), _heads(v), _heads(out), _heads(dout),
                                  np.ascontiguousarray(lse).reshape(-1, q.shape[2]), bool(causal),
                                  np.float32(scale), _heads(dq), _heads(dk), _heads(dv),
                                  _NO_MASK if key_mask is None else key_mask, key_mask is not None,
                                  q.shape[1], np.uint64(seed), np.uint64(threshold), drop_scale)
    return dq, dk, dv
