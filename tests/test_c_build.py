"""The C backend: that it builds and imports, that tinygpt runs (with one warning) without it, and
the edge cases only the C wrappers have: transposed and strided inputs, float64 and other inputs
they hand back to the reference with NotImplemented. Kernel-by-kernel parity for every backend is
tests/test_kernel_parity.py.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tinygpt import backend
from tinygpt.ops import attention, layernorm, lstm, matmul, softmax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REQUIRED = os.environ.get("TINYGPT_REQUIRE_C", "").strip().lower() in ("1", "true", "yes")
HAVE_COMPILER = shutil.which(os.environ.get("CC", "cc")) is not None

if REQUIRED:
    from tinygpt.kernels import c_kernels as C  # must import: CI built it
else:
    C = pytest.importorskip("tinygpt.kernels.c_kernels", reason="C kernels not built")


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def assert_close(got, want, name, rtol=2e-5, atol=2e-5):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape}, reference {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, reference {want.dtype}"
    diff = np.abs(got.astype(np.float64) - want)
    assert np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True), (
        f"{name}: max difference {np.nanmax(diff):.3g} (C backend); first values "
        f"{got.ravel()[:4]} vs reference {want.ravel()[:4]}")


def test_c_extension_imports_when_a_compiler_is_present():
    if not HAVE_COMPILER and not REQUIRED:
        pytest.skip("no C compiler on this machine")
    import tinygpt._tinygpt_c as ext  # noqa: F401  (a failure here: run `pip install -e .`)
    assert backend.availability()["c"] == (True, "ok")


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_COMPILER, reason="no C compiler on this machine")
def test_c_extension_builds_from_csrc(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "csrc"))
    try:
        import build_cffi
    finally:
        sys.path.pop(0)
    builder = build_cffi.make_ffibuilder(*build_cffi.FLAG_SETS[0], root=ROOT)
    built = builder.compile(tmpdir=str(tmp_path), verbose=False)
    assert os.path.exists(built) and "_tinygpt_c" in os.path.basename(built)


def test_missing_extension_falls_back_to_reference_with_one_warning():
    # a fresh interpreter in which importing the compiled module fails, as without a compiler
    script = textwrap.dedent("""
        import sys, warnings
        sys.modules["tinygpt._tinygpt_c"] = None  # makes `import tinygpt._tinygpt_c` fail
        import numpy as np
        from tinygpt import backend
        from tinygpt.ops import softmax
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out, _ = softmax.softmax_forward(np.zeros((2, 4), np.float32))
            softmax.log_softmax_forward(np.zeros((2, 4), np.float32))
        c_warnings = [w for w in caught if "C kernels" in str(w.message)]
        assert len(c_warnings) == 1, [str(w.message) for w in caught]
        assert np.allclose(out, 0.25)
        ok, why = backend.availability()["c"]
        assert not ok and "not built" in why, why
        assert backend.implementation("softmax_forward")[0] != "c"
        print("fallback ok")
    """)
    env = dict(os.environ, TINYGPT_BACKEND="auto")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 0 and "fallback ok" in result.stdout, result.stderr[-2000:]


# ---- layouts the wrappers must take without copying wrong ---------------------------------

@pytest.mark.parametrize("transpose_a, transpose_b", [(False, True), (True, False), (True, True)])
def test_c_matmul_takes_transposed_operands(transpose_a, transpose_b):
    a = rand(37, 19, seed=1).T if transpose_a else rand(19, 37, seed=1)
    b = rand(53, 37, seed=2).T if transpose_b else rand(37, 53, seed=2)
    out, cache = C.matmul_forward(a, b)
    want, want_cache = matmul.matmul_forward.reference(a, b)
    assert_close(out, want, "matmul_forward")
    dout = rand(19, 53, seed=3)
    for got, ref, name in zip(C.matmul_backward(dout, cache),
                              matmul.matmul_backward.reference(dout, want_cache), ("da", "db")):
        assert_close(got, ref, f"matmul_backward {name}")


def test_c_matmul_takes_strided_and_batched_inputs():
    a = rand(4, 9, 70, seed=4)[:, :, ::2]  # every other column: neither C nor F contiguous
    b = rand(35, 66, seed=5)[:, 1:]
    out, cache = C.matmul_forward(a, b)
    assert_close(out, np.matmul(a, b), "matmul_forward strided")
    dout = rand(4, 9, 65, seed=6)
    da, db = C.matmul_backward(dout, cache)
    ref_da, ref_db = matmul.matmul_backward.reference(dout, (a, b))
    assert_close(da, ref_da, "matmul_backward da", rtol=1e-4, atol=1e-4)
    assert_close(db, ref_db, "matmul_backward db", rtol=1e-4, atol=1e-4)
    # batched @ batched with equal batch axes, and a broadcast the wrapper leaves to NumPy
    x, y = rand(2, 3, 5, 7, seed=7), rand(2, 3, 7, 4, seed=8)
    assert_close(C.matmul_forward(x, y)[0], np.matmul(x, y), "matmul_forward batched")
    assert C.matmul_forward(x, y[:1]) is NotImplemented


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_c_softmax_takes_noncontiguous_rows(name):
    x = rand(6, 40, seed=9)[:, ::3] * 4  # (6, 14), strided
    forward, backward = getattr(softmax, f"{name}_forward"), getattr(softmax, f"{name}_backward")
    out, cache = getattr(C, f"{name}_forward")(x)
    want, want_cache = forward.reference(x)
    assert_close(out, want, f"{name}_forward")
    dout = rand(6, 40, seed=10)[:, ::3]
    assert_close(getattr(C, f"{name}_backward")(dout, cache), backward.reference(dout, want_cache),
                 f"{name}_backward")


def test_c_softmax_other_axis_and_float64_go_to_the_reference():
    x = rand(3, 5, seed=11)
    assert C.softmax_forward(x, axis=0) is NotImplemented
    assert C.log_softmax_forward(x, axis=-2) is NotImplemented
    assert C.softmax_forward(x.astype(np.float64)) is NotImplemented
    assert C.matmul_forward(x.astype(np.float64), x.T) is NotImplemented
    assert C.layernorm_forward(x.astype(np.float64), np.ones(5), None) is NotImplemented
    with backend.use("c"):  # through the registry the reference answers, in float64
        out, _ = softmax.softmax_forward(x.astype(np.float64))
        assert out.dtype == np.float64
        assert_close(out, softmax.softmax_forward.reference(x.astype(np.float64))[0], "softmax f64")
        out0, _ = softmax.softmax_forward(x, axis=0)
        assert_close(out0, softmax.softmax_forward.reference(x, axis=0)[0], "softmax axis=0")


def test_c_cross_entropy_is_stable_for_huge_logits_and_ignores_index():
    logits = rand(16, 50, seed=12) * 1e4
    targets = np.random.default_rng(13).integers(0, 50, 16)
    targets[::4] = -100
    for reduction in ("mean", "sum", "none"):
        loss, cache = C.cross_entropy_forward(logits, targets, reduction=reduction)
        want, want_cache = softmax.cross_entropy_forward.reference(logits, targets, reduction=reduction)
        assert np.all(np.isfinite(loss)), f"cross_entropy {reduction}: {loss}"
        assert_close(loss, want, f"cross_entropy_forward {reduction}", rtol=1e-5)
        dout = np.float32(0.5) if reduction != "none" else rand(16, seed=14)
        assert_close(C.cross_entropy_backward(dout, cache)[0],
                     softmax.cross_entropy_backward.reference(dout, want_cache)[0],
                     f"cross_entropy_backward {reduction}")


def test_c_cross_entropy_leaves_probability_and_bad_targets_to_the_reference():
    logits = rand(4, 6, seed=15)
    probs = np.full((4, 6), 1 / 6, np.float32)
    assert C.cross_entropy_forward(logits, probs) is NotImplemented
    assert C.cross_entropy_forward(logits, np.array([0, 1, 2, 6])) is NotImplemented
    with backend.use("c"), pytest.raises(IndexError):
        softmax.cross_entropy_forward(logits, np.array([0, 1, 2, 6]))


def test_c_layernorm_without_bias_and_strided_input():
    x = rand(5, 3, 64, seed=16)[:, :, ::2]
    w = rand(32, seed=17)
    out, cache = C.layernorm_forward(x, w, None)
    want, want_cache = layernorm.layernorm_forward.reference(x, w, None)
    assert_close(out, want, "layernorm_forward")
    dx, dw, db = C.layernorm_backward(rand(5, 3, 32, seed=18), cache)
    ref = layernorm.layernorm_backward.reference(rand(5, 3, 32, seed=18), want_cache)
    assert db is None and ref[2] is None
    assert_close(dx, ref[0], "layernorm_backward dx")
    assert_close(dw, ref[1], "layernorm_backward dw", rtol=1e-4, atol=1e-4)


def test_c_adamw_refuses_a_noncontiguous_parameter():
    p = rand(8, 8, seed=19)[:, ::2]
    g, m, v = np.ones_like(p), np.zeros_like(p), np.zeros_like(p)
    assert C.adamw_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.0, 1) is NotImplemented


@pytest.mark.parametrize("causal, tq, tk", [(True, 19, 19), (True, 5, 70), (False, 33, 17),
                                            (True, 1, 1), (True, 1, 129)])
def test_c_attention_kv_cache_and_odd_sizes(causal, tq, tk):
    q, k, v = rand(2, 3, tq, 24, seed=20), rand(2, 3, tk, 24, seed=21), rand(2, 3, tk, 24, seed=22)
    out, cache = C.attention_forward(q, k, v, causal=causal)
    want, want_cache = attention.attention_forward.reference(q, k, v, causal=causal)
    assert_close(out, want, "attention_forward")
    assert_close(cache[4], want_cache[4], "attention lse")
    assert cache[5:] == want_cache[5:]
    dout = rand(2, 3, tq, 24, seed=23)
    for got, ref, name in zip(C.attention_backward(dout, cache),
                              attention.attention_backward.reference(dout, want_cache), "qkv"):
        assert_close(got, ref, f"attention_backward d{name}", rtol=1e-4, atol=1e-4)


def test_c_lstm_cache_has_the_reference_layout():
    batch, steps, n_in, d = 3, 7, 5, 6
    x, h0, c0 = rand(batch, steps, n_in, seed=24), rand(batch, d, seed=25), rand(batch, d, seed=26)
    w_ih, w_hh, b = rand(n_in, 4 * d, seed=27) * 0.3, rand(d, 4 * d, seed=28) * 0.3, rand(4 * d, seed=29)
    (out, h, c), cache = C.lstm_forward(x, h0, c0, w_ih, w_hh, b)
    (r_out, r_h, r_c), r_cache = lstm.lstm_forward.reference(x, h0, c0, w_ih, w_hh, b)
    for got, want, name in zip((out, h, c) + cache, (r_out, r_h, r_c) + r_cache,
                               ["out", "h_T", "c_T", "x", "w_ih", "w_hh", "gates", "hs", "cs", "tanh_c"]):
        assert_close(got, want, f"lstm_forward {name}")
    douts = (rand(batch, steps, d, seed=30), None, rand(batch, d, seed=31))
    names = ["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db"]
    for got, want, name in zip(C.lstm_backward(douts, cache), lstm.lstm_backward.reference(douts, r_cache), names):
        assert_close(got, want, f"lstm_backward {name}", rtol=1e-4, atol=1e-4)


def _sgemm_both(m, n, k, a, b, accumulate, threads):
    """C = A B through the blocked sgemm and through sgemm_naive, from the same strided views."""
    from tinygpt._tinygpt_c import ffi, lib

    def ptr(x):
        return ffi.cast("float *", x.ctypes.data)

    fs = a.itemsize
    start = np.random.default_rng(1).standard_normal((m, n), dtype=np.float32)
    results = []
    previous = lib.tinygpt_get_num_threads()
    lib.tinygpt_set_num_threads(threads)
    try:
        for fn in (lib.sgemm, lib.sgemm_naive):
            c = start.copy()
            fn(m, n, k, ptr(a), a.strides[0] // fs, a.strides[1] // fs,
               ptr(b), b.strides[0] // fs, b.strides[1] // fs, ptr(c), n, accumulate)
            results.append(c)
    finally:
        lib.tinygpt_set_num_threads(previous)
    return results


@pytest.mark.parametrize("m, n, k", [
    (1, 1, 1), (5, 17, 3), (6, 16, 256), (7, 33, 257),      # one past every tile edge
    (145, 20, 300),                                         # past MC = 144 rows
    (64, 4100, 40),                                         # past NC = 4080 columns
    (256, 192, 64), (256, 384, 128),                        # a GPT step's K = 64 and 128
    (20, 35, 1000),                                         # k in 3 equal slices of 334
    (13, 50, 771),                                          # slices past KC, an odd last row
])
@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("accumulate", [0, 1])
@pytest.mark.parametrize("threads", [1, 2])
def test_c_sgemm_equals_the_naive_three_loops(m, n, k, transpose_a, transpose_b, accumulate, threads):
    a = rand(k, m, seed=2).T if transpose_a else rand(m, k, seed=2)   # (m, k), maybe a strided view
    b = rand(n, k, seed=3).T if transpose_b else rand(k, n, seed=3)   # (k, n)
    blocked, naive = _sgemm_both(m, n, k, a, b, accumulate, threads)
    # the two sum the k products in different orders: float32 rounding grows like sqrt(k)
    assert_close(blocked, naive, f"sgemm ({m}x{k} @ {k}x{n}, accumulate={accumulate}, "
                 f"{threads} threads) vs sgemm_naive", rtol=1e-4, atol=1e-4 * np.sqrt(k))


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_COMPILER, reason="no C compiler on this machine")
def test_wheel_is_tagged_abi3_and_carries_the_extension(tmp_path):
    """The extension uses only the stable ABI, so one wheel serves Python 3.10 and later."""
    import zipfile
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), ROOT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = [name for name in os.listdir(tmp_path) if name.endswith(".whl")]
    assert "-cp310-abi3-" in wheel, f"wheel {wheel} is not tagged cp310-abi3"
    names = zipfile.ZipFile(tmp_path / wheel).namelist()
    assert any(n.startswith("tinygpt/_tinygpt_c") and n.endswith(".abi3.so") for n in names), names


def test_c_simd_reports_the_build_and_what_this_cpu_has():
    report = C.simd()  # "build: <isa>; cpu: <isa>"
    build, cpu = (part.split(": ", 1)[1] for part in report.split("; "))
    isas = {"avx512f+avx2+fma", "avx2+fma", "avx", "no avx", "unknown"}
    assert build in isas and cpu in isas, report
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return  # no /proc/cpuinfo to check the CPU's answer against
    want = ("avx512f+avx2+fma" if "avx512f" in flags else "avx2+fma" if {"avx2", "fma"} <= set(flags)
            else "avx" if "avx" in flags else "no avx")
    assert cpu == want, f"tinygpt_simd() says {report!r}, /proc/cpuinfo has {want}"
