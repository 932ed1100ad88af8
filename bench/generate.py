"""Greedy generation speed of tinygpt against PyTorch: batch 1, 200 new tokens, without a cache
(the whole sequence again for every token) and with the KV cache (one token per forward).

Both models have the same weights, so their greedy tokens should agree; the agreement is printed
(float32 rounding may flip a near-tie on random weights, so it is reported, not asserted).
Usage (from the repo root): python bench/generate.py [--workload small baby] [--quick]
Not here: sampling strategies (tinygpt's generate.py) or training (train.py).
"""

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from bench.train import WORKLOADS as TRAIN_WORKLOADS  # noqa: E402

NEW_TOKENS = 200
PROMPT = 1  # tokens
# NOTE: block_size 256 for both, so prompt + 200 tokens fit without cropping (small trains at T=128;
# 128 more rows of wpe cost nothing per token). Targets are ratios tinygpt/torch, KV cache only.
WORKLOADS = {
    "small": dict(gpt={**TRAIN_WORKLOADS["small"]["gpt"], "block_size": 256},
                  torch_ref={"nocache": 505, "kv": 1680}, target={"kv": 1.5}),
    "baby": dict(gpt={**TRAIN_WORKLOADS["baby"]["gpt"], "block_size": 256},
                 torch_ref={"nocache": 53, "kv": 197}, target={"kv": 1.0}),
}
MODES = ("nocache", "kv")


def prompt(spec):
    return np.random.default_rng(2).integers(0, spec["gpt"]["vocab_size"], (1, PROMPT))


def tinygpt_generate(model, idx, new_tokens, use_cache):
    """Greedy decoding with tinygpt: idx (1, T0) -> (1, T0 + new_tokens), through the user's path
    tinygpt.generate.generate when it exists, else a plain loop over the model."""
    try:
        from tinygpt.generate import generate
    except ImportError:
        generate = None
    if generate is not None:
        return generate(model, idx, new_tokens, temperature=0, use_cache=use_cache)
    from tinygpt import no_grad
    block = model.config.block_size
    with no_grad():
        if not use_cache:
            for _ in range(new_tokens):
                logits, _ = model(idx[:, -block:])  # (1, T, V)
                nxt = logits.data[:, -1].argmax(-1)  # (1,)
                idx = np.concatenate([idx, nxt[:, None]], axis=1)
            return idx
        cache = model.make_kv_cache(idx.shape[0])
        logits, _ = model(idx, kv_cache=cache)  # the prompt, once
        for _ in range(new_tokens):
            nxt = logits.data[:, -1].argmax(-1)
            idx = np.concatenate([idx, nxt[:, None]], axis=1)
            logits, _ = model(nxt[:, None], kv_cache=cache)  # (1, 1) -> (1, 1, V)
        return idx


def build(name, libs=("tinygpt", "torch"), same_weights=True, new_tokens=NEW_TOKENS):
    """-> ({f'{lib} {mode}': generate-once fn}, missing, outputs): each fn stores its tokens in
    outputs[side] so that agreement can be checked."""
    spec = WORKLOADS[name]
    sides, missing, outputs, tg = {}, {}, {}, None
    idx = prompt(spec)
    if "tinygpt" in libs:
        from tinygpt.models import GPT, GPTConfig
        tg = GPT(GPTConfig(**spec["gpt"]), seed=0).eval()
        for mode in MODES:
            def gen(mode=mode):
                outputs[f"tinygpt {mode}"] = tinygpt_generate(tg, idx, new_tokens, mode == "kv")
            sides[f"tinygpt {mode}"] = gen
    if "torch" in libs:
        torch = common.import_torch()
        if torch is None:
            missing["torch"] = "torch not installed"
        else:
            from bench.torch_models import TorchGPT, load_tinygpt_gpt
            tm = TorchGPT(**spec["gpt"]).eval()
            if same_weights:  # the tinygpt side's weights: same seed, even in another process
                from tinygpt.models import GPT, GPTConfig
                src = tg or GPT(GPTConfig(**spec["gpt"]), seed=0)
                load_tinygpt_gpt(tm, {n: p.data for n, p in src.named_parameters()})
                del src
            t_idx = torch.from_numpy(idx)
            for mode in MODES:
                def gen(mode=mode):
                    outputs[f"torch {mode}"] = tm.generate(t_idx, new_tokens, use_cache=mode == "kv").numpy()
                sides[f"torch {mode}"] = gen
    return sides, missing, outputs


