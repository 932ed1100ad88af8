"""Peak resident memory (VmHWM) of each workload, tinygpt against PyTorch, each measured in a fresh
subprocess per library per workload so that neither library's allocations count against the other.

Each child imports only its own library, notes its resident size after the imports (the baseline),
runs the workload (2 warm-up + 2 measured training steps or KV-cache generations) and reports its
peak, and the page faults and kernel (sys) share of CPU time of the measured steps. Both libraries'
children use the malloc settings of `tinygpt train` (common.keep_freed_memory) unless --default-malloc.
Usage (from the repo root): python bench/memory.py [--workload train-small gen-baby ...]
Not here: speed (train.py, generate.py).
"""

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

WORKLOADS = ["train-tiny", "train-small", "train-baby", "train-lstm", "gen-small", "gen-baby"]
LIBS = {"train-lstm": ("tinygpt", "tinygpt.keras", "torch")}  # others: tinygpt and torch
TARGET = 1.0  # peak tinygpt / peak torch, at most


def child(workload, lib, keep_memory=True):
    """Runs in the subprocess: -> {'baseline_kb', 'peak_kb'} or {'error'}."""
    kind, name = workload.split("-", 1)
    if lib == "torch":  # torch only: no tinygpt C extension, so torch keeps its own OpenMP runtime
        if common.import_torch() is None:
            return {"error": "torch not installed"}
    else:
        # the import cost is the baseline's, not the workload's (the C extension's included)
        import tinygpt.kernels.c_kernels  # noqa: F401
        import tinygpt.models  # noqa: F401
    common.set_threads(tinygpt=lib != "torch")
    if keep_memory:
        common.keep_freed_memory()
    baseline = common.rss_kb("VmRSS")
    if kind == "train":
        from bench import train
        sides, missing, _ = train.build(name, libs=(lib,), same_weights=False)
        if lib not in sides:
            return {"error": missing.get(lib, "not built")}
        step = sides[lib]
    else:
        from bench import generate
        sides, missing, _ = generate.build(name, libs=(lib,), same_weights=False)
        if f"{lib} kv" not in sides:
            return {"error": missing.get(lib, "not built")}
        step = sides[f"{lib} kv"]
    step()
    step()
    # a fresh process, as a user's: how many pages the steady state faults in, and the kernel
    # time that costs (freed arrays given back to the OS and faulted in again next step)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    step()
    step()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"baseline_kb": baseline, "peak_kb": common.rss_kb("VmHWM"),
            "minflt_per_step": (r1.ru_minflt - r0.ru_minflt) / 2,
            "sys_ms_per_step": (r1.ru_stime - r0.ru_stime) / 2 * 1e3}


def measure(workload, lib, keep_memory=True):
    """Run child() in a fresh interpreter and return its result dict."""
    cmd = [sys.executable, "-m", "bench.memory", "--child", workload, lib] + ([] if keep_memory else ["--default-malloc"])
    proc = subprocess.run(cmd, cwd=common.ROOT, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:120]}


def run(workloads, log=print, keep_memory=True):
    results = []
    for w in workloads:
        res = {"workload": w}
        for lib in LIBS.get(w, ("tinygpt", "torch")):
            res[lib] = measure(w, lib, keep_memory)
        results.append(res)
        log(f"  memory {w}: " + ", ".join(
            f"{lib} {v['peak_kb'] / 1024:.0f} MiB (+{(v['peak_kb'] - v['baseline_kb']) / 1024:.0f})"
            if "peak_kb" in v else f"{lib} n/a ({v['error']})" for lib, v in res.items() if lib != "workload"))
    return results


def _mib(v, delta=False):
    if "peak_kb" not in v:
        return None
    return f"{(v['peak_kb'] - v['baseline_kb'] if delta else v['peak_kb']) / 1024:.0f}"


HEADERS = ["workload", "tinygpt peak MiB (above imports)", "PyTorch peak MiB (above imports)",
           "ratio of peaks", "ratio above imports", "target",
           "page faults, kernel ms per step: tinygpt · torch"]


def _faults(v):
    if "minflt_per_step" not in v:
        return "–"
    return f"{v['minflt_per_step']:,.0f}, {v['sys_ms_per_step']:.0f} ms"


def rows(results):
    out = []
    for r in results:
        th = r.get("torch", {})
        for lib in [k for k in r if k.startswith("tinygpt")]:
            tg = r[lib]
            both = "peak_kb" in tg and "peak_kb" in th
            label = r["workload"] + ("" if lib == "tinygpt" else f" via {lib}")
            peak = tg["peak_kb"] / th["peak_kb"] if both else None
            above = ((tg["peak_kb"] - tg["baseline_kb"]) / max(th["peak_kb"] - th["baseline_kb"], 1)
                     if both else None)
            out.append([label, f"{_mib(tg)} (+{_mib(tg, True)})" if "peak_kb" in tg else f"n/a: {tg['error'][:50]}",
                        f"{_mib(th)} (+{_mib(th, True)})" if "peak_kb" in th else None,
                        common.fmt_ratio(peak, TARGET, lower_is_better=True),
                        common.fmt_ratio(above, TARGET, lower_is_better=True), f"≤ {TARGET:.1f}",
                        f"{_faults(tg)} · {_faults(th)}"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", nargs="+", choices=WORKLOADS, default=WORKLOADS)
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "LIB"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="accepted for symmetry; same work")
    parser.add_argument("--default-malloc", action="store_true",
                        help="glibc's default malloc settings instead of `tinygpt train`'s, for both")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, keep_memory=not args.default_malloc)))
        return
    results = run(args.workload, keep_memory=not args.default_malloc)
    print()
    print(common.table(HEADERS, rows(results)))


if __name__ == "__main__":
    main()
