"""The Numba kernels against their NumPy references, and PyTorch where it has the same op, at GPT and
LSTM sizes: median (and best) milliseconds over interleaved rounds, then how long Numba takes to
compile every kernel in a process with an empty cache, and to load them from that cache in the next.

    python -m bench.numba_kernels [--rounds 7] [--threads 2] [--only attention,lstm] [--no-compile]

Not here: the C kernels (bench/kernels.py compares every backend), or choosing a backend.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rng_arrays(rng, *shapes, scale=1.0):
    import numpy as np
    return [(rng.standard_normal(s) * scale).astype(np.float32) for s in shapes]


def workloads(torch):
    """{label: {implementation: callable}}, every callable doing the same work."""
    import numpy as np

    import tinygpt.ops  # noqa: F401  (registers the references)
    from tinygpt import backend
    from tinygpt.kernels import numba_kernels as nb

    ref = backend._references
    rng = np.random.default_rng(0)
    w = {}

    def pair(label, name, args, dout_of=None, torch_fn=None, torch_args=None):
        """forward `name`_forward on args, and backward from each implementation's own cache."""
        fwd_ref, fwd_nb = ref[name + "_forward"], getattr(nb, name + "_forward")
        w[f"{label} fwd"] = {"numpy": lambda: fwd_ref(*args), "numba": lambda: fwd_nb(*args)}
        out_ref, cache_ref = fwd_ref(*args)
        cache_nb = fwd_nb(*args)[1]
        dout = dout_of(out_ref) if dout_of else _rng_arrays(rng, np.shape(out_ref))[0]
        bwd_ref, bwd_nb = ref[name + "_backward"], getattr(nb, name + "_backward")
        w[f"{label} bwd"] = {"numpy": lambda: bwd_ref(dout, cache_ref), "numba": lambda: bwd_nb(dout, cache_nb)}
        w[f"{label} fwd+bwd"] = {"numpy": lambda: bwd_ref(dout, fwd_ref(*args)[1]),
                                 "numba": lambda: bwd_nb(dout, fwd_nb(*args)[1])}
        if torch is not None and torch_fn is not None:
            targs = [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in (torch_args or args)]
            tdout = torch.from_numpy(np.ascontiguousarray(dout)) if isinstance(dout, np.ndarray) else None

            def torch_fwd():
                with torch.no_grad():
                    torch_fn(*targs)

            def torch_fwd_bwd():
                leaves = [t.detach().requires_grad_() if isinstance(t, torch.Tensor) and t.is_floating_point()
                          else t for t in targs]
                out = torch_fn(*leaves)
                out.backward(tdout if tdout is not None and out.ndim else None)

            w[f"{label} fwd"]["torch"] = torch_fwd
            w[f"{label} fwd+bwd"]["torch"] = torch_fwd_bwd

    tf = torch.nn.functional if torch is not None else None
    q, k, v = _rng_arrays(rng, (8, 6, 256, 64), (8, 6, 256, 64), (8, 6, 256, 64))
    pair("attention B=8 nh=6 T=256 hs=64", "attention", (q, k, v),
         torch_fn=tf and (lambda q, k, v: tf.scaled_dot_product_attention(q, k, v, is_causal=True)))
    (x,) = _rng_arrays(rng, (2048, 1024), scale=3.0)
    pair("softmax (2048, 1024)", "softmax", (x,), torch_fn=tf and (lambda x: tf.softmax(x, -1)))
    pair("log_softmax (2048, 1024)", "log_softmax", (x,), torch_fn=tf and (lambda x: tf.log_softmax(x, -1)))
    (logits,) = _rng_arrays(rng, (2048, 8192), scale=3.0)
    targets = rng.integers(0, 8192, size=2048)
    pair("cross_entropy (2048, 8192)", "cross_entropy", (logits, targets),
         dout_of=lambda out: np.ones((), np.float32),
         torch_fn=tf and (lambda x, t: tf.cross_entropy(x, t)))
    x, g, b = _rng_arrays(rng, (8, 256, 384), (384,), (384,))
    pair("layernorm (8, 256, 384)", "layernorm", (x, g, b),
         torch_fn=tf and (lambda x, g, b: tf.layer_norm(x, (384,), g, b)))
    (x,) = _rng_arrays(rng, (8, 256, 1536))
    pair("gelu (8, 256, 1536)", "gelu", (x,), torch_fn=tf and (lambda x: tf.gelu(x, approximate="tanh")))
    lstm_args = tuple(_rng_arrays(rng, (64, 100, 64), (64, 128), (64, 128), (64, 512), (128, 512), (512,),
                                  scale=0.3))
    pair("lstm B=64 T=100 I=64 D=128", "lstm", lstm_args,
         dout_of=lambda out: (_rng_arrays(rng, out[0].shape)[0], None, None))
    if torch is not None:  # torch's LSTM keeps (4D, I) weights and two biases: same math, its own layout
        lstm = torch.nn.LSTM(64, 128, batch_first=True)
        tx = torch.from_numpy(lstm_args[0])

        def torch_lstm_forward():
            with torch.no_grad():
                lstm(tx)

        w["lstm B=64 T=100 I=64 D=128 fwd"]["torch"] = torch_lstm_forward
        w["lstm B=64 T=100 I=64 D=128 fwd+bwd"]["torch"] = lambda: lstm(tx)[0].sum().backward()
    params = _rng_arrays(rng, (4_000_000,), (4_000_000,))
    state = [params[0].copy(), np.zeros_like(params[0]), np.zeros_like(params[0])]
    hyper = (1e-3, 0.9, 0.999, 1e-8, 0.1, 5)
    w["adamw_update 4M params"] = {
        "numpy": lambda: ref["adamw_update"](state[0], params[1], state[1], state[2], *hyper),
        "numba": lambda: nb.adamw_update(state[0], params[1], state[1], state[2], *hyper)}
    if torch is not None:
        tp = torch.nn.Parameter(torch.from_numpy(params[0].copy()))
        tp.grad = torch.from_numpy(params[1])
        opt = torch.optim.AdamW([tp], lr=1e-3, weight_decay=0.1, foreach=False)
        w["adamw_update 4M params"]["torch"] = opt.step
    return w


