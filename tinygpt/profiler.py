"""`with tinygpt.profile() as prof:` — what each op of a step cost, and on which kernel it ran.

While a Profiler is on, `tensor.apply` hands every op to `Profiler.record`, which times the whole
apply (forward kernel plus graph bookkeeping) with perf_counter and thread_time and wraps the op's
backward so that backward is timed too when `loss.backward()` reaches it. The kernel registry
hands every kernel call to `Profiler._kernel`, which runs it (with the same NotImplemented
fallback as the registry) and notes which implementation actually ran: c, numba or numpy.
Kernels called outside any op (the optimizer's `adamw_update`) get records of their own.
When no profiler is on, each hook is one `is not None` check on a module global.
Not here: drawing the graph (viz.py), printing (cli.py), or more than one thread: the profiler
records the thread that entered it, and ops run by other threads meanwhile are attributed to it.
"""

import importlib
import json
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from tinygpt import backend as _backend
_tensor = importlib.import_module("tinygpt.tensor")  # the module: tinygpt.tensor is also a function


# ----- FLOPs per op: multiply-adds count 2; backward of a product costs twice its forward -------
def _matmul_flops(arrays, out):
    a = arrays[0]  # (..., M, K) @ (..., K, N) -> (..., M, N)
    return 2 * out.size * a.shape[-1]


def _attention_flops(arrays, out):
    q = arrays[0]  # (B, nh, T, hs): q @ kᵀ and att @ v, each 2 * B * nh * T * T * hs
    return 4 * q.size * q.shape[-2]


