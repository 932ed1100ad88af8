"""What every benchmark shares: thread setup, interleaved A/B timing, medians and ranges, the
NumPy sgemm yardstick for MFU, a description of the machine, and markdown tables.

Timing rule: tinygpt and PyTorch run alternately in the same run (round r runs A then B, round
r+1 runs B then A), each in a worker process of its own (run_sides; interleave() is the one-process
version), with a pause between blocks so that one library's idle, spinning threads are asleep
before the other starts. Not here: the workloads themselves (train.py, generate.py).
"""

import gc
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

THREADS = 2
# Only effective if numpy/torch were not imported yet; set_threads() below enforces it anyway.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAUSE = 0.3  # seconds between a NumPy block and a PyTorch block: idle BLAS/OpenMP threads spin


def set_threads(n=THREADS, tinygpt=True):
    """Every library in this process to n threads: OpenBLAS (threadpoolctl when installed),
    tinygpt's OpenMP C kernels (unless tinygpt=False), and torch if it is already imported.

    NOTE: loading tinygpt's C kernels loads an OpenMP runtime; whichever of tinygpt and torch
    loads one first, the other uses it too (see run_sides). A torch-only process passes
    tinygpt=False so that torch keeps its own."""
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:
        pass
    if tinygpt:
        try:
            from tinygpt.kernels import c_kernels
            c_kernels.set_num_threads(n)
        except Exception:  # no C build: nothing to set
            pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def import_torch(load=True):
    """torch (set to THREADS threads on first import), or None when it is not installed or
    BENCH_NO_TORCH is set: the benchmarks then report tinygpt alone. load=False only says whether
    it is installed (True), without importing it."""
    if os.environ.get("BENCH_NO_TORCH"):
        return None
    if not load:
        import importlib.util
        return True if importlib.util.find_spec("torch") else None
    first = "torch" not in sys.modules
    try:
        import torch
    except ImportError:
        return None
    if first:
        torch.set_num_threads(THREADS)
    return torch


