"""`python -m bench`: every benchmark in one command, from the repo root.

  python -m bench            # full: 5 rounds; writes its section of bench/RESULTS.md (and
                             # bench/kernels.py writes the kernels section)
  python -m bench --quick    # 3 rounds, half the steps, nothing written
  python -m bench --only train,generate,memory,default-train,kernels,hf
  python -m bench distributed  # MPI data-parallel: 2 ranks vs 1 process (bench/distributed.py)
  python -m bench llmc --llmc PATH  # GPT-2 124M against llm.c's CPU trainer built from PATH (bench/llmc.py)

Runs: NumPy sgemm (the MFU yardstick, before and after), training (train.py), generation
(generate.py), peak memory (memory.py, subprocesses), the default `tinygpt train` raced against
PyTorch (default_train.py: 2000 steps, 200 with --quick), GPT-2 124M against Hugging Face
transformers and tokenizers (hf.py: its own section of RESULTS.md), then bench/kernels.py as a
subprocess.
Not here: the workloads (in those scripts).
"""

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

PARTS = ("train", "generate", "memory", "default-train", "hf", "kernels")
BEGIN, END = "<!-- train-generate:begin -->", "<!-- train-generate:end -->"
SECTION = "## Training and generation (python -m bench)"


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["distributed"]:
        from bench import distributed
        return distributed.main(args[1:])
    if args[:1] == ["llmc"]:
        from bench import llmc
        return llmc.main(args[1:])
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, half the steps, no file written")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    parser.add_argument("--threads", type=int, default=common.THREADS,
                        help=f"threads for every library (default {common.THREADS})")
    parser.add_argument("--clock", choices=list(common.CLOCKS), default="wall",
                        help="cpu: rates per CPU-second; with --threads 1 robust to a busy machine")
    parser.add_argument("--same-process", action="store_true",
                        help="both libraries in one process instead of one worker process each")
    parser.add_argument("--default-malloc", action="store_true",
                        help="glibc's default malloc settings in every worker instead of `tinygpt "
                             "train`'s (keep_freed_memory), for both libraries")
    args = parser.parse_args(argv)
    keep = not args.default_malloc
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    rounds = args.rounds or (3 if args.quick else 5)
    write = not (args.quick or args.no_write)
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))

    busy = common.cpu_busy()  # before anything of ours runs: the other users' load
    load_before = common.conditions(busy)
    if args.same_process:
        common.import_torch()  # torch first: it loads its own OpenMP runtime (see common.run_sides)
        common.set_threads(args.threads)
        if keep:
            common.keep_freed_memory()
    desc = common.machine()
    print(common.describe(desc))
    print(f"- Conditions at start: {load_before}")
    started = time.strftime("%Y-%m-%d %H:%M %Z")

    sgemm = common.sgemm_fresh(args.threads, args.clock)
    print(f"NumPy sgemm n=2048, {args.threads} threads: {sgemm.fmt()} GFLOP/s")
    speed_rows, notes = [], []
    if "train" in parts:
        from bench import train
        print("training:")
        results = train.run(list(train.WORKLOADS), rounds=rounds, quick=args.quick, sgemm=sgemm,
                            clock=args.clock, same_process=args.same_process, threads=args.threads,
                            keep_memory=keep)
        speed_rows += train.rows(results)
        for r in results:
            for side, why in r["missing"].items():
                notes.append(f"train {r['workload']}: {side} not run ({why})")
        if results:
            notes.append("OpenMP runtime in each worker: " + "; ".join(
                f"{lib}: {', '.join(Path(p).name + ' (' + str(Path(p).parent) + ')' for p in paths) or 'none'}"
                for lib, paths in results[0]["openmp"].items()))
    if "generate" in parts:
        from bench import generate
        print("generation:")
        results = generate.run(list(generate.WORKLOADS), rounds=rounds, quick=args.quick,
                               clock=args.clock, same_process=args.same_process, threads=args.threads,
                               keep_memory=keep)
        speed_rows += generate.rows(results)
        for r in results:
            if "agreement" in r:
                notes.append(f"generate {r['workload']}: greedy tokens equal before the first "
                             f"difference (of {generate.NEW_TOKENS}): {r['agreement']}")
    sgemm_after = common.sgemm_fresh(args.threads, args.clock) if {"train", "generate"} & set(parts) else None
    if sgemm_after:
        print(f"NumPy sgemm after: {sgemm_after.fmt()} GFLOP/s")
    load_after = common.conditions()

    mem_rows = []
    if "memory" in parts:
        from bench import memory
        print("memory:")
        mem_rows = memory.rows(memory.run(memory.WORKLOADS, keep_memory=keep))

    race = None
    if "default-train" in parts:
        from bench import default_train
        steps = default_train.QUICK_STEPS if args.quick else default_train.STEPS
        print(f"default train ({steps} steps, tinygpt and PyTorch in turns):")
        race = default_train.summary(default_train.run(steps, threads=args.threads))

    report = [f"Run {started}: `{command.strip()}`, {rounds} interleaved rounds per workload, "
              f"{common.PAUSE} s pause between blocks, {args.threads} thread(s) each, "
              + ("both libraries in one process, " if args.same_process else "one worker process per library, ")
              + f"{args.clock} clock" + (" (rates per CPU-second)" if args.clock == "cpu" else "") + ".", "",
              common.describe(desc),
              f"- NumPy sgemm (n=2048, float32, {args.threads} threads): {sgemm.fmt()} GFLOP/s before"
              + (f", {sgemm_after.fmt()} after" if sgemm_after else "") + " (MFU uses the 'before' median)",
              f"- Conditions: at start {load_before}; after the speed runs {load_after}"]
    if speed_rows:
        from bench.train import HEADERS
        report += ["", "### Speed (ratio = tinygpt / PyTorch medians, same run)", "",
                   common.table(HEADERS, speed_rows)]
    if mem_rows:
        from bench.memory import HEADERS as MEM_HEADERS
        report += ["", "### Peak resident memory (VmHWM, a fresh process per library per workload)", "",
                   common.table(MEM_HEADERS, mem_rows)]
    if race:
        report += ["", f"### The default `tinygpt train` against the same GPT in PyTorch (default_train.py, "
                       f"{default_train.QUICK_STEPS if args.quick else default_train.STEPS} steps, wall clock)", "",
                   race[0], ""] + [f"- {n}" for n in race[1]]
    if notes:
        report += [""] + [f"- {n}" for n in notes]
    text = "\n".join(report)
    print()
    print(text)
    if write and set(parts) & {"train", "generate", "memory", "default-train"}:  # else nothing to write
        path = common.ROOT / "bench" / "RESULTS.md"
        common.write_section(path, text, BEGIN, END, SECTION)
        print(f"\nwritten to {path}")

    if "hf" in parts:
        from bench import hf
        print("\nGPT-2 124M against transformers and tokenizers (hf.py):")
        hf_before = common.conditions(common.cpu_busy())
        hf_started = time.strftime("%Y-%m-%d %H:%M %Z")
        hf_results = hf.run(hf.PARTS, rounds=rounds, threads=args.threads)
        hf_text = hf.report(hf_results, rounds, args.threads, hf_started, command.strip(), hf_before,
                            common.conditions())
        print()
        print(hf_text)
        if write:
            common.write_section(common.ROOT / "bench" / "RESULTS.md", hf_text, hf.BEGIN, hf.END, hf.SECTION)

    if "kernels" in parts:
        kernels = common.ROOT / "bench" / "kernels.py"
        if not kernels.exists():
            print("bench/kernels.py not found: kernels skipped")
        else:
            cmd = [sys.executable, str(kernels)] + (["--quick"] if args.quick else [])
            if args.rounds:
                cmd += ["--rounds", str(args.rounds)]
            if not write and not args.quick:
                cmd += ["--write", "/dev/null"]
            print(f"\nkernels: {' '.join(cmd[1:])}", flush=True)
            return subprocess.call(cmd, cwd=common.ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