def _causal_self_attention_flops(arrays, out):
    B, T, C3 = arrays[0].shape  # the same two products over (B, nh, T, hs) heads, C = nh * hs
    return 4 * B * T * T * (C3 // 3)


def _layernorm_flops(arrays, out):
    return 8 * out.size  # mean, subtract, square, mean, rsqrt-scale, times w, plus b: ~8 per element


def _elementwise_flops(arrays, out):
    return out.size


FLOPS = {
    "matmul": _matmul_flops,
    "linear": _matmul_flops,  # x (..., K) @ w (K, N); the bias add is negligible beside it
    "attention": _attention_flops,
    "causal_self_attention": _causal_self_attention_flops,
    "layernorm": _layernorm_flops,
    "add": _elementwise_flops, "sub": _elementwise_flops, "mul": _elementwise_flops,
    "div": _elementwise_flops,
}
BACKWARD_FLOPS_FACTOR = 2  # d(a@b) needs dout@bᵀ and aᵀ@dout: two products of the forward's size


def nbytes(value):
    """Bytes of every NumPy array in `value`, looking inside tuples, lists and dicts (iteratively)."""
    total, stack, seen = 0, [value], set()
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            if id(item) not in seen:
                seen.add(id(item))
                total += item.nbytes
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return total


@dataclass
class OpRecord:
    """One op application (kind "op"), or one kernel called outside any op (kind "kernel")."""

    op: str
    kind: str = "op"
    backend: str = "numpy"  # the implementation that ran the forward ("c+numpy" if it mixed)
    backward_backend: str = ""
    start: float = 0.0  # seconds since the profile began
    forward_s: float = 0.0
    forward_cpu_s: float = 0.0
    backward_start: float = None
    backward_s: float = 0.0
    backward_cpu_s: float = 0.0
    backward_calls: int = 0
    flops: int = None  # forward FLOPs, when FLOPS knows the op
    output_bytes: int = 0
    cache_bytes: int = 0
    node: bool = False  # did this application add a Node to the graph?
    shapes: list = field(default_factory=list)  # input shapes ("const" for non-arrays)


def _backend_name(ran):
    """The backends a list of (kernel, backend) calls used: 'numpy' when no registered kernel ran."""
    names = sorted({backend for _, backend in ran})
    return "+".join(names) if names else "numpy"


class Profiler:
    """Records every op and kernel run inside `with Profiler() as prof:` (see the module docstring)."""

    def __init__(self):
        self.records = []
        self.events = []  # (seconds since start, live cache bytes, "forward op" / "backward op")
        self.wall_s = None  # perf_counter around the with-block
        self.cpu_s = None
        self._frames = []  # one list of (kernel, backend) per op or backward being run now
        self._live = 0
        self._previous = None
        self._thread = None

    # ----- install / uninstall ----------------------------------------------------------------
    def __enter__(self):
        if _tensor._profiler is self or self._previous is not None or self.wall_s is not None:
            raise RuntimeError("a Profiler records one with-block; use a new tinygpt.profile() "
                               "for another block or to nest one")
        self._previous = (_tensor._profiler, _backend._observer)
        self._thread = threading.get_native_id()
        self._t0, self._c0 = time.perf_counter(), time.thread_time()
        _tensor._profiler, _backend._observer = self, self._kernel
        return self

    def __exit__(self, *exc):
        _tensor._profiler, _backend._observer = self._previous  # also when the block raised
        self._previous = None
        self.wall_s = time.perf_counter() - self._t0
        self.cpu_s = time.thread_time() - self._c0
        return False

    # ----- the two hooks -------------------------------------------------------------------------
    def record(self, forward, backward, inputs, params):
        """tensor.apply with this profiler on: run apply itself, timed, with a timed backward."""
        op = forward.__name__.removesuffix("_forward")
        rec = OpRecord(op=op, shapes=[getattr(getattr(x, "data", x), "shape", "const") for x in inputs])
        arrays = []

        def timed_forward(*args, **kwargs):
            arrays.extend(args)
            out, cache = forward(*args, **kwargs)
            rec.cache_bytes = nbytes(cache)
            return out, cache

        _tensor._profiler = None  # the apply below must not come back here
        self._frames.append([])
        rec.start = time.perf_counter() - self._t0
        c0 = time.thread_time()
        try:
            result = _tensor.apply(timed_forward, self._timed_backward(backward, rec), *inputs, **params)
        finally:
            rec.forward_cpu_s = time.thread_time() - c0
            rec.forward_s = time.perf_counter() - self._t0 - rec.start
            rec.backend = _backend_name(self._frames.pop())
            _tensor._profiler = self
        outs = result if isinstance(result, tuple) else (result,)
        rec.output_bytes = sum(t.data.nbytes for t in outs)
        rec.node = outs[0]._node is not None
        if op in FLOPS:
            rec.flops = int(FLOPS[op](arrays, outs[0].data))
        if rec.node:  # the cache lives until backward frees it; without a Node it is dropped now
            self._live += rec.cache_bytes
            self.events.append((time.perf_counter() - self._t0, self._live, f"forward {op}"))
        self.records.append(rec)
        return result

    def _timed_backward(self, backward, rec):
        profiler = self

        def timed_backward(dout, cache):
            if _tensor._profiler is not profiler:  # backward after the with-block: just run it
                return backward(dout, cache)
            profiler._frames.append([])
            start, c0 = time.perf_counter(), time.thread_time()
            try:
                return backward(dout, cache)
            finally:
                end = time.perf_counter()
                rec.backward_cpu_s += time.thread_time() - c0
                rec.backward_s += end - start
                rec.backward_calls += 1
                if rec.backward_start is None:
                    rec.backward_start = start - profiler._t0
                rec.backward_backend = _backend_name(profiler._frames.pop())
                # backward frees the cache right after this returns (unless retain_graph=True)
                profiler._live -= rec.cache_bytes
                profiler.events.append((end - profiler._t0, profiler._live, f"backward {rec.op}"))

        timed_backward.__name__ = getattr(backward, "__name__", "backward")
        return timed_backward

    def _kernel(self, name, impl, reference, args, kwargs):
        """The registry's dispatch with this profiler on: run the chosen kernel, note which ran."""
        backend, fn = impl
        start, c0 = time.perf_counter(), time.thread_time()
        result = NotImplemented
        if fn is not reference:
            result = fn(*args, **kwargs)
        if result is NotImplemented:  # the faster version declined this input: the reference runs
            backend, result = "numpy", reference(*args, **kwargs)
        if self._frames:
            self._frames[-1].append((name, backend))
        else:  # called directly, not through an op: the optimizer's update, for one
            self.records.append(OpRecord(
                op=name, kind="kernel", backend=backend, start=start - self._t0,
                forward_s=time.perf_counter() - start, forward_cpu_s=time.thread_time() - c0,
                output_bytes=nbytes(result),
                shapes=[getattr(a, "shape", "const") for a in args]))
        return result

    # ----- what was recorded -----------------------------------------------------------------------
    @property
    def node_count(self):
        """Graph Nodes the profiled ops created."""
        return sum(r.node for r in self.records)

    def total_s(self):
        """Seconds inside recorded ops and kernels, forward plus backward."""
        return sum(r.forward_s + r.backward_s for r in self.records)

    def key_averages(self):
        """[{op, backend, calls, forward_s, backward_s, total_s, flops, ...}], one per (op, backend)."""
        rows = {}
        for r in self.records:
            row = rows.setdefault((r.op, r.backend), dict(
                op=r.op, backend=r.backend, calls=0, forward_s=0.0, backward_s=0.0, cpu_s=0.0,
                flops=None, output_bytes=0, cache_bytes=0))
            row["calls"] += 1
            row["forward_s"] += r.forward_s
            row["backward_s"] += r.backward_s
            row["cpu_s"] += r.forward_cpu_s + r.backward_cpu_s
            row["output_bytes"] += r.output_bytes
            row["cache_bytes"] += r.cache_bytes
            if r.flops is not None:
                done = r.flops * (1 + BACKWARD_FLOPS_FACTOR * min(r.backward_calls, 1))
                row["flops"] = (row["flops"] or 0) + done
        for row in rows.values():
            row["total_s"] = row["forward_s"] + row["backward_s"]
        return list(rows.values())

    def table(self, sort_by="total", limit=None):
        """A text table like torch.profiler's key_averages().table(); sort_by: total, forward,
        backward, calls, flops or op."""
        keys = {"total": "total_s", "forward": "forward_s", "backward": "backward_s",
                "calls": "calls", "flops": "flops", "op": "op"}
        if sort_by not in keys:
            raise ValueError(f"table(sort_by={sort_by!r}): expected one of {', '.join(keys)}")
        rows = self.key_averages()
        key = keys[sort_by]
        rows.sort(key=lambda r: r[key] if key == "op" else -(r[key] or 0))
        wall = self.wall_s if self.wall_s else self.total_s() or 1.0
        header = (f"{'op':24s} {'backend':8s} {'calls':>6s} {'forward ms':>11s} {'backward ms':>12s} "
                  f"{'total ms':>10s} {'% time':>7s} {'GFLOP/s':>8s}")
        lines = [header, "-" * len(header)]
        for r in rows[:limit]:
            gflops = f"{r['flops'] / r['total_s'] / 1e9:8.2f}" if r["flops"] and r["total_s"] else f"{'':8s}"
            lines.append(f"{r['op'][:24]:24s} {r['backend'][:8]:8s} {r['calls']:6d} "
                         f"{r['forward_s'] * 1e3:11.2f} {r['backward_s'] * 1e3:12.2f} "
                         f"{r['total_s'] * 1e3:10.2f} {100 * r['total_s'] / wall:6.1f}% {gflops}")
        lines.append("-" * len(header))
        lines.append(f"in ops: {self.total_s() * 1e3:.2f} ms of {wall * 1e3:.2f} ms profiled "
                     f"({100 * self.total_s() / wall:.1f}%); graph nodes: {self.node_count}; "
                     f"peak saved activations: {self.peak_bytes() / 2**20:.2f} MiB")
        return "\n".join(lines)

    def memory_timeline(self):
        """[(seconds since start, live bytes, event)]: bytes held by saved caches (the activations
        backward needs) after each forward op and each backward, assuming retain_graph=False."""
        return list(self.events)

    def peak_bytes(self):
        return max((b for _, b, _ in self.events), default=0)

    def export_chrome_trace(self, path):
        """Write Chrome trace JSON (chrome://tracing, ui.perfetto.dev): one "X" event per forward,
        backward and kernel, ts and dur in microseconds, plus a counter track of live bytes."""
        pid, tid = os.getpid(), self._thread or 0
        events = []
        for r in self.records:
            args = {"backend": r.backend, "shapes": [str(s) for s in r.shapes],
                    "output_bytes": r.output_bytes, "cache_bytes": r.cache_bytes, "flops": r.flops}
            events.append({"name": r.op, "cat": r.kind if r.kind == "kernel" else "forward",
                           "ph": "X", "ts": r.start * 1e6, "dur": r.forward_s * 1e6,
                           "pid": pid, "tid": tid, "args": args})
            if r.backward_start is not None:
                events.append({"name": f"{r.op}_backward", "cat": "backward", "ph": "X",
                               "ts": r.backward_start * 1e6, "dur": r.backward_s * 1e6,
                               "pid": pid, "tid": tid, "args": {"backend": r.backward_backend}})
        for t, live, _ in self.events:
            events.append({"name": "saved activations", "ph": "C", "ts": t * 1e6, "pid": pid,
                           "tid": tid, "args": {"bytes": live}})
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)
        os.replace(tmp, path)  # atomic: a half-written trace never sits at `path`
        return path