def measure(fns, rounds):
    """Interleaved rounds (the order reverses every round): {implementation: [seconds...]}."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm: compile or load, first-touch memory
    names = list(fns)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
            time.sleep(0.05)  # let spinning BLAS/OpenMP threads of one library go idle
    return times


def compile_times():
    """warmup() in a process with an empty Numba cache, then in a second one that loads it."""
    script = ("import time, json; t = time.perf_counter(); from tinygpt.kernels import numba_kernels; "
              "i = time.perf_counter() - t; print(json.dumps({'import': i, **numba_kernels.warmup()}))")
    results = []
    with tempfile.TemporaryDirectory() as cache_dir:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": str(ROOT)}
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                 check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated substrings of workload labels")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile-time measurement")
    args = parser.parse_args()
    os.environ["NUMBA_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    print(f"threads: {args.threads}, rounds: {args.rounds}, load average before: {os.getloadavg()}")
    print("| workload | numpy ms | numba ms | numba speedup | torch ms |\n|---|---|---|---|---|")
    for label, fns in workloads(torch).items():
        if args.only and not any(s in label for s in args.only.split(",")):
            continue
        times = measure(fns, args.rounds)
        med = {n: statistics.median(t) * 1e3 for n, t in times.items()}
        best = {n: min(t) * 1e3 for n, t in times.items()}
        cell = lambda n: f"{med[n]:.2f} (best {best[n]:.2f})" if n in med else "-"  # noqa: E731
        print(f"| {label} | {cell('numpy')} | {cell('numba')} | {med['numpy'] / med['numba']:.1f}x | "
              f"{cell('torch')} |", flush=True)
    print(f"load average after: {os.getloadavg()}")
    if not args.no_compile:
        cold, warm = compile_times()
        print("\n| kernel | first call, empty cache (s) | first call, new process with cache (s) |\n|---|---|---|")
        for name in cold:
            print(f"| {name} | {cold[name]:.2f} | {warm[name]:.3f} |")
        total = lambda r: sum(v for k, v in r.items() if k != "import")  # noqa: E731
        print(f"| all kernels | {total(cold):.1f} | {total(warm):.2f} |")


if __name__ == "__main__":
    main()