def keep_freed_memory():
    """tinygpt.malloc_settings.keep_freed_memory() (glibc mallopt: freed arrays stay in the process), the
    setting `tinygpt train` and Trainer.run() use, applied to a bench process of either library so
    that both run on the same malloc settings -> True if it took effect.

    NOTE: malloc_settings.py is loaded from its file, not through `import tinygpt`: a torch worker must
    not import tinygpt (see set_threads), and a memory child's baseline must not include it."""
    spec = importlib.util.find_spec("tinygpt")  # a top-level find_spec imports nothing
    path = Path(spec.submodule_search_locations[0]) / "malloc_settings.py"
    module_spec = importlib.util.spec_from_file_location("_bench_tinygpt_malloc_settings", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.keep_freed_memory()


# ----- timing ----------------------------------------------------------------------------------

@dataclass
class Stat:
    """A rate (work per second) over rounds: median and the range."""

    median: float
    lo: float
    hi: float
    values: tuple

    @classmethod
    def of(cls, values):
        return cls(statistics.median(values), min(values), max(values), tuple(values))

    def __add__(self, other):
        """The samples of both, e.g. sgemm measured before and after the run."""
        return Stat.of(self.values + other.values)

    def fmt(self, digits=None):
        d = _digits(self.median) if digits is None else digits
        return f"{self.median:,.{d}f} ({self.lo:,.{d}f}–{self.hi:,.{d}f})"


def _digits(x):
    return 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleave(sides, rounds=5, steps=3, warmup=2, pause=PAUSE, work=1.0, clock="wall"):
    """sides: {name: fn} where fn() does one unit (a training step, a generation).
    Runs every side `warmup` times, then `rounds` rounds of `steps` calls per side, alternating
    the order each round. Returns {name: Stat of work/second}, one sample per round.

    clock="cpu" divides by this process's CPU time instead of wall time: with 1 thread that is
    the work itself, nearly unaffected by other users of the machine (with 2 threads it also
    counts idle threads spinning, so use it with --threads 1)."""
    now = CLOCKS[clock]
    for fn in sides.values():
        for _ in range(warmup):
            fn()
        time.sleep(pause)
    rates = {name: [] for name in sides}
    names = list(sides)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            gc.collect()
            time.sleep(pause)
            fn = sides[name]
            t0 = now()
            for _ in range(steps):
                fn()
            rates[name].append(work * steps / (now() - t0))
    return {name: Stat.of(values) for name, values in rates.items()}


# ----- one worker process per library ----------------------------------------------------------

def _worker(conn, lib, module, func, args, threads, keep_memory=True):
    """A worker's loop: build this library's sides with module.func(*args) -> (sides, missing,
    report), then run blocks on request: ("run", side, steps, clock) -> seconds; ("report",) ->
    report(); ("stop",). keep_memory: the malloc setting of `tinygpt train` (keep_freed_memory)."""
    import importlib
    if lib == "torch":  # torch first, so that it loads its own OpenMP runtime
        import_torch()
    if keep_memory:
        keep_freed_memory()
    set_threads(threads, tinygpt=lib != "torch")
    try:
        sides, missing, report = getattr(importlib.import_module(module), func)(*args)
    except Exception as error:  # report it to the parent instead of dying silently
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ready", list(sides), missing))
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            return
        if msg[0] == "report":
            conn.send(report() if report else None)
            continue
        _, side, steps, clock = msg
        now = CLOCKS[clock]
        t0 = now()
        for _ in range(steps):
            sides[side]()
        conn.send(now() - t0)


def start_worker(ctx, target, args):
    """Spawn target(connection, *args) and wait for its first message -> (process, connection, msg).
    A worker that could not set up sends ("error", why): it is joined, and (None, None, msg) returned."""
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    msg = parent.recv()
    if msg[0] == "error":
        proc.join()
        return None, None, msg
    return proc, parent, msg


def stop_workers(workers):
    """Ask each (process, connection) to stop, then end the process if it has not within 10 s."""
    for proc, conn in workers:
        try:
            conn.send(("stop",))
        except OSError:
            pass
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()


def run_sides(builders, rounds=5, steps=3, warmup=2, pause=PAUSE, work=1.0, clock="wall",
              threads=THREADS, keep_memory=True):
    """Like interleave(), but each library's sides live in a worker process of their own:
    builders = {lib: (module, func, args)}, func(*args) -> ({side: fn}, {side: why missing},
    report callable or None). Blocks alternate between workers exactly as interleave() does.
    Every worker, torch's too, calls keep_freed_memory() first unless keep_memory=False: the
    malloc settings a `tinygpt train` user gets, the same for both libraries. A builder may be
    (module, func, args, keep_memory) to override it, under a key "<lib> <tag>" (the A/B of
    train.py --malloc-ab); the key's first word says which library the worker is for.

    Why processes: in one process tinygpt and torch share whichever OpenMP runtime was loaded
    first (measured: torch's makes tinygpt's OpenMP threads spin, 10x slower KV decoding; the
    system one slows torch's training 25-45%) and share glibc malloc's adaptive thresholds, which
    decide how often freed arrays are returned to the OS and faulted in again.
    -> ({side: Stat of work/second}, {side: why missing}, {lib: report})"""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")  # a fresh interpreter: nothing inherited from this one
    workers, owner, missing = {}, {}, {}
    try:
        for lib, (module, func, args, *keep) in builders.items():
            proc, parent, msg = start_worker(ctx, _worker, (lib.split()[0], module, func, args, threads,
                                                            keep[0] if keep else keep_memory))
            if proc is None:
                missing[lib] = msg[1]
                continue
            workers[lib] = (proc, parent)
            missing.update(msg[2])
            owner.update({side: lib for side in msg[1]})

        def block(side, n):
            conn = workers[owner[side]][1]
            conn.send(("run", side, n, clock))
            return conn.recv()

        for side in owner:
            if warmup:
                block(side, warmup)
            time.sleep(pause)
        rates = {side: [] for side in owner}
        names = list(owner)
        for r in range(rounds):
            for side in (names if r % 2 == 0 else names[::-1]):
                time.sleep(pause)
                rates[side].append(work * steps / block(side, steps))
        reports = {}
        for lib, (_, conn) in workers.items():
            conn.send(("report",))
            reports[lib] = conn.recv()
        return {side: Stat.of(v) for side, v in rates.items()}, missing, reports
    finally:
        stop_workers(workers.values())


def sgemm_gflops(n=2048, repeats=5, clock="wall"):
    """NumPy float32 (n, n) @ (n, n) on this process's BLAS threads -> Stat of GFLOP/s."""
    now = CLOCKS[clock]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)  # warm up: threads started, pages touched
    values = []
    for _ in range(repeats):
        t0 = now()
        np.matmul(a, b, out=out)
        values.append(2 * n ** 3 / (now() - t0) / 1e9)
    return Stat.of(values)


