"""Data-parallel training on MPI against one process: 2 ranks x 1 thread vs 1 process x 2 threads,
the same global batch (bench/train.py's tiny, small and baby GPTs), tokens/s; and per step the
communication time, how much of it backward hides (overlap), and ring-allreduce estimates for
8 and 64 ranks from the bytes each step moves. Usage (from the repo root):

  python -m bench distributed [--quick] [--rounds 3] [--workload tiny,small,baby] [--no-write]

Each side runs in processes of its own (mpiexec for the 2 ranks), alternating per round.
Not here: the training loop itself (tinygpt.train; this times the same step on fixed batches).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

WORKLOADS = ("tiny", "small", "baby")
BEGIN, END = "<!-- distributed:begin -->", "<!-- distributed:end -->"
SECTION = "## Data-parallel training on MPI (python -m bench distributed)"
LINKS_GBIT = (10, 100)
RANKS = (8, 64)
LATENCY = 5e-6  # seconds per message hop assumed for the ring estimate (a typical 10-100 Gbit/s NIC)


# ----- the worker: one side of one round, in its own process ----------------------------------

def worker(workload, steps, warmup):
    """Time `steps` training steps of `workload` in this process (or this MPI rank) -> a JSON line
    on stdout (rank 0): step seconds, and under MPI the exposed and standalone allreduce times."""
    from bench.train import GRAD_CLIP, LR, WORKLOADS as SPECS, batches
    from tinygpt import distributed
    from tinygpt.distributed.buckets import GradBuckets
    from tinygpt.models import GPT, GPTConfig
    from tinygpt.optim import clip_grad_norm_

    common.keep_freed_memory()
    spec = SPECS[workload]
    world = distributed.get_world()
    rank, size = (world.rank, world.size) if world else (0, 1)
    model = GPT(GPTConfig(**spec["gpt"], dropout=0.0), seed=0)
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=LR, betas=(0.9, 0.95))
    params = model.parameters()
    buckets = GradBuckets(params, world) if world else None
    data = batches(spec)
    b = spec["batch"] // size
    step_times, exposed, backward = [], [], []
    for i in range(warmup + steps):
        x, y = data[i % len(data)]
        x, y = x[rank * b:(rank + 1) * b], y[rank * b:(rank + 1) * b]  # (b, T): this rank's shard
        t0 = time.perf_counter()
        _, loss = model(x, y)
        if buckets is None:
            loss.backward()
        else:
            buckets.backward(loss)
        clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        opt.zero_grad()
        if i >= warmup:
            step_times.append(time.perf_counter() - t0)
            if buckets is not None:
                exposed.append(buckets.stats["exposed_seconds"])
                backward.append(buckets.stats["backward_seconds"])
    out = {"step": step_times, "params": sum(p.data.size for p in params)}
    if buckets is not None:
        # the same allreduces with nothing to hide them behind: what communication costs alone
        world.barrier()
        alone = []
        for _ in range(max(3, steps)):
            t0 = time.perf_counter()
            world.wait([world.comm.Iallreduce(world.MPI.IN_PLACE, bk.flat, op=world.MPI.SUM)
                        for bk in buckets.buckets], "the standalone allreduce")
            alone.append(time.perf_counter() - t0)
            for bk in buckets.buckets:
                bk.flat[:] = 0.0
        out.update(exposed=exposed, backward=backward, alone=alone, bytes=buckets.nbytes,
                   buckets=len(buckets.buckets))
    if rank == 0:
        print("RESULT " + json.dumps(out), flush=True)


def _env(threads, ranks):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = str(common.ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_side(workload, ranks, threads, steps, warmup):
    """One side of one round in fresh processes -> the worker's dict."""
    cmd = [sys.executable, "-m", "bench.distributed", "--worker", workload, "--steps", str(steps),
           "--warmup", str(warmup)]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks)] + cmd
    out = subprocess.run(cmd, cwd=common.ROOT, env=_env(threads, ranks), capture_output=True, text=True,
                         timeout=1800)
    lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else "mpiexec"


# ----- estimates for bigger jobs ----------------------------------------------------------------

def ring_seconds(nbytes, ranks, gbit):
    """A ring allreduce of nbytes over `ranks`: each rank sends and receives 2 (R-1)/R of the data
    in 2 (R-1) hops (reduce-scatter, then allgather), at `gbit` Gbit/s, plus LATENCY per hop."""
    moved = 2 * (ranks - 1) / ranks * nbytes
    return moved / (gbit * 1e9 / 8) + 2 * (ranks - 1) * LATENCY, moved


