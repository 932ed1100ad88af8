"""The C kernels (csrc/, compiled by cffi into tinygpt._tinygpt_c) behind the NumPy references' names.

Each wrapper has its reference's name, arguments and cache: it checks dtype and layout, allocates
outputs with NumPy, hands pointers to C and returns NotImplemented for what C does not take
(float64, an axis other than the last, probability targets...), so the reference runs instead.
Not here: the math (csrc/*.c) or choosing a backend (tinygpt/backend/). Imports nothing from
tinygpt but the compiled extension.
"""

import math
import os
import warnings

import numpy as np

# NOTE: must be set before the extension loads libgomp, which reads it once. By default OpenMP
# threads spin for a while after each parallel loop; on 2 cores they then steal the core from the
# thread doing the next op (OpenBLAS, NumPy, Python), and a GPT training step measured 6-10x
# slower on a busy machine. Passive threads sleep at once. An explicit setting is respected.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    from tinygpt._tinygpt_c import ffi, lib
except ImportError as error:
    _why = (f"tinygpt's C kernels are not built ({error}); reinstall with a C compiler present "
            f"(pip install -e .) to build them")
    warnings.warn(f"{_why}. Running on Numba/NumPy.", RuntimeWarning, stacklevel=2)
    raise ImportError(_why) from error

_F32 = np.dtype(np.float32)
_FLOATS = ffi.typeof("float[]")
_INT64S = ffi.typeof("long long[]")
_BYTES = ffi.typeof("unsigned char[]")
_NULL = ffi.NULL


def _p(array):
    """A float* to the data of a C-contiguous float32 array."""
    return ffi.from_buffer(_FLOATS, array)


def _f32(*arrays):
    """True when every argument is a float32 ndarray (what the C kernels take)."""
    for a in arrays:  # a plain loop: this runs on every call of every kernel
        if type(a) is not np.ndarray or (a.dtype is not _F32 and a.dtype != _F32):
            return False
    return True


def _c(array):
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def _operand(x):
    """2-D x as (pointer, row stride, column stride) without copying a transposed array."""
    if x.flags.c_contiguous:
        return _p(x), x.shape[1], 1
    if x.flags.f_contiguous:  # x.T is C-contiguous: same buffer, swapped strides
        return _p(x.T), 1, x.shape[0]
    return _operand(np.ascontiguousarray(x))


def set_num_threads(n):
    """How many OpenMP threads every C kernel uses from now on."""
    lib.tinygpt_set_num_threads(int(n))


def get_num_threads():
    return lib.tinygpt_get_num_threads()


def simd():
    """'build: <vector ISA the C kernels were compiled for>; cpu: <what this CPU has>'"""
    return ffi.string(lib.tinygpt_simd()).decode()


# ---- matmul ---------------------------------------------------------------------------------

SKINNY_ROWS = 16  # up to this many rows of a (a decoding step of a small batch), sgemm_skinny does it

def matmul_forward(a, b):
    """a: (..., M, K), b: (K, N) or (..., M, K) @ (..., K, N) with equal batch axes -> out, (a, b)"""
    if not _f32(a, b) or a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2] or 0 in a.shape or 0 in b.shape:
        return NotImplemented
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    if a.ndim == 2 and b.ndim == 2 and m <= SKINNY_ROWS and (b.flags.c_contiguous or b.flags.f_contiguous):
        # a few rows (a step of KV-cached generation): sgemm would pack all of b into panels,
        # costlier than the product itself; sgemm_skinny reads b once, in place
        a = _c(a)
        out = np.empty((m, n), _F32)
        pb, rsb, csb = _operand(b)
        lib.sgemm_skinny(m, n, k, _p(a), k, pb, rsb, csb, _p(out), n)
        return out, (a, b)
    if a.ndim == 2 and b.ndim == 2:  # any layout: a transposed operand is just other strides
        out = np.empty((m, n), _F32)
        pa, rsa, csa = _operand(a)
        pb, rsb, csb = _operand(b)
        lib.sgemm(m, n, k, pa, rsa, csa, pb, rsb, csb, _p(out), n, 0)
        return out, (a, b)
    if b.ndim != 2 and a.shape[:-2] != b.shape[:-2]:
        return NotImplemented  # broadcasting batch axes: the reference handles it
    a, b = _c(a), _c(b)
    out = np.empty(a.shape[:-1] + (n,), _F32)
    batch = a.size // (m * k)
    lib.matmul_forward(_p(out), _p(a), _p(b), batch, m, k, n, b.ndim != 2)
    return out, (a, b)


