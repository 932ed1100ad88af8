"""Per-kernel timings: every implementation tinygpt has of a kernel (NumPy reference, Numba, C)
next to NumPy's BLAS and PyTorch, in one process, interleaved over rounds, medians reported.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/kernels.py   # all, writes RESULTS.md
    python bench/kernels.py --quick          # 3 rounds, smaller sgemm sizes, no file written
    python bench/kernels.py --only attention,lstm --rounds 5 --threads 1,2
    python bench/kernels.py --clock cpu      # 1 thread, CPU time: for a machine others load

NOTE: some machines here set OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (older OpenBLAS builds misbehave
without them); they slow a current NumPy, so unset both, in the benchmark's command only.

Each round runs every implementation of a case once as a timed block, with a pause before each
block so that the previous library's idle threads (OpenBLAS, OpenMP, torch) stop spinning on the
cores. The gpt_gemm section runs each library in a worker process of its own instead
(gpt_gemm_rows): in one process OpenBLAS's spinning threads slow the C sgemm's second thread. Reported: median time per call, GFLOP/s where the flop count is meaningful, and the ratio
to the NumPy reference, to BLAS and to PyTorch. Not here: end-to-end training (bench/train.py).
"""

import argparse
import gc
import importlib
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
from tinygpt import backend  # noqa: E402
from tinygpt.ops import (adamw, attention, elementwise, gru, layernorm, lstm, matmul,  # noqa: E402
                         softmax)



# ---- the implementations -------------------------------------------------------------------

def kernel_modules():
    """{backend: module} for the compiled backends that import, and the reasons for the others."""
    modules, missing = {}, {}
    for name, (ok, why) in backend.availability().items():
        if name == "numpy":
            continue
        if ok:
            modules[name] = importlib.import_module(backend._KERNEL_MODULES[name])
        else:
            missing[name] = why
    return modules, missing