# ----- the whole benchmark ----------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default=",".join(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer steps, nothing written")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.steps, args.warmup)
        return 0
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        print("mpi4py is not installed (pip install 'tinygpt[mpi]'): nothing to measure")
        return 1
    workloads = [w for w in args.workload.split(",") if w]
    rounds = args.rounds or (2 if args.quick else 3)
    write = not (args.quick or args.no_write)
    from bench.train import WORKLOADS as SPECS

    busy = common.cpu_busy()
    before = common.conditions(busy)
    desc = common.machine()
    print(common.describe(desc))
    print(f"- Conditions at start: {before}")
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    speed, comm, estimates = [], [], []
    for name in workloads:
        spec = SPECS[name]
        steps = max(2, (spec["steps"] * (1 if args.quick else 2)))
        sides = {"1 x 2 threads": (1, 2), "2 ranks x 1 thread": (2, 1)}
        results = {side: [] for side in sides}
        for r in range(rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for side in order:
                results[side].append(run_side(name, *sides[side], steps, args.warmup))
                time.sleep(common.PAUSE)
        tokens = spec["batch"] * spec["gpt"]["block_size"]
        rate = {side: common.Stat.of([tokens / statistics.median(res["step"]) for res in runs])
                for side, runs in results.items()}
        ratio = [b / a for a, b in zip(rate["1 x 2 threads"].values, rate["2 ranks x 1 thread"].values)]
        speed.append([name, f"{spec['batch']} x {spec['gpt']['block_size']}", rate["1 x 2 threads"].fmt(),
                      rate["2 ranks x 1 thread"].fmt(), f"{statistics.median(ratio):.2f} "
                      f"({min(ratio):.2f}–{max(ratio):.2f})"])
        mpi = results["2 ranks x 1 thread"]
        step = statistics.median(s for res in mpi for s in res["step"])
        exposed = statistics.median(e for res in mpi for e in res["exposed"])
        alone = statistics.median(a for res in mpi for a in res["alone"])
        nbytes = mpi[0]["bytes"]
        comm.append([name, f"{mpi[0]['params']:,}", f"{nbytes / 2**20:.2f} MiB in {mpi[0]['buckets']} buckets",
                     f"{1000 * step:.1f}", f"{1000 * alone:.2f}", f"{1000 * exposed:.2f}",
                     f"{100 * max(0.0, 1 - exposed / alone):.0f}%" if alone > 0 else "–",
                     f"{100 * exposed / step:.1f}%"])
        for ranks in RANKS:
            times = [ring_seconds(nbytes, ranks, g) for g in LINKS_GBIT]
            estimates.append([name, ranks, f"{times[0][1] / 2**20:.2f} MiB"]
                             + [f"{1000 * t:.2f} ms ({100 * t / step:.0f}% of a step)" for t, _ in times])
        print(f"{name}: {speed[-1][2:]} | {comm[-1][3:]}", flush=True)
    after = common.conditions()
    report = [f"Run {started}: `python -m bench distributed {' '.join(argv if argv is not None else sys.argv[1:])}`"
              f", {rounds} rounds, the two sides alternating, each a fresh set of processes; the global "
              f"batch is bench/train.py's (2 ranks take half each); medians with the range over rounds.", "",
              common.describe(desc), f"- Conditions: at start {before}; at the end {after}",
              "- NOTE: a 2-core machine shared with other users: the two sides compete for the same 2 cores "
              "with whatever else runs, so the ratios are the numbers to read, not the absolute rates.", "",
              "### Tokens/s, the same global batch", "",
              common.table(["workload", "global batch", "1 process x 2 threads", "2 ranks x 1 thread",
                            "ratio (2 ranks / 1 process)"], speed), "",
              "### Communication per step (2 ranks, medians)", "",
              "`allreduce alone`: the same buckets allreduced with nothing to overlap; `exposed`: the wait "
              "after backward for the allreduces still running; overlap = 1 - exposed / alone.", "",
              common.table(["workload", "parameters", "gradients sent", "step ms", "allreduce alone ms",
                            "exposed ms", "overlap", "exposed / step"], comm), "",
              f"### Ring allreduce estimates for bigger jobs (bytes each rank sends per step; "
              f"{LATENCY * 1e6:.0f} µs per hop; % of the 2-rank step measured above)", "",
              common.table(["workload", "ranks", "sent per rank"] + [f"{g} Gbit/s" for g in LINKS_GBIT],
                           estimates)]
    text = "\n".join(report)
    print()
    print(text)
    if write:
        path = common.ROOT / "bench" / "RESULTS.md"
        common.write_section(path, text, BEGIN, END, SECTION)
        print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