def matmul_backward(dout, cache):
    """dout: (..., M, N) -> da: a's shape, db: b's shape"""
    a, b = cache
    if not _f32(dout, a, b) or a.ndim < 2 or b.ndim < 2 or 0 in dout.shape:
        return NotImplemented
    if b.ndim != 2 and a.shape[:-2] != b.shape[:-2]:
        return NotImplemented
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    dout = _c(dout)
    da = np.empty(a.shape, _F32)
    if b.ndim == 2:
        # out = a @ b: da = dout @ b^T, db = a^T @ dout summed over the batch (one product
        # with the batch folded into the inner dimension); transposes are swapped strides
        rows = dout.size // n
        if a.ndim != 2:
            a = _c(a)
        pa, rsa, csa = _operand(a.reshape(rows, k))
        pb, rsb, csb = _operand(b)
        pg = _p(dout)
        lib.sgemm(rows, k, n, pg, n, 1, pb, csb, rsb, _p(da), k, 0)
        if b.flags.f_contiguous and not b.flags.c_contiguous:
            # NOTE: b is a transposed view (GPT's tied head: wte.T). db comes out in b's memory
            # layout, as db^T = dout^T @ a, so that it adds into wte's gradient row by row:
            # adding a transposed (V, C) array strides through memory and cost GPT-2 124M ~90 ms.
            db_t = np.empty((n, k), _F32)  # (N, K)
            lib.sgemm(n, k, rows, pg, 1, n, pa, rsa, csa, _p(db_t), k, 0)
            return da, db_t.T
        db = np.empty(b.shape, _F32)
        lib.sgemm(k, n, rows, pa, csa, rsa, pg, n, 1, _p(db), n, 0)
        return da, db
    db = np.empty(b.shape, _F32)
    a, b = _c(a), _c(b)
    batch = a.size // (m * k)
    lib.matmul_backward(_p(da), _p(db), _p(dout), _p(a), _p(b), batch, m, k, n, 1)
    return da, db


# ---- attention ------------------------------------------------------------------------------

def _attention_options(k, key_mask, dropout_p, seed):
    """-> (key_mask as bool or None, pointer to it or NULL, threshold, drop_scale), or None for
    options the reference must judge (and reject with its error)."""
    if not 0.0 <= dropout_p < 1.0 or (dropout_p > 0.0 and not (
            isinstance(seed, (int, np.integer)) and 0 <= seed < 2 ** 64)):
        return None
    pointer = _NULL
    if key_mask is not None:
        key_mask = np.ascontiguousarray(key_mask, dtype=np.bool_)  # NumPy's bool is one byte, 0 or 1
        if key_mask.shape != (k.shape[0], k.shape[2]):
            return None
        pointer = ffi.from_buffer(_BYTES, key_mask)
    threshold = min(int(dropout_p * 16777216.0), 16777216)  # as ops.attention.dropout_threshold
    return key_mask, pointer, threshold, float(np.float32(1.0 / (1.0 - dropout_p)))


def attention_forward(q, k, v, causal=True, scale=None, key_mask=None, dropout_p=0.0, seed=0):
    """q: (B, nh, Tq, hs), k, v: (B, nh, Tk, hs), key_mask: (B, Tk) bool or None, dropout_p with an
    int seed -> out: (B, nh, Tq, hs), cache (q, k, v, out, lse, causal, scale, key_mask, dropout_p, seed)"""
    if not _f32(q, k, v) or q.ndim != 4 or k.shape != v.shape or k.ndim != 4 \
            or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3] or 0 in q.shape or 0 in k.shape:
        return NotImplemented
    b, nh, tq, hs = q.shape
    tk = k.shape[2]
    if causal and tq > tk:
        return NotImplemented  # the first queries would see no key at all: the reference says nan
    options = _attention_options(k, key_mask, dropout_p, seed)
    if options is None:
        return NotImplemented
    key_mask, mask_pointer, threshold, drop_scale = options
    scale = 1.0 / math.sqrt(hs) if scale is None else float(scale)
    q, k, v = _c(q), _c(k), _c(v)
    out = np.empty(q.shape, _F32)
    lse = np.empty((b, nh, tq), _F32)
    lib.attention_forward(_p(out), _p(lse), _p(q), _p(k), _p(v), mask_pointer, b * nh, nh, tq, tk, hs,
                          bool(causal), scale, int(seed), threshold, drop_scale)
    return out, (q, k, v, out, lse, causal, scale, key_mask, float(dropout_p), int(seed))