def profile():
    """`with tinygpt.profile() as prof:` ... then `print(prof.table())`."""
    return Profiler()


# ----- one training step, profiled ---------------------------------------------------------------
# The workloads of bench/train.py (copied: library code does not import bench/)
WORKLOADS = {
    "tiny": dict(gpt=dict(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=65), batch=32),
    "small": dict(gpt=dict(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=65), batch=16),
    "baby": dict(gpt=dict(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65), batch=8),
    # GPT-2 124M trained on B=4 windows of T=64 tokens (shorter than its 1024 positions)
    "gpt2-124m": dict(gpt=dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257),
                      batch=4, seq_len=64),
}


def _model_and_batch(config_name_or_model, batch_size):
    """-> (model, batch size, window length or None for the model's block_size)"""
    from tinygpt.models import GPT, GPTConfig
    if isinstance(config_name_or_model, GPT):
        return config_name_or_model, batch_size or 8, None
    if isinstance(config_name_or_model, GPTConfig):
        return GPT(config_name_or_model, seed=0), batch_size or 8, None
    if config_name_or_model == "default":  # `tinygpt train`'s own model (TrainConfig defaults)
        from tinygpt.train.config import TrainConfig
        c = TrainConfig()
        cfg = dict(n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd, block_size=c.block_size,
                   vocab_size=65, dropout=c.dropout, bias=c.bias)
        return GPT(GPTConfig(**cfg), seed=0), batch_size or c.batch_size, None
    if config_name_or_model not in WORKLOADS:
        raise ValueError(f"profile_training_step: config {config_name_or_model!r} is not one of "
                         f"{', '.join(['default', *WORKLOADS])}, a GPTConfig or a GPT")
    w = WORKLOADS[config_name_or_model]
    return GPT(GPTConfig(**w["gpt"]), seed=0), batch_size or w["batch"], w.get("seq_len")


