"""Every faster kernel against its NumPy reference, generically: each kernel name in the registry
(tinygpt.backend) times each backend besides numpy ("numba", "c"), found by getattr on that
backend's kernel module. A backend that is not available is skipped with its reason.

For a forward: outputs and cache equal the reference's, and the reference backward gives the same
gradients from the kernel's cache as from its own. For a backward: the same gradients as the
reference from the reference's cache and from the kernel's own forward. Inputs come from hypothesis
(odd sizes that break tiles, 1, non-contiguous and transposed views, logits of ±1e4); float64 input
may be declined (NotImplemented) but never answered wrongly. Then the same through autograd, the
O(T) memory of fused attention, and Numba's on-disk cache. Not here: finite differences (test_ops_*).
"""

import math
import os
import subprocess
import sys
import tracemalloc
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygpt.functional as F
import tinygpt.ops  # noqa: F401  (importing registers every kernel)
from tinygpt import Tensor, backend

FAST_BACKENDS = [b for b in backend.BACKENDS if b != "numpy"]
# kernels on other than float arrays, with parity tests of their own
OWN_TESTS = {"bpe_merge_chunks": "tests/test_bpe_merge.py"}
KERNEL_NAMES = sorted(n for n in backend._references if n not in OWN_TESTS)


def _may_have(backend_name, name):
    """False only when the backend loads and has no such kernel (Numba has no matmul): no case to
    run. An unavailable backend stays in, and its cases skip saying why (kernel_or_skip)."""
    module = backend._module(backend_name)
    return isinstance(module, str) or hasattr(module, name)


# (backend, kernel) pairs, backend first: "c-log_softmax_backward"
KERNEL_CASES = [(b, name) for b in FAST_BACKENDS for name in KERNEL_NAMES if _may_have(b, name)]
RTOL, ATOL = 1e-4, 1e-5  # float32; ATOL is scaled by the largest |value| expected (see assert_close)


def kernel_or_skip(backend_name, name):
    """The `backend_name` implementation of kernel `name`, or skip the test saying why there is none."""
    module = backend._module(backend_name)
    if isinstance(module, str):
        pytest.skip(f"backend {backend_name!r} is not available: {module}")
    fn = getattr(module, name, None)
    if fn is None:
        pytest.skip(f"backend {backend_name!r} has no {name} (the reference runs in its place)")
    return fn


# ----- comparing results ---------------------------------------------------------------------

def assert_close(got, want, what, rtol=RTOL, atol=ATOL):
    """Compare nested tuples of arrays, scalars and None; the message names `what`, the max
    difference and the first differing values. ATOL is multiplied by max(1, max |want|): float32
    sums err relative to the size of their terms, not of a small result."""
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), \
            f"{what}: expected {len(want)} results, got {type(got).__name__} {got!r:.200}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{what}[{i}]", rtol, atol)
        return
    if want is None or isinstance(want, (str, bool)):
        assert got == want, f"{what}: expected {want!r}, got {got!r:.200}"
        return
    want = np.asarray(want)
    assert isinstance(got, (np.ndarray, np.generic, int, float)), \
        f"{what}: expected an array, got {type(got).__name__}"
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, expected {want.dtype}"
    if want.dtype.kind in "biu":
        bad = got != want
    else:
        finite = np.abs(want[np.isfinite(want)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        with np.errstate(invalid="ignore"):
            bad = ~(np.isclose(got, want, rtol=rtol, atol=atol * scale) | (np.isnan(got) & np.isnan(want)))
    if bad.any():
        index = np.argwhere(bad)
        with np.errstate(invalid="ignore"):
            diff = np.nanmax(np.abs(got.astype(np.float64) - want)) if want.dtype.kind == "f" else "-"
        first = [tuple(int(i) for i in ix) for ix in index[:3]]
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} values differ, max |difference| {diff}; first at "
            f"{first}: got {[got[ix].item() for ix in first]}, expected {[want[ix].item() for ix in first]}")


# ----- inputs: one family per forward/backward pair ------------------------------------------

def lay_out(x, layout):
    """x with the same values in another memory layout: C order, transposed (x.T of a C array),
    every other element of a wider array, or heads-last (B, T, nh, hs) viewed as (B, nh, T, hs)."""
    if x.ndim == 0:
        return x.copy()
    if layout == "transposed":
        return np.ascontiguousarray(x.T).T
    if layout == "strided":
        wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    if layout == "heads_last" and x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(x)