def attention_backward(dout, cache):
    """dout: (B, nh, Tq, hs) -> dq, dk, dv, shaped like q, k, v"""
    q, k, v, out, lse, causal, scale, key_mask, dropout_p, seed = cache
    if not _f32(dout, q, k, v, out, lse) or q.ndim != 4 or dout.shape != q.shape:
        return NotImplemented
    options = _attention_options(k, key_mask, dropout_p, seed)
    if options is None:
        return NotImplemented
    key_mask, mask_pointer, threshold, drop_scale = options
    b, nh, tq, hs = q.shape
    tk = k.shape[2]
    q, k, v, out, lse, dout = _c(q), _c(k), _c(v), _c(out), _c(lse), _c(dout)
    dq, dk, dv = np.empty(q.shape, _F32), np.empty(k.shape, _F32), np.empty(v.shape, _F32)
    lib.attention_backward(_p(dq), _p(dk), _p(dv), _p(dout), _p(q), _p(k), _p(v), _p(out), _p(lse),
                           mask_pointer, b * nh, nh, tq, tk, hs, bool(causal), scale, int(seed),
                           threshold, drop_scale)
    return dq, dk, dv


# ---- softmax, log-softmax, cross-entropy ----------------------------------------------------

def _last_axis(x, axis):
    return x.ndim >= 1 and axis in (-1, x.ndim - 1) and x.size > 0