def try_torch(threads):
    if os.environ.get("BENCH_NO_TORCH"):
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def set_blas_threads(threads):
    """NumPy's OpenBLAS to `threads` threads: threadpoolctl when installed, else OpenBLAS's own
    openblas_set_num_threads, found in the library NumPy loaded (/proc/self/maps)."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)  # OpenBLAS (and any OpenMP runtime threadpoolctl can see)
        return
    except ImportError:
        pass
    import ctypes
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "openblas" in line and ".so" in line}
    for path in libs:
        lib = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                       "openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(lib, symbol):
                getattr(lib, symbol)(ctypes.c_int(threads))
                break


def set_threads(threads, modules, torch):
    set_blas_threads(threads)
    if "c" in modules:
        modules["c"].set_num_threads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    except Exception:  # Numba absent or its threading layer not started: nothing to set
        pass
    # NOTE: after Numba's: starting Numba's OpenMP threading layer sets the OpenMP team size
    # of the runtime it shares with the C kernels back to NUMBA_NUM_THREADS
    if "c" in modules:
        modules["c"].set_num_threads(threads)


def pair(fw_name, bw_name, fw_args, dout_of, fw_kwargs=None):
    """{backend: fn()} running forward then backward of one registered kernel pair.
    An implementation that answers NotImplemented for these inputs is left out."""
    fw_kwargs = fw_kwargs or {}
    ops = {"matmul": matmul, "attention": attention, "softmax": softmax, "log_softmax": softmax,
           "cross_entropy": softmax, "layernorm": layernorm, "gelu": elementwise, "gelu_erf": elementwise,
           "lstm": lstm,
           "gru": gru}
    module = ops[fw_name.rsplit("_", 1)[0]]
    impls = {"numpy": (getattr(module, fw_name).reference, getattr(module, bw_name).reference)}
    for name, mod in MODULES.items():
        if hasattr(mod, fw_name) and hasattr(mod, bw_name):
            impls[name] = (getattr(mod, fw_name), getattr(mod, bw_name))
    out = {}
    for name, (fw, bw) in impls.items():
        result = fw(*fw_args, **fw_kwargs)
        if result is NotImplemented:
            continue
        dout = dout_of(result[0])
        out[name] = (lambda fw=fw, bw=bw, dout=dout: bw(dout, fw(*fw_args, **fw_kwargs)[1]))
    return out


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)


# ---- the cases -----------------------------------------------------------------------------

def case_sgemm(n, torch):
    rng = np.random.default_rng(0)
    a, b = rand(rng, n, n), rand(rng, n, n)
    impls = {"blas": lambda: a @ b}
    if "c" in MODULES:
        impls["c"] = lambda: MODULES["c"].matmul_forward(a, b)
    if "numba" in MODULES and hasattr(MODULES["numba"], "matmul_forward"):
        impls["numba"] = lambda: MODULES["numba"].matmul_forward(a, b)
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        impls["torch"] = lambda: ta @ tb
    return impls, 2.0 * n ** 3


# The products of a GPT training step, (M, K) @ (K, N) with M = B*T: for n_embd C the
# attention's c_attn (C, 3C) and c_proj (C, C), the MLP's c_fc (C, 4C) and c_proj (4C, C), and
# GPT-2's head (C, V=50257). Each runs as the forward x @ W, and as backward's two
# transposed-operand products dx = dout @ W^T and dW = x^T @ dout.
GPT_SHAPES = [(64, 192), (64, 256), (256, 64), (128, 384), (128, 512), (512, 128),
              (384, 1152), (384, 1536), (1536, 384),
              (768, 2304), (768, 768), (768, 3072), (3072, 768), (768, 50257)]
GPT_ROWS = (256, 1024)  # B=4 at T=64 and T=256


def gpt_products(quick=False):
    """[(label, M, K, N, product)] for the cases of case_gpt_gemm; the head only at M=256."""
    rows = (256,) if quick else GPT_ROWS
    shapes = GPT_SHAPES[::3] + GPT_SHAPES[-1:] if quick else GPT_SHAPES
    return [(f"{prod} M={m} K={k} N={n}", m, k, n, prod) for m in rows for k, n in shapes
            for prod in ("x@W", "dout@W^T", "x^T@dout") if n != 50257 or m == 256]


def gpt_operands(m, k, n, product):
    """(lhs, rhs) of one product of a GPT step in the layout the step uses: W is (K, N)
    C-contiguous, x (M, K) and dout (M, N); the transposes are views, as in matmul_backward."""
    rng = np.random.default_rng(9)
    x, w, g = rand(rng, m, k), rand(rng, k, n), rand(rng, m, n)
    return {"x@W": (x, w), "dout@W^T": (g, w.T), "x^T@dout": (x.T, g)}[product]


def gpt_gemm_sides(lib, products, threads):
    """Worker builder for common's _worker: {str(i): fn} running product i of `products`
    ([(m, k, n, product)]) with one library on `threads` threads: "c" (tinygpt's C sgemm),
    "blas" (NumPy's matmul) or "torch" -> (sides, missing, None). Runs in a process of its own:
    see gpt_gemm_rows.

    NOTE: OpenBLAS is set here with set_blas_threads, which works without threadpoolctl (common's
    set_threads does not): an OpenBLAS left on OPENBLAS_NUM_THREADS=2 for a 1-thread table spins
    two threads on a loaded machine, measured 0.4 GFLOP/s at (256, 64) @ (64, 192)."""
    set_blas_threads(threads)
    convert = lambda a: a  # noqa: E731
    if lib == "c":
        ok, why = backend.availability()["c"]
        if not ok:
            return {}, {"c": why}, None
        mm = importlib.import_module(backend._KERNEL_MODULES["c"]).matmul_forward
    elif lib == "torch":
        torch = common.import_torch()
        if torch is None:
            return {}, {"torch": "torch not installed (or BENCH_NO_TORCH set)"}, None
        mm, convert = (lambda a, b: a @ b), torch.from_numpy  # strided views, like NumPy's
    elif lib == "blas":
        mm = np.matmul
    else:
        raise ValueError(f"lib={lib!r}: expected 'c', 'blas' or 'torch'")
    sides = {}
    for i, (m, k, n, product) in enumerate(products):
        lhs, rhs = (convert(a) for a in gpt_operands(m, k, n, product))
        sides[str(i)] = lambda lhs=lhs, rhs=rhs: mm(lhs, rhs)
    return sides, {}, None


def gpt_gemm_rows(products, threads, libs=("c", "blas", "torch"), rounds=3, pause=0.1,
                  target=0.03, clock="wall"):
    """GFLOP/s of each product of `products` ([(m, k, n, product)]) per library, each library in a
    worker process of its own (common.start_worker), products one after another, libraries
    alternating in order each round with `pause` seconds before each block; a block repeats the
    call to take about `target` seconds. -> [{"m", "k", "n", "product", lib: Stat of GFLOP/s}]

    Why processes: in one process OpenBLAS's threads busy-wait after each call and take the
    second core from the C sgemm's OpenMP worker (which sleeps, OMP_WAIT_POLICY=PASSIVE), so
    a 2-thread C call then runs at about 1-thread speed; in a training step only one of them runs."""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    workers = {}
    rows = [{"m": m, "k": k, "n": n, "product": prod} for m, k, n, prod in products]
    try:
        for lib in libs:
            builder = ("bench.kernels", "gpt_gemm_sides", (lib, products, threads))
            proc, conn, msg = common.start_worker(ctx, common._worker,
                                                  (lib, *builder, threads, False))
            if proc is None or msg[2]:
                print(f"gpt_gemm: {lib} left out: {msg[1] if proc is None else msg[2]}")
                if proc is not None:
                    conn.send(("stop",))
                    proc.join(timeout=10)
                continue
            workers[lib] = (proc, conn)

        def block(lib, i, steps):
            conn = workers[lib][1]
            conn.send(("run", str(i), steps, clock))
            return conn.recv()

        names = list(workers)
        for i, row in enumerate(rows):
            flops = 2.0 * row["m"] * row["k"] * row["n"]
            steps = {}
            for lib in names:  # warm (pages, threads), then calls per block from the faster of two
                block(lib, i, 1)
                t = min(block(lib, i, 1) for _ in range(2))
                steps[lib] = max(1, min(200, int(target / max(t, 1e-6))))
            samples = {lib: [] for lib in names}
            for r in range(rounds):
                for lib in (names if r % 2 == 0 else names[::-1]):
                    time.sleep(pause)
                    samples[lib].append(flops * steps[lib] / block(lib, i, steps[lib]) / 1e9)
            row.update({lib: common.Stat.of(v) for lib, v in samples.items()})
        return rows
    finally:
        common.stop_workers(workers.values())


def gpt_gemm_summary(ratios, target=0.95):
    """One line on the C / BLAS ratios of a table: median, range, how many fall below target."""
    if not ratios:
        return "C / BLAS: no ratios (C or BLAS missing)."
    below = sum(r < target for r in ratios)
    return (f"C / BLAS over {len(ratios)} products: median {statistics.median(ratios):.2f}, "
            f"min–max {min(ratios):.2f}–{max(ratios):.2f}, {below} below {target}.")


def case_linear(torch):
    """The Linear layer's product, forward and backward: (B, T, C) @ (C, 3C), GPT-2 small-ish."""
    rng = np.random.default_rng(1)
    B, T, C = 8, 256, 384
    x, w, g = rand(rng, B, T, C), rand(rng, C, 3 * C), rand(rng, B, T, 3 * C)
    impls = pair("matmul_forward", "matmul_backward", (x, w), lambda out: g)
    x2, g2 = x.reshape(-1, C), g.reshape(-1, 3 * C)
    impls["blas"] = lambda: (x2 @ w, g2 @ w.T, x2.T @ g2)
    if torch is not None:
        tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
        tg = torch.from_numpy(g)
        impls["torch"] = lambda: (tx @ tw).backward(tg)
    return impls, 3 * 2.0 * B * T * C * 3 * C


def case_attention(torch):
    rng = np.random.default_rng(2)
    B, nh, T, hs = 8, 6, 256, 64
    q, k, v, g = (rand(rng, B, nh, T, hs) for _ in range(4))
    impls = pair("attention_forward", "attention_backward", (q, k, v), lambda out: g)
    if torch is not None:
        tq, tk, tv = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
        tg = torch.from_numpy(g)
        sdpa = torch.nn.functional.scaled_dot_product_attention
        impls["torch"] = lambda: sdpa(tq, tk, tv, is_causal=True).backward(tg)
    # causal: half of the (T, T) scores; forward 2 products, backward 5 (S recomputed)
    return impls, 7 * 2.0 * B * nh * (T * (T + 1) / 2) * hs


def case_attention_options(torch, dropout_p=0.0, padded=False):
    """case_attention's shapes with GPT-2's attention dropout (seeded), or with a key-padding mask
    (each row's first T/4 keys are padding, as in a left-padded batch)."""
    rng = np.random.default_rng(2)
    B, nh, T, hs = 8, 6, 256, 64
    q, k, v, g = (rand(rng, B, nh, T, hs) for _ in range(4))
    key_mask = np.arange(T)[None, :] >= np.full((B, 1), T // 4) if padded else None
    impls = pair("attention_forward", "attention_backward", (q, k, v), lambda out: g,
                 dict(causal=True, key_mask=key_mask, dropout_p=dropout_p, seed=7))
    if torch is not None:
        tq, tk, tv = (torch.from_numpy(a).requires_grad_() for a in (q, k, v))
        tg = torch.from_numpy(g)
        sdpa = torch.nn.functional.scaled_dot_product_attention
        if padded:  # torch takes a mask or is_causal, not both: the causal part goes in the mask
            mask = torch.from_numpy(key_mask[:, None, None, :] & np.tril(np.ones((T, T), bool)))
            impls["torch"] = lambda: sdpa(tq, tk, tv, attn_mask=mask).backward(tg)
        else:
            impls["torch"] = lambda: sdpa(tq, tk, tv, dropout_p=dropout_p, is_causal=True).backward(tg)
    return impls, 7 * 2.0 * B * nh * (T * (T + 1) / 2) * hs


def case_rows(kind, torch):
    """softmax / log_softmax over attention-sized rows, forward and backward."""
    rng = np.random.default_rng(3)
    x, g = rand(rng, 4096, 1024, scale=3.0), rand(rng, 4096, 1024)
    impls = pair(f"{kind}_forward", f"{kind}_backward", (x,), lambda out: g)
    if torch is not None:
        tx, tg = torch.from_numpy(x).requires_grad_(), torch.from_numpy(g)
        f = torch.softmax if kind == "softmax" else torch.log_softmax
        impls["torch"] = lambda: f(tx, -1).backward(tg)
    return impls, None


def case_cross_entropy(torch):
    rng = np.random.default_rng(4)
    N, V = 2048, 8192
    logits = rand(rng, N, V, scale=3.0)
    targets = rng.integers(0, V, N)
    impls = pair("cross_entropy_forward", "cross_entropy_backward", (logits, targets),
                 lambda out: np.float32(1.0))
    if torch is not None:
        tl, tt = torch.from_numpy(logits).requires_grad_(), torch.from_numpy(targets)
        impls["torch"] = lambda: torch.nn.functional.cross_entropy(tl, tt).backward()
    return impls, None


def case_layernorm(torch):
    rng = np.random.default_rng(5)
    x, w, b, g = rand(rng, 8, 256, 768), rand(rng, 768), rand(rng, 768), rand(rng, 8, 256, 768)
    impls = pair("layernorm_forward", "layernorm_backward", (x, w, b), lambda out: g)
    if torch is not None:
        tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        tg = torch.from_numpy(g)
        impls["torch"] = lambda: torch.nn.functional.layer_norm(tx, (768,), tw, tb).backward(tg)
    return impls, None


def case_gelu(torch, approximate="tanh"):
    """GPT-2's tanh GELU (the `gelu` kernels), or with approximate='none' the exact one (`gelu_erf`)."""
    rng = np.random.default_rng(6)
    x, g = rand(rng, 8, 256, 3072), rand(rng, 8, 256, 3072)
    op = "gelu" if approximate == "tanh" else "gelu_erf"
    impls = pair(f"{op}_forward", f"{op}_backward", (x,), lambda out: g)
    if torch is not None:
        tx, tg = torch.from_numpy(x).requires_grad_(), torch.from_numpy(g)
        impls["torch"] = lambda: torch.nn.functional.gelu(tx, approximate=approximate).backward(tg)
    return impls, None


def case_adamw(torch):
    rng = np.random.default_rng(7)
    n = 4_000_000
    state = [rand(rng, n), rand(rng, n), np.zeros(n, np.float32), np.zeros(n, np.float32)]
    args = (1e-3, 0.9, 0.95, 1e-8, 0.1, 10)
    impls = {"numpy": lambda: adamw.adamw_update.reference(*state, *args)}
    for name, mod in MODULES.items():
        if hasattr(mod, "adamw_update"):
            impls[name] = lambda mod=mod: mod.adamw_update(*state, *args)
    if torch is not None:
        p = torch.nn.Parameter(torch.from_numpy(state[0].copy()))
        p.grad = torch.from_numpy(state[1])
        opt = torch.optim.AdamW([p], lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
        impls["torch"] = opt.step
    return impls, None


def case_lstm(torch):
    """2-layer LSTM, batch 64, T=100, input 64, hidden 128: both layers forward, then backward."""
    rng = np.random.default_rng(8)
    B, T, I, D = 64, 100, 64, 128
    x, g = rand(rng, B, T, I), rand(rng, B, T, D)
    h0 = np.zeros((B, D), np.float32)
    s = 1 / math.sqrt(D)
    layers = [(rand(rng, I, 4 * D, scale=s), rand(rng, D, 4 * D, scale=s), rand(rng, 4 * D, scale=s)),
              (rand(rng, D, 4 * D, scale=s), rand(rng, D, 4 * D, scale=s), rand(rng, 4 * D, scale=s))]
    impls = {"numpy": (lstm.lstm_forward.reference, lstm.lstm_backward.reference)}
    for name, mod in MODULES.items():
        if hasattr(mod, "lstm_forward") and hasattr(mod, "lstm_backward"):
            impls[name] = (mod.lstm_forward, mod.lstm_backward)

    def run(fw, bw):
        (o1, _, _), c1 = fw(x, h0, h0, *layers[0])
        (o2, _, _), c2 = fw(o1, h0, h0, *layers[1])
        d2 = bw((g, None, None), c2)
        return bw((d2[0], None, None), c1)

    out = {name: (lambda fw=fw, bw=bw: run(fw, bw)) for name, (fw, bw) in impls.items()}
    if torch is not None:
        net = torch.nn.LSTM(I, D, num_layers=2, batch_first=True)
        tx, tg = torch.from_numpy(x).requires_grad_(), torch.from_numpy(g)
        out["torch"] = lambda: net(tx)[0].backward(tg)
    # per layer: forward x W_ih and h W_hh; backward dx, dW_ih (like x W_ih) and dh, dW_hh (like
    # h W_hh): three times 2 B T (I + D) 4D multiply-adds
    flops = sum(3 * 2.0 * B * T * (i + D) * 4 * D for i in (I, D))
    return out, flops


def case_gru(torch):
    """2-layer GRU, batch 64, T=100, input 64, hidden 128: both layers forward, then backward."""
    rng = np.random.default_rng(9)
    B, T, I, D = 64, 100, 64, 128
    x, g = rand(rng, B, T, I), rand(rng, B, T, D)
    h0 = np.zeros((B, D), np.float32)
    s = 1 / math.sqrt(D)
    layers = [tuple(rand(rng, *shape, scale=s) for shape in ((n_in, 3 * D), (D, 3 * D), (3 * D,), (3 * D,)))
              for n_in in (I, D)]
    impls = {"numpy": (gru.gru_forward.reference, gru.gru_backward.reference)}
    for name, mod in MODULES.items():
        if hasattr(mod, "gru_forward") and hasattr(mod, "gru_backward"):
            impls[name] = (mod.gru_forward, mod.gru_backward)

    def run(fw, bw):
        (o1, _), c1 = fw(x, h0, *layers[0])
        (o2, _), c2 = fw(o1, h0, *layers[1])
        d2 = bw((g, None), c2)
        return bw((d2[0], None), c1)

    out = {name: (lambda fw=fw, bw=bw: run(fw, bw)) for name, (fw, bw) in impls.items()}
    if torch is not None:
        net = torch.nn.GRU(I, D, num_layers=2, batch_first=True)
        tx, tg = torch.from_numpy(x).requires_grad_(), torch.from_numpy(g)
        out["torch"] = lambda: net(tx)[0].backward(tg)
    # as the LSTM's, with 3 gates: three times 2 B T (I + D) 3D multiply-adds per layer
    flops = sum(3 * 2.0 * B * T * (i + D) * 3 * D for i in (I, D))
    return out, flops


# ---- timing --------------------------------------------------------------------------------

def first_call_seconds(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


CLOCK = time.perf_counter  # --clock cpu: time.thread_time, this thread's CPU seconds


def measure(impls, rounds, pause, target):
    """{impl: median seconds per call}: each round times every impl in turn (order alternating),
    reps chosen so a block takes about `target` seconds."""
    reps = {}
    for name, fn in impls.items():
        fn()  # warm: pages touched, threads started
        t = min(first_call_seconds(fn) for _ in range(2))
        reps[name] = max(1, min(200, int(target / max(t, 1e-6))))
    samples = {name: [] for name in impls}
    names = list(impls)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            gc.collect()
            time.sleep(pause)
            fn, n = impls[name], reps[name]
            t0 = CLOCK()
            for _ in range(n):
                fn()
            samples[name].append((CLOCK() - t0) / n)
    return {name: statistics.median(v) for name, v in samples.items()}


def numba_compile_times():
    """{kernel: (seconds of its first call in a process with an empty Numba cache, seconds in the
    next process, which loads that cache)}, from numba_kernels.warmup() in two fresh processes."""
    if "numba" not in MODULES:
        return {}
    import json
    import tempfile
    script = ("import json; from tinygpt.kernels import numba_kernels; "
              "print(json.dumps(numba_kernels.warmup()))")
    runs = []
    with tempfile.TemporaryDirectory() as cache_dir:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": str(ROOT)}
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                                 text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    return {name: (cold[name], warm[name]) for name in cold}


# ---- reporting -----------------------------------------------------------------------------

def fmt_time(seconds):
    return f"{seconds * 1e3:.3f} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"


def table(headers, rows):
    cells = [["–" if c is None else str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells])


def machine():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    fields = dict((k.strip(), v.strip()) for k, v in
                  (line.split(":", 1) for line in out.splitlines() if ":" in line))
    flags = fields.get("Flags", "").split()
    simd = "/".join(f for f in ("avx2", "fma", "avx512f") if f in flags) or "no AVX2"
    lines = [f"- CPU: {fields.get('Model name', platform.processor())}, {fields.get('CPU(s)', os.cpu_count())} "
             f"CPUs, L1d {fields.get('L1d cache', '?')}, L2 {fields.get('L2 cache', '?')}, "
             f"L3 {fields.get('L3 cache', '?')}, SIMD: {simd}"]
    if "c" in MODULES:  # asked of the extension at run time, not assumed from the flags above
        lines.append(f"- C kernels, vector instructions: {MODULES['c'].simd()} (sgemm's microkernel "
                     f"uses 8-wide, 256-bit FMAs whatever the build allows)")
    import numba
    lines.append(f"- Python {platform.python_version()}, NumPy {np.__version__}, Numba {numba.__version__}"
                 + (f", PyTorch {sys.modules['torch'].__version__}" if "torch" in sys.modules else ""))
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            lines.append(f"- {pool.get('internal_api')} {pool.get('version')}: kernel "
                         f"{pool.get('architecture')}, {pool.get('num_threads')} threads")
    except ImportError:
        pass
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")}
    lines.append("- Environment: " + (", ".join(f"{k}={v}" for k, v in env.items() if v) or
                                      "OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE, OMP_NUM_THREADS unset"))
    la = os.getloadavg()
    lines.append(f"- Load average at the start: {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} (other "
                 f"people's jobs share these 2 cores: expect noise of 10-30%)")
    return "\n".join(lines)


def ratio(a, b):
    return None if a is None or b is None else f"{b / a:.2f}×"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, short blocks, no file")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--only", default="", help="comma-separated: sgemm,gpt_gemm,linear,attention,"
                        "softmax,log_softmax,cross_entropy,layernorm,gelu,gelu_erf,adamw,lstm,gru")
    parser.add_argument("--threads", default="2", help="comma-separated thread counts, one kernel "
                        "table each (sgemm always runs on 1 and 2)")
    parser.add_argument("--impls", default="", help="comma-separated subset of numpy,numba,c,"
                        "blas,torch (e.g. leave out the slow NumPy reference)")
    parser.add_argument("--write", default=None, help="markdown file for the results "
                        "(default bench/RESULTS.md unless --quick)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: CPU time "
                        "of the calling thread, with every library on 1 thread: robust to other "
                        "people's load, since waiting for a core is not counted")
    args = parser.parse_args(argv)
    if args.clock == "cpu":
        global CLOCK
        CLOCK = time.thread_time
        args.threads = "1"
    rounds = args.rounds or (3 if args.quick else 7)
    pause = 0.15 if args.quick else 0.3
    target = 0.05 if args.quick else 0.2
    only = set(filter(None, args.only.split(",")))
    impl_filter = set(filter(None, args.impls.split(",")))
    pick = lambda impls: {k: v for k, v in impls.items() if not impl_filter or k in impl_filter}  # noqa: E731
    thread_counts = [int(t) for t in args.threads.split(",")]
    want = lambda name: not only or name in only  # noqa: E731

    global MODULES
    MODULES, missing = kernel_modules()
    torch = try_torch(thread_counts[0])
    # two fresh processes, ~1 min; gpt_gemm alone runs no Numba kernel
    compile_times = {} if args.quick or only == {"gpt_gemm"} else numba_compile_times()
    print(machine())
    for name, why in missing.items():
        print(f"- {name} backend not available: {why}")
    sections = []

    if want("sgemm"):
        sizes = (256, 512, 1024) if args.quick else (256, 512, 1024, 2048)
        rows = []
        for threads in ((1,) if args.clock == "cpu" else (1, 2)):
            set_threads(threads, MODULES, torch)
            for n in sizes:
                impls, flops = case_sgemm(n, torch)
                t = measure(pick(impls), rounds, pause, target)
                gf = {k: flops / v / 1e9 for k, v in t.items()}
                rows.append([threads, n] + [f"{gf[k]:.1f}" if k in gf else None
                                            for k in ("c", "numba", "blas", "torch")]
                            + [f"{gf['c'] / gf['blas']:.2f}" if "c" in gf and "blas" in gf else None,
                               f"{gf['c'] / gf['torch']:.2f}" if "c" in gf and "torch" in gf else None])
                print(f"sgemm threads={threads} n={n}: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in gf.items()))
        sections.append(f"### sgemm, (n, n) @ (n, n) float32, GFLOP/s{CLOCK_NOTE[args.clock]}\n\n" + table(
            ["threads", "n", "C", "Numba", "NumPy BLAS", "torch", "C / BLAS", "C / torch"], rows))

    if want("gpt_gemm"):
        libs = [lib for lib in ("c", "blas", "torch") if not impl_filter or lib in impl_filter]
        if torch is None and "torch" in libs:
            libs.remove("torch")
        products = [(m, k, n, prod) for _, m, k, n, prod in gpt_products(args.quick)]
        for threads in ((1,) if args.clock == "cpu" else (1, 2)):
            # a 1-thread library leaves no threads spinning: a short pause is enough
            rows = gpt_gemm_rows(products, threads, libs, rounds=args.rounds or 3,
                                 pause=min(pause, 0.15) if threads > 1 else 0.02,
                                 target=target / 4,
                                 clock=args.clock)
            cells, ratios = [], []
            for row in rows:
                c, blas = row.get("c"), row.get("blas")
                r = c.median / blas.median if c and blas else None
                if r is not None:
                    ratios.append(r)
                cells.append([row["product"], row["m"], row["k"], row["n"]]
                             + [f"{row[key].median:.1f}" if key in row else None
                                for key in ("c", "blas", "torch")]
                             + [None if r is None else f"{r:.2f}"])
                print(f"gpt_gemm threads={threads} {row['product']} M={row['m']} K={row['k']} "
                      f"N={row['n']}: " + ", ".join(f"{key} {row[key].median:.1f} GFLOP/s"
                                                   for key in libs if key in row), flush=True)
            sections.append(f"### sgemm at the shapes of a GPT step, {threads} thread"
                            f"{'s' if threads > 1 else ''}, GFLOP/s{CLOCK_NOTE[args.clock]}\n\n"
                            "x (M, K), W (K, N), dout (M, N); the transposed operands are views "
                            "(strides), as in matmul_backward. Each library runs in a worker "
                            "process of its own (gpt_gemm_rows), as in a training step where only "
                            "one of them runs; medians of the rounds.\n\n" + table(
                                ["product", "M", "K", "N", "C", "NumPy BLAS", "torch", "C / BLAS"],
                                cells) + "\n\n" + gpt_gemm_summary(ratios))

    cases = [("linear", "matmul fwd+bwd, (8, 256, 384) @ (384, 1152)", case_linear),
             ("attention", "attention fwd+bwd, B=8 nh=6 T=256 hs=64 causal", case_attention),
             ("attention_dropout", "attention fwd+bwd as above, dropout_p=0.1",
              lambda t: case_attention_options(t, dropout_p=0.1)),
             ("attention_padded", "attention fwd+bwd as above, key_mask (1/4 left padding)",
              lambda t: case_attention_options(t, padded=True)),
             ("softmax", "softmax fwd+bwd, (4096, 1024)", lambda t: case_rows("softmax", t)),
             ("log_softmax", "log_softmax fwd+bwd, (4096, 1024)", lambda t: case_rows("log_softmax", t)),
             ("cross_entropy", "cross_entropy fwd+bwd, N=2048 V=8192", case_cross_entropy),
             ("layernorm", "layernorm fwd+bwd, (8, 256, 768)", case_layernorm),
             ("gelu", "gelu fwd+bwd, (8, 256, 3072)", case_gelu),
             ("gelu_erf", "gelu_erf (exact) fwd+bwd, (8, 256, 3072)", lambda t: case_gelu(t, "none")),
             ("adamw", "adamw_update, 4M parameters", case_adamw),
             ("lstm", "LSTM 2 layers fwd+bwd, B=64 T=100 I=64 D=128", case_lstm),
             ("gru", "GRU 2 layers fwd+bwd, B=64 T=100 I=64 D=128", case_gru)]
    for threads in thread_counts:
        set_threads(threads, MODULES, torch)
        rows = []
        for key, label, make in cases:
            if not want(key):
                continue
            impls, flops = make(torch)
            t = measure(pick(impls), rounds, pause, target)
            gf = lambda k: f"{flops / t[k] / 1e9:.1f}" if flops and k in t else None  # noqa: E731
            get = lambda k: fmt_time(t[k]) if k in t else None  # noqa: E731
            rows.append([label, get("numpy"), get("numba"), get("c"), get("blas"), get("torch"),
                         gf("c"), ratio(t.get("c"), t.get("numpy")), ratio(t.get("c"), t.get("blas")),
                         ratio(t.get("c"), t.get("torch")), ratio(t.get("numba"), t.get("numpy"))])
            print(f"threads={threads} {label}: " + ", ".join(f"{k} {fmt_time(v)}" for k, v in t.items()))
        if rows:
            sections.append(f"### kernels, {threads} thread{'s' if threads > 1 else ''}, median time per call"
                            f"{CLOCK_NOTE[args.clock]}\n\n"
                            "Speedups are time(other) / time(C): above 1 means C is faster.\n\n" + table(
                                ["case", "NumPy ref", "Numba", "C", "BLAS", "torch", "C GFLOP/s",
                                 "C vs ref", "C vs BLAS", "C vs torch", "Numba vs ref"], rows))
    if compile_times:
        rows = [[k, f"{cold:.2f}", f"{warm:.3f}"] for k, (cold, warm) in compile_times.items()]
        rows.append(["all kernels", f"{sum(c for c, _ in compile_times.values()):.1f}",
                     f"{sum(w for _, w in compile_times.values()):.2f}"])
        sections.append("### Numba first call (compile, or load from NUMBA_CACHE_DIR)\n\n" + table(
            ["kernel", "empty cache (s)", "new process, cache filled (s)"], rows))

    command = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python " + " ".join(
        [os.path.relpath(__file__, ROOT)] + (argv if argv is not None else sys.argv[1:]))
    title = "Kernels" if args.clock == "wall" else "Kernels, single-thread CPU time"
    note = ("Wall-clock time, as a user sees it. On a machine that others load, a 2-thread "
            "library waits at each barrier for a preempted thread, so compare 2-thread ratios "
            "only from a quiet run (load average well under 1), and use `--clock cpu` for the "
            "kernels themselves." if args.clock == "wall" else
            "CPU time of the calling thread with every library on 1 thread: waiting for a core "
            "is not counted, so these ratios hold on a loaded machine too.")
    note += (" In `auto` mode matmul runs on the C sgemm like every other kernel (`backend._AUTO_ORDER`), "
             "except single rows, which go to BLAS's gemv: see the sgemm table and docs/kernels.md.")
    report = "\n\n".join([f"## {title} (bench/kernels.py)\n\n{time.strftime('%Y-%m-%d')}, "
                          f"{rounds} interleaved rounds, pause {pause} s between blocks, "
                          f"{'CPU' if args.clock == 'cpu' else 'wall'}-clock time. {note}\n\n"
                          f"```\n{command}\n```\n\n{machine()}"] + sections)
    print()
    print(report)
    path = args.write or (None if args.quick else str(ROOT / "bench" / "RESULTS.md"))
    if path:
        tag = "kernels" if args.clock == "wall" else "kernels-cpu"
        common.write_section(Path(path), report, f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->")
        print(f"\nwritten to {path}")


MODULES = {}
CLOCK_NOTE = {"wall": "", "cpu": " (CPU time of the calling thread, every library on 1 thread)"}

if __name__ == "__main__":
    main()