def sgemm_fresh(threads=THREADS, clock="wall", n=2048, repeats=5):
    """sgemm_gflops() measured in a fresh interpreter. NOTE: not in this process, on purpose:
    freeing its 16 MiB arrays would raise glibc's dynamic mmap threshold and so hide the page
    faults that a training process without such a free pays on every step."""
    code = (f"from bench import common; common.set_threads({threads}); "
            f"print(list(common.sgemm_gflops({n}, {repeats}, {clock!r}).values))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    try:
        return Stat.of(json.loads(out.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        raise RuntimeError(f"sgemm subprocess failed: {out.stderr.strip()[-300:]}") from None


def ratio(a, b):
    """a / b of two Stats' medians, or None when either is missing."""
    return None if a is None or b is None or not b.median else a.median / b.median


# ----- the machine and its conditions -----------------------------------------------------------

def cpu_busy(interval=1.0):
    """Fraction of all CPUs busy over `interval` seconds, from /proc/stat (others' load when
    called while this process sleeps); None where /proc is absent."""
    def read():
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle
    try:
        t0, i0 = read()
        time.sleep(interval)
        t1, i1 = read()
    except OSError:
        return None
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return None


def blas_info():
    """[{'internal_api', 'version', 'architecture' (the kernel OpenBLAS runs), 'num_threads', ...}]"""
    try:
        from threadpoolctl import threadpool_info
        return [{k: v for k, v in pool.items() if k != "filepath"} for pool in threadpool_info()]
    except ImportError:
        cfg = np.show_config(mode="dicts")
        return [{"numpy show_config": cfg.get("Build Dependencies", {}).get("blas", {})}]


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return {k: fields.get(k, "").strip() for k in ("Model name", "CPU(s)", "Thread(s) per core",
                                                       "L2 cache", "L3 cache", "Flags")}
    except (OSError, subprocess.SubprocessError):
        return {"Model name": platform.processor(), "CPU(s)": str(os.cpu_count())}


def machine():
    """A dict describing this machine and software; printed and written to RESULTS.md."""
    import numba
    info = cpu_model()
    flags = info.pop("Flags", "").split()
    avx = [f for f in ("avx2", "fma", "avx512f") if f in flags]
    desc = {
        "cpu": f"{info.get('Model name')} ({info.get('CPU(s)')} CPUs, L2 {info.get('L2 cache')}, "
               f"L3 {info.get('L3 cache')}, {'/'.join(avx) or 'no AVX2'})",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": None,
        "blas": blas_info(),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                               "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                               "TINYGPT_BACKEND")},
    }
    if import_torch(load=False):
        from importlib.metadata import PackageNotFoundError, version
        try:
            desc["torch"] = version("torch")
        except PackageNotFoundError:
            desc["torch"] = "installed (version unknown)"
    try:
        from tinygpt import backend
        desc["tinygpt backends"] = {k: ok for k, (ok, _) in backend.availability().items()}
    except Exception as error:  # report, never fail the benchmark for it
        desc["tinygpt backends"] = f"{type(error).__name__}: {error}"
    return desc


def conditions(busy=None):
    """Load right now: the 1/5/15-minute load average and the busy fraction of the CPUs."""
    la = loadavg()
    text = f"load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}" if la else "load average n/a"
    if busy is not None:
        text += f", CPUs {100 * busy:.0f}% busy with other work just before the run"
    try:
        with open("/proc/pressure/cpu") as f:  # share of time some runnable task waited for a CPU
            avg10 = f.readline().split()[1].split("=")[1]
        text += f", CPU pressure (some, avg10) {avg10}%"
    except (OSError, IndexError):
        pass
    return text


def describe(desc):
    """The machine dict as markdown bullet lines."""
    blas = "; ".join(", ".join(f"{k}={v}" for k, v in pool.items()) for pool in desc["blas"])
    env = ", ".join(f"{k}={v}" for k, v in desc["env"].items() if v is not None) or "none set"
    return "\n".join([
        f"- CPU: {desc['cpu']}",
        f"- Python {desc['python']}, NumPy {desc['numpy']}, Numba {desc['numba']}, "
        f"PyTorch {desc['torch'] or 'not installed'}",
        f"- BLAS: {blas}",
        f"- tinygpt backends available: {desc.get('tinygpt backends')}",
        f"- Thread/BLAS environment: {env}",
    ])


def openmp_runtimes():
    """The OpenMP runtime libraries mapped into this process (e.g. torch's bundled libgomp)."""
    try:
        with open("/proc/self/maps") as f:
            return sorted({line.split()[-1] for line in f if "gomp" in line or "libiomp" in line})
    except OSError:
        return []


# ----- memory ----------------------------------------------------------------------------------

def rss_kb(field="VmHWM"):
    """This process's peak (VmHWM) or current (VmRSS) resident memory in KiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


# ----- output ----------------------------------------------------------------------------------

def table(headers, rows):
    """A markdown table (every cell str()-ed; None prints as an en dash)."""
    cells = [[("–" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells])


def fmt_ratio(r, target=None, lower_is_better=False):
    """'1.23 ✓' when r meets target (>= target, or <= it when lower_is_better)."""
    if r is None:
        return None
    if target is None:
        return f"{r:.2f}"
    ok = r <= target if lower_is_better else r >= target
    return f"{r:.2f} {'✓' if ok else '✗'}"


def save_json(path, data):
    Path(path).write_text(json.dumps(data, indent=2, default=str))


def write_section(path, body, begin, end, section=None):
    """Replace a benchmark's generated block in `path` (between the markers `begin` and `end`),
    keeping the rest, including anything written by hand after `end`. Creates the file, or appends
    the block (under the heading `section` when given) if the markers are absent."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + (f"\n\n{section}" if section else "") + f"\n\n{block}\n"
    path.write_text(text)