def worker_build(name, lib):
    """In a worker process (common.run_sides): this library's sides; the report is its tokens."""
    sides, missing, outputs = build(name, libs=(lib,))
    return sides, missing, lambda: dict(outputs)


def agreement(outputs):
    """{pair: how many of the generated tokens agree} for the pairs that should be identical."""
    pairs = [("tinygpt nocache", "tinygpt kv"), ("tinygpt kv", "torch kv"), ("torch nocache", "torch kv")]
    out = {}
    for a, b in pairs:
        if a in outputs and b in outputs:
            x, y = outputs[a][0, PROMPT:], outputs[b][0, PROMPT:]
            first = np.flatnonzero(x != y)
            out[f"{a} = {b}"] = len(x) if first.size == 0 else int(first[0])  # tokens equal before the first difference
    return out


def run(names, rounds=5, quick=False, log=print, clock="wall", same_process=False,
        threads=common.THREADS, keep_memory=True):
    """Time each workload and mode, tinygpt and torch alternating; each library in a worker
    process of its own (common.run_sides) unless same_process=True."""
    results = []
    for name in names:
        spec = WORKLOADS[name]
        kw = dict(rounds=rounds, steps=1, warmup=1, work=NEW_TOKENS, clock=clock)
        if same_process:
            sides, missing, outputs = build(name)
            stats = common.interleave(sides, **kw)
        else:
            libs = ("tinygpt",) + (() if common.import_torch(load=False) is None else ("torch",))
            builders = {lib: ("bench.generate", "worker_build", (name, lib)) for lib in libs}
            stats, missing, reports = common.run_sides(builders, threads=threads, keep_memory=keep_memory, **kw)
            outputs = {k: v for r in reports.values() if r for k, v in r.items()}
            if "torch" not in libs:
                missing["torch"] = "torch not installed"
        for side, why in missing.items():
            log(f"  generate {name}: {side} skipped ({why})")
        for mode in MODES:
            by_lib = {s.split()[0]: v for s, v in stats.items() if s.endswith(mode)}
            results.append(dict(workload=name, mode=mode, stats=by_lib, missing=missing,
                                target=spec["target"].get(mode), torch_ref=spec["torch_ref"][mode]))
            log(f"  generate {name} {mode}: " + ", ".join(f"{s} {v.fmt()} tok/s" for s, v in by_lib.items()))
        agree = agreement(outputs)
        results[-1]["agreement"] = agree
        log(f"  generate {name}: greedy tokens equal before the first difference: {agree}")
    return results


def rows(results):
    out = []
    for r in results:
        tg, th = r["stats"].get("tinygpt"), r["stats"].get("torch")
        target = r["target"]
        out.append([f"generate {r['workload']} {'KV cache' if r['mode'] == 'kv' else 'no cache'} (tok/s)",
                    tg.fmt() if tg else None, th.fmt() if th else None,
                    common.fmt_ratio(common.ratio(tg, th), target),
                    f"≥ {target:.1f}" if target else "–", "", None])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (3 with --quick)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=common.THREADS)
    parser.add_argument("--clock", choices=list(common.CLOCKS), default="wall",
                        help="cpu: rates per CPU-second; with --threads 1 robust to a busy machine")
    parser.add_argument("--same-process", action="store_true",
                        help="both libraries in this process instead of one worker process each")
    parser.add_argument("--default-malloc", action="store_true",
                        help="glibc's default malloc settings instead of the `tinygpt` command's")
    args = parser.parse_args(argv)
    if args.same_process:
        common.import_torch()  # torch first: it loads its own OpenMP runtime (see common.run_sides)
        common.set_threads(args.threads)
        if not args.default_malloc:
            common.keep_freed_memory()
    from bench.train import HEADERS
    results = run(args.workload, rounds=args.rounds or (3 if args.quick else 5), quick=args.quick,
                  clock=args.clock, same_process=args.same_process, threads=args.threads,
                  keep_memory=not args.default_malloc)
    print()
    print(common.table(HEADERS, rows(results)))


if __name__ == "__main__":
    main()