LAYOUTS = st.sampled_from(["contiguous", "transposed", "strided"])
ODD = st.sampled_from([1, 2, 3, 5, 7, 17, 33, 65, 67])  # 1, and sizes that break tiles of 4..64


@dataclass
class Case:
    args: tuple
    kwargs: dict
    may_decline: bool = False  # outside what the kernel promises to take (NotImplemented is fine)


def _normal(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def attention_case(p, rng, dtype):
    b, nh, tq, tk, hs = p["B"], p["nh"], p["Tq"], p["Tk"], p["hs"]
    q = lay_out(_normal(rng, (b, nh, tq, hs), dtype), p["layout"])
    k, v = (lay_out(_normal(rng, (b, nh, tk, hs), dtype), p["layout"]) for _ in range(2))
    kwargs = {"causal": p["causal"], "scale": p["scale"]}
    mask = p.get("key_mask", "none")
    if mask == "left":  # left padding: each row's first keys are pads (some rows see no key at all)
        kwargs["key_mask"] = np.arange(tk)[None, :] >= rng.integers(0, tk + 1, size=(b, 1))
    elif mask == "random":
        kwargs["key_mask"] = rng.random((b, tk)) < 0.7
    if p.get("dropout", 0.0):
        kwargs.update(dropout_p=p["dropout"], seed=int(rng.integers(0, 2 ** 64, dtype=np.uint64)))
    return Case((q, k, v), kwargs, may_decline=p["causal"] and tq > tk)


def softmax_case(p, rng, dtype):
    x = lay_out(_normal(rng, p["shape"], dtype, p["logit_scale"]), p["layout"])
    axis = p["axis"] if p["axis"] < len(p["shape"]) else -1
    return Case((x,), {"axis": axis}, may_decline=axis not in (-1, x.ndim - 1))


def cross_entropy_case(p, rng, dtype):
    n, v = p["N"], p["V"]
    logits = lay_out(_normal(rng, (n, v), dtype, p["logit_scale"]), p["layout"])
    if p["soft"]:
        targets = rng.dirichlet(np.ones(v), size=n).astype(dtype)
    else:
        targets = rng.integers(0, v, size=n).astype(p["int_dtype"])
        targets[rng.random(n) < p["ignored"]] = -100
    # every target ignored gives a mean of 0/0 = nan: a kernel may leave saying so to the reference
    nothing_counted = not p["soft"] and p["reduction"] == "mean" and bool((targets == -100).all())
    return Case((logits, targets), {"ignore_index": -100, "reduction": p["reduction"]},
                may_decline=p["soft"] or nothing_counted)


def layernorm_case(p, rng, dtype):
    c = p["shape"][-1]
    x = lay_out(_normal(rng, p["shape"], dtype, 3.0) + 1.0, p["layout"])
    w = _normal(rng, (c,), dtype)
    bias = _normal(rng, (c,), dtype) if p["bias"] else None
    return Case((x, w, bias), {"eps": 1e-5})


def gelu_case(p, rng, dtype):
    return Case((lay_out(_normal(rng, p["shape"], dtype, 3.0), p["layout"]),), {})


def lstm_case(p, rng, dtype):
    b, t, i, d = p["B"], p["T"], p["I"], p["D"]
    x = lay_out(_normal(rng, (b, t, i), dtype), p["layout"])
    h0, c0 = _normal(rng, (b, d), dtype, 0.5), _normal(rng, (b, d), dtype, 0.5)
    w_ih, w_hh = _normal(rng, (i, 4 * d), dtype, 0.5), _normal(rng, (d, 4 * d), dtype, 0.5)
    return Case((x, h0, c0, lay_out(w_ih, p["layout"]), w_hh, _normal(rng, (4 * d,), dtype, 0.1)), {})


def gru_case(p, rng, dtype):
    b, t, i, d = p["B"], p["T"], p["I"], p["D"]
    x = lay_out(_normal(rng, (b, t, i), dtype), p["layout"])
    h0 = _normal(rng, (b, d), dtype, 0.5)
    w_ih, w_hh = _normal(rng, (i, 3 * d), dtype, 0.5), _normal(rng, (d, 3 * d), dtype, 0.5)
    b_ih, b_hh = _normal(rng, (3 * d,), dtype, 0.1), _normal(rng, (3 * d,), dtype, 0.1)
    return Case((x, h0, lay_out(w_ih, p["layout"]), w_hh, b_ih, b_hh), {})


def embedding_case(p, rng, dtype):
    # few rows for many uses, so most rows are used several times and their gradients must add
    idx = rng.integers(0, p["V"], size=p["shape"]).astype(p["int_dtype"])
    return Case((_normal(rng, (p["V"], p["C"]), dtype), idx), {})


def matmul_case(p, rng, dtype):
    m, k, n = p["M"], p["K"], p["N"]
    lead = (p["batch"],) if p["batch"] else ()
    a = lay_out(_normal(rng, lead + (m, k), dtype), p["layout"])
    b = lay_out(_normal(rng, (lead if p["same_batch"] else ()) + (k, n), dtype), p["layout"])
    # 2-D and equal batches are the kernel's job; broadcasting a batch axis it may leave to NumPy,
    # and so a single row times a matrix (a matrix-vector product: BLAS's gemv beats packing)
    single_row = b.ndim == 2 and a.size == k
    return Case((a, b), {}, may_decline=bool(p["batch"]) and not p["same_batch"] or single_row)


@dataclass
class Family:
    forward: str
    backward: str
    make: object  # (params, rng, dtype) -> Case
    params: object  # hypothesis strategy of params
    edges: list  # params of the edge cases every run checks: T=1, one head, batch 1...
    error_scale: object = None  # reference cache -> factor on ATOL, where float32 rounding is amplified


def _fixed(**kw):
    return st.fixed_dictionaries({k: (v if isinstance(v, st.SearchStrategy) else st.just(v))
                                  for k, v in kw.items()})


SMALL_SHAPES = st.lists(ODD, min_size=1, max_size=3).map(tuple).filter(lambda s: math.prod(s) <= 3000)

FAMILIES = [
    Family("attention_forward", "attention_backward", attention_case,
           _fixed(B=st.integers(1, 2), nh=st.integers(1, 3), Tq=ODD, Tk=ODD, hs=st.sampled_from([1, 3, 8, 17]),
                  causal=st.booleans(), scale=st.sampled_from([None, 0.3]),
                  layout=st.sampled_from(["contiguous", "heads_last", "strided", "transposed"]),
                  key_mask=st.sampled_from(["none", "none", "left", "random"]),
                  dropout=st.sampled_from([0.0, 0.0, 0.25]))
           .map(lambda p: {**p, "Tq": min(p["Tq"], p["Tk"])} if p["causal"] else p),
           [dict(B=1, nh=1, Tq=1, Tk=1, hs=1, causal=True, scale=None, layout="contiguous"),
            dict(B=1, nh=1, Tq=1, Tk=67, hs=8, causal=True, scale=None, layout="heads_last"),
            dict(B=2, nh=3, Tq=65, Tk=65, hs=5, causal=True, scale=None, layout="heads_last"),
            dict(B=1, nh=2, Tq=7, Tk=130, hs=3, causal=False, scale=0.5, layout="contiguous"),
            # one decoding row with a KV cache (C: the serial path, no OpenMP team), and enough
            # work for C's threaded path (B * nh * Tq * Tk * hs >= 16 * TG_PARALLEL_MIN)
            dict(B=1, nh=6, Tq=1, Tk=120, hs=64, causal=True, scale=None, layout="contiguous"),
            dict(B=2, nh=3, Tq=130, Tk=130, hs=17, causal=True, scale=None, layout="contiguous"),
            # left padding and dropout, on the serial path and on C's threaded one
            dict(B=2, nh=3, Tq=65, Tk=65, hs=5, causal=True, scale=None, layout="contiguous",
                 key_mask="left", dropout=0.25),
            dict(B=2, nh=3, Tq=130, Tk=130, hs=17, causal=True, scale=None, layout="heads_last",
                 key_mask="random", dropout=0.1),
            dict(B=2, nh=2, Tq=1, Tk=67, hs=8, causal=True, scale=None, layout="contiguous",
                 key_mask="left", dropout=0.0)]),
    Family("softmax_forward", "softmax_backward", softmax_case,
           _fixed(shape=SMALL_SHAPES, axis=st.sampled_from([-1, -1, 0, 1]),
                  logit_scale=st.sampled_from([1.0, 30.0, 1e4]), layout=LAYOUTS),
           [dict(shape=(1,), axis=-1, logit_scale=1.0, layout="contiguous"),
            dict(shape=(3, 67), axis=-1, logit_scale=1e4, layout="transposed")]),
    Family("log_softmax_forward", "log_softmax_backward", softmax_case,
           _fixed(shape=SMALL_SHAPES, axis=st.sampled_from([-1, -1, 0, 1]),
                  logit_scale=st.sampled_from([1.0, 30.0, 1e4]), layout=LAYOUTS),
           [dict(shape=(1,), axis=-1, logit_scale=1.0, layout="contiguous"),
            dict(shape=(3, 67), axis=-1, logit_scale=1e4, layout="strided")]),
    Family("cross_entropy_forward", "cross_entropy_backward", cross_entropy_case,
           _fixed(N=ODD, V=ODD, logit_scale=st.sampled_from([1.0, 30.0, 1e4]), layout=LAYOUTS,
                  soft=st.sampled_from([False, False, False, True]), ignored=st.sampled_from([0.0, 0.3]),
                  reduction=st.sampled_from(["mean", "sum", "none"]),
                  int_dtype=st.sampled_from([np.int64, np.int32])),
           [dict(N=1, V=1, logit_scale=1.0, layout="contiguous", soft=False, ignored=0.0,
                 reduction="mean", int_dtype=np.int64),
            dict(N=3, V=5, logit_scale=1.0, layout="contiguous", soft=False, ignored=1.0,
                 reduction="mean", int_dtype=np.int64),  # every target ignored: nan, as in PyTorch
            dict(N=5, V=67, logit_scale=1e4, layout="transposed", soft=False, ignored=0.3,
                 reduction="none", int_dtype=np.int64)]),
    Family("layernorm_forward", "layernorm_backward", layernorm_case,
           _fixed(shape=SMALL_SHAPES, bias=st.booleans(), layout=LAYOUTS),
           [dict(shape=(1,), bias=True, layout="contiguous"),
            dict(shape=(2, 3, 65), bias=False, layout="transposed"),
            dict(shape=(520, 65), bias=True, layout="contiguous")],  # C's threaded path: >= 32768 floats
           # dx = rstd * (dxhat - mean(dxhat) - ...): one rounding of dxhat is multiplied by rstd,
           # up to 1/sqrt(eps) = 316 for a constant row (C=1)
           error_scale=lambda cache: float(np.max(cache[1], initial=1.0))),
    Family("gelu_forward", "gelu_backward", gelu_case,
           _fixed(shape=SMALL_SHAPES, layout=LAYOUTS),
           [dict(shape=(1,), layout="contiguous"), dict(shape=(5, 67), layout="transposed"),
            dict(shape=(2, 65537), layout="contiguous")]),  # C's threaded path: >= 4 * 32768 elements
    Family("gelu_erf_forward", "gelu_erf_backward", gelu_case,
           _fixed(shape=SMALL_SHAPES, layout=LAYOUTS),
           [dict(shape=(1,), layout="contiguous"), dict(shape=(5, 67), layout="transposed")]),
    Family("lstm_forward", "lstm_backward", lstm_case,
           _fixed(B=st.integers(1, 5), T=st.sampled_from([1, 2, 5, 11]), I=st.integers(1, 7),
                  D=st.sampled_from([1, 3, 8, 17]), layout=LAYOUTS,
                  grads=st.sampled_from([(1, 0, 0), (1, 1, 1), (0, 1, 0), (0, 0, 1)])),
           [dict(B=1, T=1, I=1, D=1, layout="contiguous", grads=(1, 1, 1)),
            dict(B=3, T=11, I=5, D=17, layout="transposed", grads=(1, 0, 1))]),
    Family("gru_forward", "gru_backward", gru_case,
           _fixed(B=st.integers(1, 5), T=st.sampled_from([1, 2, 5, 11]), I=st.integers(1, 7),
                  D=st.sampled_from([1, 3, 8, 17]), layout=LAYOUTS,
                  grads=st.sampled_from([(1, 0), (1, 1), (0, 1)])),
           [dict(B=1, T=1, I=1, D=1, layout="contiguous", grads=(1, 1)),
            dict(B=3, T=11, I=5, D=17, layout="transposed", grads=(1, 0)),
            # C's threaded path: batch * 3D * D >= 16 * 1024
            dict(B=8, T=5, I=3, D=33, layout="contiguous", grads=(1, 1))]),
    Family("embedding_forward", "embedding_backward", embedding_case,
           _fixed(V=st.sampled_from([1, 3, 67]), C=ODD, shape=SMALL_SHAPES, layout=LAYOUTS,
                  int_dtype=st.sampled_from([np.int64, np.int32])),
           [dict(V=1, C=1, shape=(1,), layout="contiguous", int_dtype=np.int64),
            dict(V=3, C=65, shape=(2, 33), layout="transposed", int_dtype=np.int32)]),
    Family("matmul_forward", "matmul_backward", matmul_case,
           _fixed(M=ODD, K=ODD, N=ODD, batch=st.sampled_from([0, 0, 2]), same_batch=st.booleans(),
                  layout=LAYOUTS),
           [dict(M=1, K=1, N=1, batch=0, same_batch=False, layout="contiguous"),
            dict(M=65, K=33, N=67, batch=0, same_batch=False, layout="transposed"),
            # a decoding step of batch 8 (C: sgemm_skinny), past one 64-column block and its tail
            dict(M=8, K=70, N=131, batch=0, same_batch=False, layout="contiguous"),
            dict(M=5, K=70, N=131, batch=0, same_batch=False, layout="transposed")]),
]
FAMILY_OF = {name: fam for fam in FAMILIES for name in (fam.forward, fam.backward)}


def douts_for(out, family, params, rng):
    """The upstream gradient(s) for `out`, laid out like the inputs (LSTM: None where not drawn)."""
    if family.forward in ("lstm_forward", "gru_forward"):
        return tuple(lay_out(_normal(rng, o.shape, o.dtype), params["layout"]) if g else None
                     for o, g in zip(out, params["grads"]))
    return lay_out(_normal(rng, np.shape(out), out.dtype), params.get("layout", "contiguous"))


def _copies(tree):
    if isinstance(tree, tuple):
        return tuple(_copies(t) for t in tree)
    return tree.copy() if isinstance(tree, np.ndarray) else tree


def check_pair(backend_name, name, params, seed, dtype=np.float32):
    """Run kernel `name` of `backend_name` and the reference on one case and compare everything."""
    impl = kernel_or_skip(backend_name, name)
    family = FAMILY_OF[name]
    ref_fwd, ref_bwd = backend._references[family.forward], backend._references[family.backward]
    rng = np.random.default_rng(seed)
    case = family.make(params, rng, dtype)
    what = f"{backend_name} {name} on {params} ({np.dtype(dtype).name})"
    declinable = case.may_decline or dtype != np.float32
    inputs_before = _copies(case.args)
    ref_out, ref_cache = ref_fwd(*case.args, **case.kwargs)
    atol = ATOL * (family.error_scale(ref_cache) if family.error_scale else 1.0)
    dout = douts_for(ref_out, family, params, rng)
    dout_before = _copies(dout)
    want_grads = ref_bwd(dout, ref_cache)

    def kernel_result(result, label):
        if result is NotImplemented:
            assert declinable, f"{what}: {label} returned NotImplemented for input it should take"
            return None
        return result

    if name == family.forward:
        got = kernel_result(impl(*case.args, **case.kwargs), "forward")
        assert_close(_copies(case.args), inputs_before, f"{what}: inputs after the call")
        if got is not None:
            out, cache = got
            assert_close(out, ref_out, f"{what}: forward output", atol=atol)
            assert_close(cache, ref_cache, f"{what}: cache", atol=atol)
            # mixing: the kernel's cache feeds the reference backward
            assert_close(ref_bwd(dout, cache), want_grads, f"{what}: reference backward from the kernel's cache",
                         atol=atol)
    else:
        got = kernel_result(impl(dout, ref_cache), "backward")
        if got is not None:
            assert_close(got, want_grads, f"{what}: backward from the reference's cache", atol=atol)
        own_forward = getattr(backend._module(backend_name), family.forward, None)
        if own_forward is not None:  # the whole kernel path: its forward's cache into its backward
            fwd = own_forward(*case.args, **case.kwargs)
            if fwd is not NotImplemented:
                got = kernel_result(impl(dout, fwd[1]), "backward from its own forward")
                if got is not None:
                    assert_close(got, want_grads, f"{what}: backward from its own forward's cache", atol=atol)
        assert_close(_copies(dout), dout_before, f"{what}: dout after backward (must not change)")


def check_adamw(backend_name, params, seed, dtype=np.float32):
    impl = kernel_or_skip(backend_name, "adamw_update")
    rng = np.random.default_rng(seed)
    shape = params["shape"]
    ours = [_normal(rng, shape, dtype), np.zeros(shape, dtype), np.zeros(shape, dtype)]  # param, m, v
    theirs = [a.copy() for a in ours]
    what = f"{backend_name} adamw_update on {params} ({np.dtype(dtype).name})"
    for step in (1, 2, 3):
        grad = lay_out(_normal(rng, shape, dtype), params["layout"])
        hyper = (params["lr"], 0.9, 0.999, 1e-8, params["weight_decay"], step)
        backend._references["adamw_update"](theirs[0], grad, theirs[1], theirs[2], *hyper)
        result = impl(ours[0], grad, ours[1], ours[2], *hyper)
        if result is NotImplemented:
            assert dtype != np.float32, f"{what}: returned NotImplemented for float32 input"
            backend._references["adamw_update"](ours[0], grad, ours[1], ours[2], *hyper)
        assert result is None or result is NotImplemented, f"{what}: returned {result!r}, expected None"
        assert_close(tuple(ours), tuple(theirs), f"{what}: (param, m, v) after step {step}")


ADAMW_PARAMS = _fixed(shape=SMALL_SHAPES, layout=LAYOUTS, lr=st.sampled_from([1e-3, 0.1]),
                      weight_decay=st.sampled_from([0.0, 0.1]))
ADAMW_EDGES = [dict(shape=(1,), layout="contiguous", lr=1e-3, weight_decay=0.0),
               dict(shape=(7, 65), layout="transposed", lr=0.1, weight_decay=0.1)]


def check_sum_of_squares(backend_name, params, seed, dtype=np.float32):
    impl = kernel_or_skip(backend_name, "sum_of_squares")
    x = lay_out(_normal(np.random.default_rng(seed), params["shape"], dtype) * params["scale"], params["layout"])
    what = f"{backend_name} sum_of_squares on {params} ({np.dtype(dtype).name})"
    got = impl(x)
    if got is NotImplemented:
        assert dtype != np.float32, f"{what}: returned NotImplemented for float32 input"
        return
    want = backend._references["sum_of_squares"](x)
    assert isinstance(got, float), f"{what}: returned {type(got).__name__}, expected float"
    assert got == pytest.approx(want, rel=1e-12, abs=1e-300), f"{what}: {got!r} != {want!r}"


# more elements than the C kernel's threading threshold (and 64 blocks), an odd count
SUM_OF_SQUARES_PARAMS = _fixed(shape=SMALL_SHAPES, layout=LAYOUTS, scale=st.sampled_from([1.0, 1e3]))
SUM_OF_SQUARES_EDGES = [dict(shape=(1,), layout="contiguous", scale=1.0),
                        dict(shape=(3, 65), layout="transposed", scale=1e-3),
                        dict(shape=(3, 131_075), layout="contiguous", scale=1e3)]
OWN_CHECKS = {"adamw_update": (check_adamw, ADAMW_PARAMS, ADAMW_EDGES),
              "sum_of_squares": (check_sum_of_squares, SUM_OF_SQUARES_PARAMS, SUM_OF_SQUARES_EDGES)}


# ----- the parity tests ----------------------------------------------------------------------

def test_every_registered_kernel_has_a_parity_case():
    missing = [n for n in KERNEL_NAMES if n not in FAMILY_OF and n not in OWN_CHECKS]
    assert not missing, f"kernels without a case in tests/test_kernel_parity.py: {missing}"


@pytest.mark.parametrize("backend_name, name", KERNEL_CASES)
@settings(max_examples=15)
@given(data=st.data())
def test_kernel_matches_reference(backend_name, name, data):
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    if name in OWN_CHECKS:
        check, params, _ = OWN_CHECKS[name]
        check(backend_name, data.draw(params, label="params"), seed)
    else:
        check_pair(backend_name, name, data.draw(FAMILY_OF[name].params, label="params"), seed)


@pytest.mark.parametrize("backend_name, name", KERNEL_CASES)
def test_kernel_matches_reference_on_edge_cases(backend_name, name):
    """T=1, one head, batch 1, sizes one past a tile, every target ignored: always run."""
    if name in OWN_CHECKS:
        check, _, edges = OWN_CHECKS[name]
        for params in edges:
            check(backend_name, params, seed=0)
    else:
        for params in FAMILY_OF[name].edges:
            check_pair(backend_name, name, params, seed=0)


@pytest.mark.parametrize("backend_name, name", KERNEL_CASES)
def test_kernel_declines_or_matches_float64(backend_name, name):
    if name in OWN_CHECKS:
        check, _, edges = OWN_CHECKS[name]
        check(backend_name, edges[1], seed=1, dtype=np.float64)
    else:
        for params in FAMILY_OF[name].edges:
            check_pair(backend_name, name, params, seed=1, dtype=np.float64)


# ----- the same through autograd -------------------------------------------------------------

def _grads(loss_fn, arrays):
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    loss_fn(*tensors).backward()
    return tuple(t.grad for t in tensors)


def _weighted(out, rng):
    """(out * w).sum() with fixed random w: a plain sum would hide a wrong backward."""
    return (out * _normal(rng, out.shape, np.float32)).sum()


def _autograd_cases():
    rng = np.random.default_rng(0)
    r = lambda *s: _normal(rng, s, np.float32)  # noqa: E731
    w = np.random.default_rng(1)
    qkv = [lay_out(r(2, 3, 9, 5), "heads_last") for _ in range(3)]
    targets = rng.integers(0, 11, size=(2, 7))
    targets[0, :3] = -100
    return {
        "scaled_dot_product_attention": (
            lambda q, k, v: _weighted(F.scaled_dot_product_attention(q, k, v, is_causal=True), w), qkv),
        "layer_norm": (lambda x, g, b: _weighted(F.layer_norm(x, 13, g, b), w), [r(2, 7, 13), r(13), r(13)]),
        "cross_entropy": (lambda x: F.cross_entropy(x, targets) * 3.0, [r(2, 7, 11) * 4]),
        "lstm": (lambda x, h, c, wi, wh, b: sum(_weighted(o, w) for o in F.lstm(x, h, c, wi, wh, b)),
                 [r(3, 6, 4), r(3, 5), r(3, 5), r(4, 20) * 0.5, r(5, 20) * 0.5, r(20) * 0.1]),
        "gru": (lambda x, h, wi, wh, bi, bh: sum(_weighted(o, w) for o in F.gru(x, h, wi, wh, bi, bh)),
                [r(3, 6, 4), r(3, 5), r(4, 15) * 0.5, r(5, 15) * 0.5, r(15) * 0.1, r(15) * 0.1]),
        "gelu": (lambda x: _weighted(F.gelu(x), w), [r(4, 33) * 3]),
        "gelu_tanh": (lambda x: _weighted(F.gelu(x, approximate="tanh"), w), [r(4, 33) * 3]),
        "softmax": (lambda x: _weighted(F.softmax(x), w), [r(4, 33) * 3]),
    }


@pytest.mark.parametrize("backend_name", FAST_BACKENDS)
@pytest.mark.parametrize("function", sorted(_autograd_cases()))
def test_autograd_gradients_match_numpy_backend(backend_name, function):
    if isinstance(backend._module(backend_name), str):
        pytest.skip(f"backend {backend_name!r} is not available: {backend._module(backend_name)}")
    loss_fn, arrays = _autograd_cases()[function]
    with backend.use("numpy"):
        want = _grads(loss_fn, arrays)
    loss_fn, arrays = _autograd_cases()[function]  # fresh weights drawn from the same seeds
    with backend.use(backend_name):
        got = _grads(loss_fn, arrays)
    assert_close(got, want, f"F.{function} gradients under backend {backend_name!r} vs 'numpy'")


# ----- memory: fused attention keeps O(T), never a (T, T) matrix -----------------------------

def _peak_extra_bytes(fn):
    """Peak memory fn() allocates beyond what exists before: the larger of tracemalloc's peak (NumPy
    and Numba arrays) and, on Linux, the growth of the resident high-water mark (C's malloc too)."""
    hwm = None
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident size
        hwm = _proc_status("VmRSS")
    except OSError:
        pass
    tracemalloc.start()
    try:
        fn()
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return max(traced, 0 if hwm is None else _proc_status("VmHWM") - hwm)


def _proc_status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{key} not in /proc/self/status")


def _attention_fwd_bwd(fwd, bwd, q, k, v):
    out, cache = fwd(q, k, v, causal=True)
    assert out is not NotImplemented
    bwd(out, cache)


@pytest.mark.parametrize("backend_name", FAST_BACKENDS)
def test_fused_attention_memory_is_linear_in_T(backend_name):
    fwd = kernel_or_skip(backend_name, "attention_forward")
    bwd = kernel_or_skip(backend_name, "attention_backward")
    t, hs = 4096, 8  # one (T, T) float32 matrix is 64 MiB; q, k, v, out, dq, dk, dv are 128 KiB each
    rng = np.random.default_rng(0)
    q, k, v = (_normal(rng, (1, 1, t, hs), np.float32) for _ in range(3))
    _attention_fwd_bwd(fwd, bwd, q[:, :, :64], k[:, :, :64], v[:, :, :64])  # compile outside the measurement
    peak = _peak_extra_bytes(lambda: _attention_fwd_bwd(fwd, bwd, q, k, v))
    one_matrix = t * t * 4
    assert peak < one_matrix / 8, (f"{backend_name} attention fwd+bwd at T={t} allocated up to "
                                   f"{peak / 2**20:.1f} MiB; one (T, T) float32 matrix is "
                                   f"{one_matrix / 2**20:.0f} MiB")


def test_memory_measurement_sees_a_TxT_matrix():
    """The check above is only worth something if it would see the reference's (T, T) scores."""
    t = 1024
    rng = np.random.default_rng(0)
    q, k, v = (_normal(rng, (1, 1, t, 8), np.float32) for _ in range(3))
    peak = _peak_extra_bytes(lambda: _attention_fwd_bwd(backend._references["attention_forward"],
                                                        backend._references["attention_backward"], q, k, v))
    assert peak > t * t * 4, f"the reference's (T, T) scores went unseen: peak {peak / 2**20:.1f} MiB"


# ----- Numba's on-disk cache: a second process loads, never recompiles -----------------------

_COUNT_MISSES = """
import numba
from tinygpt.kernels import numba_kernels, numba_attention, numba_softmax, numba_layernorm
from tinygpt.kernels import numba_elementwise, numba_adamw, numba_lstm, numba_gru, numba_math, numba_embedding
numba_kernels.warmup()
modules = (numba_attention, numba_softmax, numba_layernorm, numba_elementwise, numba_adamw, numba_lstm,
           numba_gru, numba_math, numba_embedding)
misses = sorted(f"{m.__name__}.{name}" for m in modules for name, fn in vars(m).items()
                if isinstance(fn, numba.core.registry.CPUDispatcher) and sum(fn.stats.cache_misses.values()))
print(",".join(misses))
"""


def test_numba_kernels_load_from_cache_in_a_new_process():
    if isinstance(backend._module("numba"), str):
        pytest.skip(f"backend 'numba' is not available: {backend._module('numba')}")
    backend._module("numba").warmup()  # compiles (and caches) whatever this process has not yet
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", _COUNT_MISSES], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    recompiled = result.stdout.strip()
    assert not recompiled, (f"a new process recompiled {recompiled} instead of loading Numba's cache "
                            f"(is NUMBA_CACHE_DIR writable? did a numba_*.py change in between?)")


def test_c_matmul_gradient_of_a_transposed_weight_keeps_its_layout():
    """GPT's tied head multiplies by wte.T, an F-ordered view: its gradient must come back in that
    layout (its transpose C-ordered), so that adding it into wte's gradient walks memory in order."""
    fwd = kernel_or_skip("c", "matmul_forward")
    bwd = kernel_or_skip("c", "matmul_backward")
    rng = np.random.default_rng(0)
    x = _normal(rng, (10, 8), np.float32)  # (B*T, C): linear folds the batch axes first
    wte = _normal(rng, (11, 8), np.float32)  # (V, C)
    out, cache = fwd(x, wte.T)
    dout = _normal(rng, out.shape, np.float32)  # (B*T, V)
    dx, dw = bwd(dout, cache)
    assert dw.shape == (8, 11) and dw.T.flags.c_contiguous
    want_dx, want_dw = backend._references["matmul_backward"](dout, cache)
    assert_close(dw, want_dw, "dw")
    assert_close(dx, want_dx, "dx")