def profile_training_step(config_name_or_model="tiny", batch_size=None, warmup=2, seed=0, backend=None,
                          seq_len=None):
    """Profile one GPT training step (forward, backward, gradient clip, AdamW step) on random
    tokens of seq_len (default: the config's, else block_size); `warmup` unprofiled steps first,
    so Numba's compile and first-touch pages are not in it (GPT-2 124M's second step still pays
    ~0.3 s of page faults for its 150 MiB embedding gradient: two steps are the default).
    backend: 'auto', 'numpy', 'numba' or 'c' for this call only; None keeps the current one."""
    if backend is not None:
        with _backend.use(backend):
            return profile_training_step(config_name_or_model, batch_size, warmup, seed, seq_len=seq_len)
    from tinygpt.optim import AdamW
    from tinygpt.optim.clip import clip_grad_norm_
    model, batch, default_len = _model_and_batch(config_name_or_model, batch_size)
    T, V = seq_len or default_len or model.config.block_size, model.config.vocab_size
    if not 1 <= T <= model.config.block_size:
        raise ValueError(f"profile_training_step: seq_len={T} must be between 1 and the model's "
                         f"block_size {model.config.block_size}")
    rng = np.random.default_rng(seed)
    params = list(model.parameters())
    optimizer = AdamW(params, lr=1e-3, weight_decay=0.1)

    def step():
        idx = rng.integers(0, V, size=(batch, T))  # (B, T)
        targets = rng.integers(0, V, size=(batch, T))
        _, loss = model(idx, targets)
        loss.backward()
        clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad()

    for _ in range(warmup):
        step()
    with Profiler() as prof:
        step()
    return prof