def _rowwise(c_function, first, *more):
    """Run a row-wise C kernel on C-contiguous copies of arrays shaped like `first`: (..., V)."""
    arrays = [_c(first)] + [_c(a) for a in more]
    result = np.empty(first.shape, _F32)
    v = first.shape[-1]
    c_function(_p(result), *[_p(a) for a in arrays], first.size // v, v)
    return result


def softmax_forward(x, axis=-1):
    """x: (..., V) -> out: (..., V); only the last axis (NotImplemented otherwise)"""
    if not _f32(x) or not _last_axis(x, axis):
        return NotImplemented
    out = _rowwise(lib.softmax_forward, x)
    return out, (out, axis)


def softmax_backward(dout, cache):
    out, axis = cache
    if not _f32(dout, out) or not _last_axis(out, axis) or dout.shape != out.shape:
        return NotImplemented
    return _rowwise(lib.softmax_backward, dout, out)


def log_softmax_forward(x, axis=-1):
    if not _f32(x) or not _last_axis(x, axis):
        return NotImplemented
    out = _rowwise(lib.log_softmax_forward, x)
    return out, (out, axis)


def log_softmax_backward(dout, cache):
    out, axis = cache
    if not _f32(dout, out) or not _last_axis(out, axis) or dout.shape != out.shape:
        return NotImplemented
    return _rowwise(lib.log_softmax_backward, dout, out)


def cross_entropy_forward(logits, targets, ignore_index=-100, reduction="mean"):
    """logits: (N, V), targets: int (N,) -> loss; probability targets: NotImplemented"""
    if not _f32(logits) or logits.ndim != 2 or type(targets) is not np.ndarray \
            or targets.ndim != 1 or targets.dtype.kind not in "iu" or 0 in logits.shape \
            or targets.shape[0] != logits.shape[0]:
        return NotImplemented
    n, v = logits.shape
    logits = _c(logits)
    t = np.ascontiguousarray(targets, dtype=np.int64)
    losses = np.empty(n, _F32)
    lse = np.empty((n, 1), _F32)
    bad = lib.cross_entropy_forward(_p(losses), _p(lse), _p(logits), ffi.from_buffer(_INT64S, t),
                                    n, v, int(ignore_index))
    if bad:
        return NotImplemented  # a target outside [0, V): the reference raises the IndexError
    keep = targets != ignore_index
    count = int(keep.sum())
    if reduction == "mean":
        # NOTE: with every target ignored this is 0/0 = nan, as in PyTorch: never hidden
        loss = np.asarray(losses.sum() / count if count else np.nan, dtype=_F32)
    elif reduction == "sum":
        loss = np.asarray(losses.sum(), dtype=_F32)
    else:
        loss = losses
    return loss, (logits, lse, targets, keep, reduction, count)


def cross_entropy_backward(dout, cache):
    """dout: () or (N,) -> dlogits: (N, V), None for the targets"""
    logits, lse, targets, keep, reduction, count = cache
    if not _f32(logits, lse) or targets.ndim != 1 or (reduction == "mean" and not count):
        return NotImplemented
    n, v = logits.shape
    per_row = reduction not in ("mean", "sum")
    scale = np.asarray(dout, dtype=_F32).reshape(-1)
    if reduction == "mean":
        scale = scale / np.float32(count)
    if scale.shape[0] != (n if per_row else 1):
        return NotImplemented
    scale = _c(scale)
    # the cache keeps the mask, not ignore_index: mark ignored rows with -1 for C
    t = np.where(keep, targets, -1).astype(np.int64, copy=False)
    dlogits = np.empty((n, v), _F32)
    lib.cross_entropy_backward(_p(dlogits), _p(_c(logits)), _p(_c(lse)), ffi.from_buffer(_INT64S, t),
                               _p(scale), n, v, -1, per_row)
    return dlogits, None


# ---- layernorm, gelu, adamw -----------------------------------------------------------------

def layernorm_forward(x, w, b, eps=1e-5):
    """x: (..., C), w: (C,), b: (C,) or None -> out: (..., C), cache (xhat, rstd, w, b is None)"""
    if not _f32(x, w) or (b is not None and not _f32(b)) or x.ndim < 1 or x.size == 0 \
            or w.shape != x.shape[-1:] or (b is not None and b.shape != w.shape):
        return NotImplemented
    x, w = _c(x), _c(w)
    c = x.shape[-1]
    out, xhat = np.empty(x.shape, _F32), np.empty(x.shape, _F32)
    rstd = np.empty(x.shape[:-1] + (1,), _F32)
    lib.layernorm_forward(_p(out), _p(xhat), _p(rstd), _p(x), _p(w),
                          _NULL if b is None else _p(_c(b)), x.size // c, c, float(eps))
    return out, (xhat, rstd, w, b is None)


def layernorm_backward(dout, cache):
    """dout: (..., C) -> dx: (..., C), dw: (C,), db: (C,) or None"""
    xhat, rstd, w, no_bias = cache
    if not _f32(dout, xhat, rstd, w) or dout.shape != xhat.shape:
        return NotImplemented
    dout, xhat, rstd = _c(dout), _c(xhat), _c(rstd)
    c = xhat.shape[-1]
    dx, dw = np.empty(xhat.shape, _F32), np.empty(c, _F32)
    db = None if no_bias else np.empty(c, _F32)
    lib.layernorm_backward(_p(dx), _p(dw), _NULL if db is None else _p(db), _p(dout), _p(xhat),
                           _p(rstd), _p(_c(w)), xhat.size // c, c)
    return dx, dw, db


def gelu_forward(x):
    """x: (...) -> out: (...), cache x"""
    if not _f32(x) or x.size == 0:
        return NotImplemented
    x = _c(x)
    out = np.empty(x.shape, _F32)
    lib.gelu_forward(_p(out), _p(x), x.size)
    return out, x


def gelu_backward(dout, x):
    """dout: (...) -> dx: (...)"""
    if not _f32(dout, x) or dout.shape != x.shape or x.size == 0:
        return NotImplemented
    dout, x = _c(dout), _c(x)
    dx = np.empty(x.shape, _F32)
    lib.gelu_backward(_p(dx), _p(dout), _p(x), x.size)
    return dx


def adamw_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """param, grad, m, v: same shape, updated in place (all but grad); step counts from 1."""
    # in place: param, m and v must already be contiguous float32, a copy would lose the update
    if not _f32(param, grad, m, v) or not (param.flags.c_contiguous and m.flags.c_contiguous
                                           and v.flags.c_contiguous and param.flags.writeable) \
            or not param.shape == grad.shape == m.shape == v.shape:
        return NotImplemented
    lib.adamw_update(_p(param), _p(_c(grad)), _p(m), _p(v), param.size, float(lr), float(beta1),
                     float(beta2), float(eps), float(weight_decay), int(step))


def sum_of_squares(x):
    """x: any shape -> float: sum(x ** 2) accumulated in double"""
    if not _f32(x):
        return NotImplemented
    return float(lib.sum_of_squares(_p(_c(x)), x.size))


# ---- LSTM -----------------------------------------------------------------------------------

def lstm_forward(x, h0, c0, w_ih, w_hh, b):
    """x: (B, T, I), h0, c0: (B, D), w_ih: (I, 4D), w_hh: (D, 4D), b: (4D,)
    -> (out: (B, T, D), h_T: (B, D), c_T: (B, D)), cache (x, w_ih, w_hh, gates, hs, cs, tanh_c)"""
    if not _f32(x, h0, c0, w_ih, w_hh, b) or x.ndim != 3 or h0.ndim != 2 or 0 in x.shape \
            or 0 in h0.shape:
        return NotImplemented
    batch, steps, n_in = x.shape
    d = h0.shape[1]
    if h0.shape != (batch, d) or c0.shape != (batch, d) or w_ih.shape != (n_in, 4 * d) \
            or w_hh.shape != (d, 4 * d) or b.shape != (4 * d,):
        return NotImplemented  # the reference names the mismatch
    x, w_ih, w_hh, b = _c(x), _c(w_ih), _c(w_hh), _c(b)
    hs = np.empty((batch, steps + 1, d), _F32)  # hs[:, 0] = h0, hs[:, t+1] = h_t
    cs = np.empty((batch, steps + 1, d), _F32)
    hs[:, 0], cs[:, 0] = h0, c0
    gates = np.empty((batch, steps, 4 * d), _F32)  # activated i, f, g, o
    tanh_c = np.empty((batch, steps, d), _F32)
    lib.lstm_forward(_p(hs), _p(cs), _p(gates), _p(tanh_c), _p(x), _p(w_ih), _p(w_hh), _p(b),
                     batch, steps, n_in, d)
    return (hs[:, 1:], hs[:, -1], cs[:, -1]), (x, w_ih, w_hh, gates, hs, cs, tanh_c)


def lstm_backward(douts, cache):
    """douts: (dout (B, T, D) or None, dh_T (B, D) or None, dc_T (B, D) or None)
    -> dx, dh0, dc0, dw_ih, dw_hh, db"""
    x, w_ih, w_hh, gates, hs, cs, tanh_c = cache
    dout, dh_last, dc_last = douts
    if not _f32(x, w_ih, w_hh, gates, hs, cs, tanh_c) or any(
            g is not None and not _f32(g) for g in douts):
        return NotImplemented
    batch, steps, n_in = x.shape
    d = hs.shape[2]
    x, w_ih, w_hh, gates, hs, cs, tanh_c = (_c(a) for a in cache)
    # dh0 and dc0 start as dh_T and dc_T: C carries dh_next, dc_next back through time in them
    dh0 = np.zeros((batch, d), _F32) if dh_last is None else np.array(dh_last, _F32, order="C")
    dc0 = np.zeros((batch, d), _F32) if dc_last is None else np.array(dc_last, _F32, order="C")
    if dh0.shape != (batch, d) or dc0.shape != (batch, d) or (
            dout is not None and dout.shape != (batch, steps, d)):
        return NotImplemented
    dx = np.empty(x.shape, _F32)
    dw_ih, dw_hh, db = np.empty(w_ih.shape, _F32), np.empty(w_hh.shape, _F32), np.empty(4 * d, _F32)
    lib.lstm_backward(_p(dx), _p(dh0), _p(dc0), _p(dw_ih), _p(dw_hh), _p(db),
                      _NULL if dout is None else _p(_c(dout)), _p(x), _p(w_ih), _p(w_hh),
                      _p(gates), _p(hs), _p(cs), _p(tanh_c), batch, steps, n_in, d)
    return dx, dh0, dc0, dw_ih, dw_hh, db


# ---- GRU ------------------------------------------------------------------------------------

def gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh):
    """x: (B, T, I), h0: (B, D), w_ih: (I, 3D), w_hh: (D, 3D), b_ih, b_hh: (3D,)
    -> (out: (B, T, D), h_T: (B, D)), cache (x, w_ih, w_hh, gates, hs, hn)"""
    if not _f32(x, h0, w_ih, w_hh, b_ih, b_hh) or x.ndim != 3 or h0.ndim != 2 or 0 in x.shape \
            or 0 in h0.shape:
        return NotImplemented
    batch, steps, n_in = x.shape
    d = h0.shape[1]
    if h0.shape != (batch, d) or w_ih.shape != (n_in, 3 * d) or w_hh.shape != (d, 3 * d) \
            or b_ih.shape != (3 * d,) or b_hh.shape != (3 * d,):
        return NotImplemented  # the reference names the mismatch
    x, w_ih, w_hh, b_ih, b_hh = _c(x), _c(w_ih), _c(w_hh), _c(b_ih), _c(b_hh)
    hs = np.empty((batch, steps + 1, d), _F32)  # hs[:, 0] = h0, hs[:, t+1] = h_t
    hs[:, 0] = h0
    gates = np.empty((batch, steps, 3 * d), _F32)  # activated r, z, n
    hn = np.empty((batch, steps, d), _F32)
    lib.gru_forward(_p(hs), _p(gates), _p(hn), _p(x), _p(w_ih), _p(w_hh), _p(b_ih), _p(b_hh),
                    batch, steps, n_in, d)
    return (hs[:, 1:], hs[:, -1]), (x, w_ih, w_hh, gates, hs, hn)


def gru_backward(douts, cache):
    """douts: (dout (B, T, D) or None, dh_T (B, D) or None) -> dx, dh0, dw_ih, dw_hh, db_ih, db_hh"""
    x, w_ih, w_hh, gates, hs, hn = cache
    dout, dh_last = douts
    if not _f32(x, w_ih, w_hh, gates, hs, hn) or any(g is not None and not _f32(g) for g in douts):
        return NotImplemented
    batch, steps, n_in = x.shape
    d = hs.shape[2]
    x, w_ih, w_hh, gates, hs, hn = (_c(a) for a in cache)
    # dh0 starts as dh_T: C carries dh_next back through time in it
    dh0 = np.zeros((batch, d), _F32) if dh_last is None else np.array(dh_last, _F32, order="C")
    if dh0.shape != (batch, d) or (dout is not None and dout.shape != (batch, steps, d)):
        return NotImplemented
    dx = np.empty(x.shape, _F32)
    dw_ih, dw_hh = np.empty(w_ih.shape, _F32), np.empty(w_hh.shape, _F32)
    db_ih, db_hh = np.empty(3 * d, _F32), np.empty(3 * d, _F32)
    lib.gru_backward(_p(dx), _p(dh0), _p(dw_ih), _p(dw_hh), _p(db_ih), _p(db_hh),
                     _NULL if dout is None else _p(_c(dout)), _p(x), _p(w_ih), _p(w_hh),
                     _p(gates), _p(hs), _p(hn), batch, steps, n_in, d)
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


# ---- bpe (tokenizers/bpe_merge.py) ------------------------------------------------------------

_INTS = ffi.typeof("int[]")


def _bpe_tables(table):
    """table (a MergeTable) -> the int32 arrays and hash table the C loop reads, made once."""
    if table.c_cache is None:
        n = len(table.merges)
        left = np.array([p[0] for p in table.merges], np.int32)
        right = np.array([p[1] for p in table.merges], np.int32)
        size = 1 << max(1, (2 * n).bit_length())  # a power of two, at most half full
        keys, ranks = np.empty(size, np.int64), np.empty(size, np.int32)
        lib.bpe_table_build(ffi.from_buffer("long long[]", keys), ffi.from_buffer(_INTS, ranks), size,
                            ffi.from_buffer(_INTS, left), ffi.from_buffer(_INTS, right), n)
        table.c_cache = (np.array(table.byte_ids, np.int32), keys, ranks, size, left, right,
                         np.array(table.merged_id, np.int32))
    return table.c_cache


def bpe_merge_chunks(chunks, table):
    """chunks: list of bytes, table: MergeTable -> list of list[int], the ids of each chunk"""
    if not chunks:
        return []
    byte_ids, keys, ranks, size, left, right, merged = _bpe_tables(table)
    data = b"".join(chunks)
    offsets = np.zeros(len(chunks) + 1, np.int64)
    np.cumsum([len(c) for c in chunks], out=offsets[1:])
    out = np.empty(max(len(data), 1), np.int32)
    out_offsets = np.empty(len(chunks) + 1, np.int64)
    lib.bpe_merge_chunks(ffi.from_buffer(_INTS, out), ffi.from_buffer("long[]", out_offsets),
                         ffi.from_buffer("unsigned char[]", data),
                         ffi.from_buffer("long[]", offsets), len(chunks), ffi.from_buffer(_INTS, byte_ids),
                         ffi.from_buffer("long long[]", keys), ffi.from_buffer(_INTS, ranks), size,
                         ffi.from_buffer(_INTS, left), ffi.from_buffer(_INTS, right),
                         ffi.from_buffer(_INTS, merged))
    ids, ends = out.tolist(), out_offsets.tolist()
    return [ids[ends[c]:ends[c + 1]] for c in range(len(chunks))]
