"""The C fused attention at the head sizes and lengths GPT training runs (hs = 32, 64; T up to
256, several 64-key tiles, the causal diagonal cut into 6-row strips) against the NumPy
reference, forward and backward, with and without key_mask and dropout, on one and on every
thread. tests/test_kernel_parity.py covers odd small shapes; this covers the fast paths' sizes.
Not here: finite differences (the reference's backward is checked in tests/test_ops_*)."""

import numpy as np
import pytest

from tinygpt import backend
from tinygpt.ops import attention as A

c_kernels = backend._module("c")
if isinstance(c_kernels, str):  # the reason the C kernels are not built
    pytest.skip(c_kernels, allow_module_level=True)

# (B, nh, Tq, Tk, hs): the training shapes, a length that is not a multiple of 16 or 64, and a
# KV cache (Tq < Tk) whose queries sit at the end
SHAPES = [(2, 2, 64, 64, 32), (1, 2, 128, 128, 32), (1, 2, 256, 256, 64), (2, 1, 100, 100, 64),
          (1, 2, 37, 150, 32)]


def _inputs(shape, seed):
    b, nh, tq, tk, hs = shape
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((b, nh, tq, hs)).astype(np.float32)
    k, v = (rng.standard_normal((b, nh, tk, hs)).astype(np.float32) for _ in range(2))
    dout = rng.standard_normal((b, nh, tq, hs)).astype(np.float32)
    return rng, q, k, v, dout


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("options", ["plain", "key_mask", "dropout", "not causal"])
def test_c_attention_matches_reference(shape, options):
    rng, q, k, v, dout = _inputs(shape, sum(shape))
    kwargs = {"causal": options != "not causal"}
    if options == "key_mask":
        mask = rng.random((shape[0], shape[3])) < 0.8
        mask[:, -1] = True  # every query sees at least one key
        kwargs["key_mask"] = mask
    if options == "dropout":
        kwargs.update(dropout_p=0.2, seed=12345)
    out, cache = c_kernels.attention_forward(q, k, v, **kwargs)
    ref_out, ref_cache = A.attention_forward.reference(q.astype(np.float64), k.astype(np.float64),
                                                       v.astype(np.float64), **kwargs)
    np.testing.assert_allclose(out, ref_out, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(cache[4], ref_cache[4], rtol=1e-4, atol=2e-5)  # lse
    grads = c_kernels.attention_backward(dout, cache)
    ref_grads = A.attention_backward.reference(dout.astype(np.float64), ref_cache)
    for name, got, want in zip(("dq", "dk", "dv"), grads, ref_grads):
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5 * scale, err_msg=name)


def test_c_attention_same_bits_on_any_thread_count():
    """one (batch, head) is one thread's work in a fixed order, so the thread count changes nothing"""
    lib = c_kernels.lib
    before = lib.tinygpt_get_num_threads()
    shape = (4, 3, 128, 128, 64)  # enough work for the threaded path
    _, q, k, v, dout = _inputs(shape, 7)
    results = []
    try:
        for threads in (1, 2):
            lib.tinygpt_set_num_threads(threads)
            out, cache = c_kernels.attention_forward(q, k, v, dropout_p=0.1, seed=99)
            results.append((out,) + tuple(c_kernels.attention_backward(dout, cache)))
    finally:
        lib.tinygpt_set_num_threads(before)
    for a, b in zip(*results):
        assert np.array_equal(a, b)
