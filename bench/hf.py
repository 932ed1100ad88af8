"""tinygpt against Hugging Face transformers and tokenizers on GPT-2 124M shapes (random weights):
loading a safetensors folder, KV-cached greedy generation at batch 1 and 8, a 512-token prefill,
and encoding 2 MB of text with a GPT-2-style tokenizer.json.

Both sides read the same folder (written once by transformers, or by tinygpt without it), so they
run the same weights; each library runs in a worker process of its own, in interleaved rounds
(common.run_sides). Usage: python bench/hf.py [--parts load,generate,prefill,tokenizer] [--quick]
Not here: training (train.py) or tinygpt's own GPT against PyTorch (generate.py).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench import common  # noqa: E402

# no progress bars from transformers in the workers (they import this module first)
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# GPT-2 124M; the folder is cached under FOLDER and rewritten when absent
GPT2_124M = dict(n_layer=12, n_head=12, n_embd=768, n_positions=1024, vocab_size=50257)
FOLDER = Path(tempfile.gettempdir()) / "tinygpt-bench-hf-gpt2-124m"
PROMPT, NEW_TOKENS = 32, 64  # generation: prompt tokens per row, greedy new tokens per row
PREFILL = 512
TOKENIZER_MB, TOKENIZER_VOCAB = 2.0, 50257
PARTS = ("load", "generate", "prefill", "tokenizer")
TARGETS = {"generate b1": 1.5, "generate b8": 1.5, "prefill 512": 1.0, "tokenizer encode": 1.0,
           "tokenizer encode cold": 1.0}
HEADERS = ["workload", "tinygpt median (min–max)", "transformers median (min–max)", "ratio", "target"]


def have_transformers():
    import importlib.util
    return not os.environ.get("BENCH_NO_TORCH") and importlib.util.find_spec("transformers") is not None


# ----- the folder both sides read ---------------------------------------------------------------

def make_folder(folder=FOLDER):
    """config.json + model.safetensors of a random GPT-2 124M, and a tokenizer.json trained by HF
    `tokenizers` on the benchmark text (tinygpt's GPT2Tokenizer without it) -> folder."""
    folder = Path(folder)
    if not (folder / "model.safetensors").exists():
        folder.mkdir(parents=True, exist_ok=True)
        if have_transformers():
            import torch
            from transformers import GPT2Config, GPT2LMHeadModel
            torch.manual_seed(0)
            GPT2LMHeadModel(GPT2Config(**GPT2_124M)).save_pretrained(folder)
        else:
            from tinygpt.models import GPT, GPTConfig
            c = GPT2_124M
            GPT(GPTConfig(n_layer=c["n_layer"], n_head=c["n_head"], n_embd=c["n_embd"],
                          block_size=c["n_positions"], vocab_size=c["vocab_size"]), seed=0).save_pretrained(folder)
    if not (folder / "tokenizer.json").exists():
        text = corpus()
        try:
            from tokenizers import ByteLevelBPETokenizer
            hf = ByteLevelBPETokenizer()
            hf.train_from_iterator([text], vocab_size=TOKENIZER_VOCAB, special_tokens=["<|endoftext|>"],
                                   show_progress=False)
            hf.save(str(folder / "tokenizer.json"))
        except ImportError:
            from tinygpt.tokenizers import GPT2_SPLIT_PATTERN, ByteLevelBPETokenizer, GPT2Tokenizer
            tok = ByteLevelBPETokenizer.train(text, TOKENIZER_VOCAB, ["<|endoftext|>"], GPT2_SPLIT_PATTERN)
            GPT2Tokenizer.from_byte_bpe(tok).save_hf_json(folder / "tokenizer.json")
    return folder


def corpus(megabytes=TOKENIZER_MB):
    from bench.tokenizer_bench import corpus as mixed
    return mixed(megabytes)


def prompts(batch, length):
    return np.random.default_rng(batch).integers(0, GPT2_124M["vocab_size"], (batch, length))


# ----- each library's sides, built in its worker ---------------------------------------------

def tinygpt_sides(part, folder):
    from tinygpt.models import GPT
    outputs = {}
    if part == "load":
        return {"tinygpt load": lambda: GPT.from_pretrained(folder)}, {}, None
    if part == "tokenizer":
        from tinygpt.tokenizers import GPT2Tokenizer
        tok, text = GPT2Tokenizer.from_pretrained(folder), corpus()

        def encode(cold=False):
            if cold:
                tok._cache.clear()
            outputs["ids"] = tok.encode(text, allowed_special="all")
        outputs["n_bytes"] = len(text.encode("utf-8"))
        return ({"tinygpt tokenizer encode": encode,
                 "tinygpt tokenizer encode cold": lambda: encode(True)}, {}, lambda: dict(outputs))
    from tinygpt.generate import generate
    from tinygpt.models.gpt_inference import GPTDecoder
    model = GPT.from_pretrained(folder).eval()
    if part == "prefill":
        idx = prompts(1, PREFILL)

        def prefill():
            outputs["prefill"] = GPTDecoder(model).logits(idx, model.make_kv_cache(1))  # (1, V)
        return {"tinygpt prefill 512": prefill}, {}, lambda: dict(outputs)
    sides = {}
    for batch in (1, 8):
        idx = prompts(batch, PROMPT)

        def gen(idx=idx, batch=batch):
            outputs[f"b{batch}"] = generate(model, idx, NEW_TOKENS, temperature=0)[:, PROMPT:]
        sides[f"tinygpt generate b{batch}"] = gen
    return sides, {}, lambda: dict(outputs)


def transformers_sides(part, folder):
    import torch
    outputs = {}
    if part == "tokenizer":
        from tokenizers import Tokenizer
        tok, text = Tokenizer.from_file(str(Path(folder) / "tokenizer.json")), corpus()

        def encode(cold=False):
            if cold:
                tok.model._clear_cache()
            outputs["ids"] = tok.encode(text).ids
        return ({"transformers tokenizer encode": encode,
                 "transformers tokenizer encode cold": lambda: encode(True)}, {}, lambda: dict(outputs))
    from transformers import GPT2LMHeadModel
    if part == "load":
        return {"transformers load": lambda: GPT2LMHeadModel.from_pretrained(folder)}, {}, None
    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    if part == "prefill":
        idx = torch.from_numpy(prompts(1, PREFILL))

        @torch.no_grad()
        def prefill():  # what generate's first step runs: fill the cache, score the last position
            out = model(idx, use_cache=True, logits_to_keep=1)
            outputs["prefill"] = out.logits[:, -1].numpy()
        return {"transformers prefill 512": prefill}, {}, lambda: dict(outputs)
    sides = {}
    for batch in (1, 8):
        idx = torch.from_numpy(prompts(batch, PROMPT))
        mask = torch.ones_like(idx)

        def gen(idx=idx, mask=mask, batch=batch):
            out = model.generate(idx, attention_mask=mask, max_new_tokens=NEW_TOKENS,
                                 min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0)
            outputs[f"b{batch}"] = out[:, PROMPT:].numpy()
        sides[f"transformers generate b{batch}"] = gen
    return sides, {}, lambda: dict(outputs)


def worker_build(lib, part, folder):
    """In a worker process (common.run_sides): one library's sides for one part."""
    return (tinygpt_sides if lib == "tinygpt" else transformers_sides)(part, folder)


# ----- running and reporting -----------------------------------------------------------------

WORK = {"load": 1, "generate": None, "prefill": PREFILL, "tokenizer": None}


def run(parts=PARTS, rounds=5, log=print, threads=common.THREADS, folder=FOLDER):
    """-> list of result dicts, one per workload: name, unit, stats {lib: Stat}, notes."""
    folder = make_folder(folder)
    libs = ("tinygpt",) + (("transformers",) if have_transformers() else ())
    results = []
    for part in parts:
        builders = {lib: ("bench.hf", "worker_build", (lib, part, str(folder))) for lib in libs}
        # one unit of work per call: a load, a generation, a prefill, an encode of the text; the
        # rates are rescaled per workload below (tokens/s, MB/s, seconds per load)
        stats, missing, reports = common.run_sides(builders, rounds=rounds, steps=1,
                                                   warmup=1, threads=threads, work=1.0)
        for side, why in missing.items():
            log(f"  hf {part}: {side} skipped ({why})")
        reports = {lib: r or {} for lib, r in reports.items()}
        for side in dict.fromkeys(s.split(" ", 1)[1] for s in stats):  # in order, once each
            by_lib = {lib: stats.get(f"{lib} {side}") for lib in libs}
            notes = []
            if part == "load":
                by_lib = {lib: invert(s) for lib, s in by_lib.items()}
                unit = "s per load, lower is better"
            elif part == "generate":
                batch = int(side.split("b")[-1])
                by_lib = {lib: scale(s, batch * NEW_TOKENS) for lib, s in by_lib.items()}
                unit = f"new tok/s, prompt {PROMPT}, {NEW_TOKENS} new, greedy"
                notes.append(agreement(reports, f"b{batch}"))
            elif part == "prefill":
                by_lib = {lib: scale(s, PREFILL) for lib, s in by_lib.items()}
                unit = "tok/s, KV cache filled, last position scored"
                notes.append(prefill_agreement(reports))
            else:
                mb = reports["tinygpt"].get("n_bytes", 0) / 1e6
                by_lib = {lib: scale(s, mb) for lib, s in by_lib.items()}
                unit = f"MB/s on {mb:.1f} MB, one str" + (", cache cleared before each" if side.endswith("cold") else "")
                notes.append(tokenizer_agreement(reports))
            results.append(dict(name=side, unit=unit, stats=by_lib, notes=[n for n in notes if n],
                                lower_is_better=part == "load"))
            log(f"  hf {side} ({unit}): " + ", ".join(f"{lib} {s.fmt()}" for lib, s in by_lib.items() if s))
    return results


def scale(stat, k):
    return None if stat is None else common.Stat.of([v * k for v in stat.values])


def invert(stat):
    return None if stat is None else common.Stat.of([1 / v for v in stat.values])


def agreement(reports, key):
    a, b = reports.get("tinygpt", {}).get(key), reports.get("transformers", {}).get(key)
    if a is None or b is None:
        return None
    equal = [int(np.argmax(x != y)) if (x != y).any() else len(x) for x, y in zip(a, b)]
    return f"greedy tokens equal before the first difference, per row (of {NEW_TOKENS}): {equal}"


def prefill_agreement(reports):
    a, b = reports.get("tinygpt", {}).get("prefill"), reports.get("transformers", {}).get("prefill")
    if a is None or b is None:
        return None
    return f"last-position logits: max |difference| {float(np.abs(a - b).max()):.2e}"


def tokenizer_agreement(reports):
    a, b = reports.get("tinygpt", {}).get("ids"), reports.get("transformers", {}).get("ids")
    if a is None or b is None:
        return None
    return f"{len(a):,} tokens; ids identical: {a == b}"


def rows(results):
    out = []
    for r in results:
        tg, hf = r["stats"].get("tinygpt"), r["stats"].get("transformers")
        target = TARGETS.get(r["name"])
        rt = common.ratio(hf, tg) if r["lower_is_better"] else common.ratio(tg, hf)  # > 1: tinygpt faster
        out.append([f"{r['name']} ({r['unit']})", tg.fmt(3 if r["lower_is_better"] else None) if tg else None,
                    hf.fmt(3 if r["lower_is_better"] else None) if hf else None,
                    common.fmt_ratio(rt, target), f"≥ {target:.1f}" if target else "–"])
    return out


def report(results, rounds, threads, started, command, before, after):
    notes = [f"{r['name']}: {n}" for r in results for n in r["notes"]]
    lines = [f"Run {started}: `{command}`, {rounds} interleaved rounds, one worker process per library, "
             f"{threads} thread(s) each, wall clock. The machine was shared with other jobs: "
             f"conditions at start {before}; at the end {after}.", "",
             f"ratio = how many times faster tinygpt is (transformers' time / tinygpt's; for rates, "
             f"tinygpt / transformers). GPT-2 124M shapes, random weights from {FOLDER.name}.", "",
             common.table(HEADERS, rows(results))]
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else []))


BEGIN, END = "<!-- hf:begin -->", "<!-- hf:end -->"
SECTION = "## Hugging Face interoperability: tinygpt against transformers and tokenizers (bench/hf.py)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, nothing written")
    parser.add_argument("--threads", type=int, default=common.THREADS)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    if set(parts) - set(PARTS):
        parser.error(f"unknown part(s) {sorted(set(parts) - set(PARTS))}; choose from {', '.join(PARTS)}")
    rounds = args.rounds or (3 if args.quick else 5)
    command = "python bench/hf.py " + " ".join(argv if argv is not None else sys.argv[1:])
    before = common.conditions(common.cpu_busy())
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    results = run(parts, rounds=rounds, threads=args.threads)
    text = report(results, rounds, args.threads, started, command.strip(), before, common.conditions())
    print()
    print(text)
    if args.write and not args.quick:
        common.write_section(common.ROOT / "bench" / "RESULTS.md", text, BEGIN, END, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
