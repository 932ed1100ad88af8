"""Training throughput of tinygpt against PyTorch: the three GPT configs (tokens/s), the seed's
Keras LSTM, the same model with GRU layers and Keras' Conv1D text classifier (keras_conv.py)
(sequences/s), with FLOP/s as a fraction of the NumPy sgemm measured in the same run (MFU).

One step = forward, loss, backward, clip_grad_norm_(1.0), optimizer step, zero_grad, on both sides;
same batch, same initial weights, float32, 2 threads, and in both workers the malloc settings of
`tinygpt train` (common.keep_freed_memory; --default-malloc for glibc's). Usage (from the repo root):
  python bench/train.py [--workload tiny|small|baby|lstm|gru|keras-conv ...] [--quick] [--default-malloc | --malloc-ab]
Not here: generation (generate.py) or memory (memory.py).
"""

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `tinygpt` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench import common, keras_conv  # noqa: E402

# name -> the workload; torch_ref is the PyTorch number measured earlier on this machine kind
WORKLOADS = {
    "tiny": dict(kind="gpt", gpt=dict(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=65),
                 batch=32, steps=10, unit="tok/s", torch_ref=91_000, target=1.5),
    "small": dict(kind="gpt", gpt=dict(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=65),
                  batch=16, steps=4, unit="tok/s", torch_ref=19_700, target=1.5),
    "baby": dict(kind="gpt", gpt=dict(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65),
                 batch=8, steps=2, unit="tok/s", torch_ref=2_200, target=1.0),
    # GPT-2 124M (12L/12H/768, V=50257, block 1024) trained on B=4 sequences of T=64 or T=256
    # tokens: "T" is the training length when it is shorter than the model's block_size
    "gpt2-124m": dict(kind="gpt", gpt=dict(n_layer=12, n_head=12, n_embd=768, block_size=1024,
                                           vocab_size=50257), T=64,
                      batch=4, steps=1, unit="tok/s", torch_ref=None, target=1.3),
    "gpt2-124m-t256": dict(kind="gpt", gpt=dict(n_layer=12, n_head=12, n_embd=768, block_size=1024,
                                                vocab_size=50257), T=256,
                           batch=4, steps=1, unit="tok/s", torch_ref=None, target=1.3),
    # the seed's Keras model: Embedding(1000, 64) -> LSTM(128, seq) -> LSTM(128) -> Dense(1000, softmax)
    "lstm": dict(kind="lstm", vocab=1000, emb=64, units=128, T=100, batch=64, steps=4, unit="seq/s",
                 torch_ref=780, target=1.0),
    # the same model with GRU layers: Embedding(1000, 64) -> GRU(128, seq) -> GRU(128) -> Dense(1000)
    "gru": dict(kind="gru", vocab=1000, emb=64, units=128, T=100, batch=64, steps=4, unit="seq/s",
                torch_ref=None, target=1.0),
    # Keras' text classification example: Embedding -> Conv1D x 2 -> GlobalMaxPooling1D -> Dense, on tinygpt.keras
    "keras-conv": keras_conv.SPEC,
}
RECURRENT = ("lstm", "gru")
LR = 6e-4
GRAD_CLIP = 1.0


def seq_len(spec):
    """The training sequence length T of a GPT workload: spec["T"], else the block_size."""
    return spec.get("T", spec["gpt"]["block_size"])


def batches(spec, count=4, seed=1):
    """`count` (x, y) pairs of int64 token ids, shared by both libraries."""
    if spec["kind"] == "conv":
        return keras_conv.batches(spec, count, seed)
    rng = np.random.default_rng(seed)
    if spec["kind"] == "gpt":
        T, V = seq_len(spec), spec["gpt"]["vocab_size"]
        return [(rng.integers(0, V, (spec["batch"], T)), rng.integers(0, V, (spec["batch"], T)))
                for _ in range(count)]
    return [(rng.integers(0, spec["vocab"], (spec["batch"], spec["T"])),
             rng.integers(0, spec["vocab"], spec["batch"])) for _ in range(count)]


def work_per_step(spec):
    return spec["batch"] * (seq_len(spec) if spec["kind"] == "gpt" else 1)


def flops_per_unit(spec, gpt_model=None):
    """Training FLOPs per token (GPT: model.flops_per_token(), nanoGPT's 6N + 12 L H Q T, with T
    the training length) or per sequence (LSTM, GRU: 3x the forward's matmuls, 2 FLOPs per
    multiply-add; 4 gates for the LSTM, 3 for the GRU)."""
    if spec["kind"] == "gpt":
        c = gpt_model.config
        T = seq_len(spec)
        return gpt_model.flops_per_token() - 12 * c.n_layer * c.n_embd * (c.block_size - T)
    if spec["kind"] == "conv":
        return keras_conv.flops_per_sequence(spec)
    D, T, gates = spec["units"], spec["T"], 4 if spec["kind"] == "lstm" else 3
    forward = sum(T * 2 * (n_in + D) * gates * D for n_in in (spec["emb"], D)) + 2 * D * spec["vocab"]
    return 3 * forward


# ----- tinygpt ---------------------------------------------------------------------------------

def tinygpt_gpt(spec, seed=0):
    """-> (step, model): one AdamW training step of tinygpt's GPT per call."""
    from tinygpt.models import GPT, GPTConfig
    from tinygpt.optim import clip_grad_norm_
    model = GPT(GPTConfig(**spec["gpt"], dropout=0.0), seed=seed)
    opt = model.configure_optimizers(weight_decay=0.1, learning_rate=LR, betas=(0.9, 0.95))
    params = model.parameters()
    data, i = batches(spec), [0]

    def step():
        x, y = data[i[0] % len(data)]
        i[0] += 1
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        opt.zero_grad()
    return step, model


class SeedLSTM:
    """The seed's model in plain tinygpt.nn: Embedding -> 2-layer LSTM -> last step -> Linear."""

    def __init__(self, spec, seed=0):
        from tinygpt import nn
        rng = np.random.default_rng(seed)
        self.embedding = nn.Embedding(spec["vocab"], spec["emb"], rng=rng)
        self.lstm = nn.LSTM(spec["emb"], spec["units"], num_layers=2, batch_first=True, rng=rng)
        self.dense = nn.Linear(spec["units"], spec["vocab"], rng=rng)

    def parameters(self):
        return self.embedding.parameters() + self.lstm.parameters() + self.dense.parameters()

    def __call__(self, idx):
        out, _ = self.lstm(self.embedding(idx))  # (B, T) -> (B, T, emb) -> (B, T, D)
        return self.dense(out[:, -1])  # the last step only: (B, D) -> (B, V)


class SeedGRU(SeedLSTM):
    """The seed's model with GRU layers: Embedding -> 2-layer GRU -> last step -> Linear."""

    def __init__(self, spec, seed=0):
        from tinygpt import nn
        rng = np.random.default_rng(seed)
        self.embedding = nn.Embedding(spec["vocab"], spec["emb"], rng=rng)
        self.gru = nn.GRU(spec["emb"], spec["units"], num_layers=2, batch_first=True, rng=rng)
        self.dense = nn.Linear(spec["units"], spec["vocab"], rng=rng)

    def parameters(self):
        return self.embedding.parameters() + self.gru.parameters() + self.dense.parameters()

    def __call__(self, idx):
        out, _ = self.gru(self.embedding(idx))  # (B, T) -> (B, T, emb) -> (B, T, D)
        return self.dense(out[:, -1])


def tinygpt_lstm(spec, seed=0):
    """-> (step, model): one Adam step of the seed LSTM (or its GRU twin) written with tinygpt.nn."""
    from tinygpt import functional as F
    from tinygpt.optim import Adam, clip_grad_norm_
    model = (SeedGRU if spec["kind"] == "gru" else SeedLSTM)(spec, seed)
    params = model.parameters()
    opt = Adam(params, lr=1e-3)
    data, i = batches(spec), [0]

    def step():
        x, y = data[i[0] % len(data)]
        i[0] += 1
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        opt.zero_grad()
    return step, model


def tinygpt_keras_lstm(spec, seed=0):
    """-> step: the seed's Keras code on tinygpt.keras, one batch per call (train_on_batch, or fit
    for one epoch of one batch). Raises whatever tinygpt.keras raises while it is unfinished."""
    from tinygpt import keras
    layers = getattr(keras, "layers", keras)
    cell = layers.GRU if spec["kind"] == "gru" else layers.LSTM
    model = keras.Sequential([
        layers.Embedding(spec["vocab"], spec["emb"], input_length=spec["T"]),
        cell(spec["units"], return_sequences=True),
        cell(spec["units"]),
        layers.Dense(spec["vocab"], activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    eye = np.eye(spec["vocab"], dtype=np.float32)
    data = [(x, eye[y]) for x, y in batches(spec)]  # one-hot labels, as categorical_crossentropy wants
    i = [0]
    if hasattr(model, "train_on_batch"):
        def step():
            x, y = data[i[0] % len(data)]
            i[0] += 1
            model.train_on_batch(x, y)
    else:
        def step():
            x, y = data[i[0] % len(data)]
            i[0] += 1
            model.fit(x, y, batch_size=spec["batch"], epochs=1, verbose=0)
    step()  # fail here, at build time, if the API is not there yet
    return step


# ----- PyTorch ---------------------------------------------------------------------------------

def torch_gpt(spec, tg_model=None):
    """-> step: the same training step on bench/torch_models.TorchGPT (weights from tg_model)."""
    import torch
    from bench.torch_models import TorchGPT, load_tinygpt_gpt
    model = TorchGPT(**spec["gpt"])
    if tg_model is not None:
        load_tinygpt_gpt(model, {n: p.data for n, p in tg_model.named_parameters()})
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.95))
    params = list(model.parameters())
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches(spec)]
    i = [0]

    def step():
        x, y = data[i[0] % len(data)]
        i[0] += 1
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


def torch_lstm(spec, tg_model=None):
    import torch
    import torch.nn.functional as TF
    from bench.torch_models import TorchKerasGRU, TorchKerasLSTM, load_tinygpt_gru, load_tinygpt_lstm
    gru = spec["kind"] == "gru"
    model = (TorchKerasGRU if gru else TorchKerasLSTM)(spec["vocab"], spec["emb"], spec["units"])
    if tg_model is not None:
        rnn = tg_model.gru if gru else tg_model.lstm
        (load_tinygpt_gru if gru else load_tinygpt_lstm)(
            model, tg_model.embedding.weight.data, {n: p.data for n, p in rnn.named_parameters()},
            tg_model.dense.weight.data, tg_model.dense.bias.data)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches(spec)]
    i = [0]

    def step():
        x, y = data[i[0] % len(data)]
        i[0] += 1
        loss = TF.cross_entropy(model(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


# ----- building and running ----------------------------------------------------------------------

def tinygpt_weights(spec, seed=0):
    """The tinygpt model of `spec` with its initial weights and no optimizer: what the torch side
    copies (same seed, same weights as the tinygpt side, even in another process)."""
    if spec["kind"] == "gpt":
        from tinygpt.models import GPT, GPTConfig
        return GPT(GPTConfig(**spec["gpt"], dropout=0.0), seed=seed)
    return (SeedGRU if spec["kind"] == "gru" else SeedLSTM)(spec, seed)


def build(name, libs=None, same_weights=True):
    """-> ({side: step}, {side: why it is missing}, tinygpt model or None) for workload `name`.
    Sides: 'tinygpt', 'torch', and for the LSTM and GRU 'tinygpt.keras'; libs=None means all of them."""
    spec = WORKLOADS[name]
    libs = libs or (("tinygpt", "tinygpt.keras", "torch") if spec["kind"] in RECURRENT else ("tinygpt", "torch"))
    if spec["kind"] == "conv":  # its tinygpt side is tinygpt.keras itself
        torch_available = "torch" in libs and common.import_torch() is not None
        return (*keras_conv.build(spec, libs, torch_available, same_weights), None)
    sides, missing, tg_model = {}, {}, None
    if "tinygpt" in libs:
        step, tg_model = (tinygpt_gpt if spec["kind"] == "gpt" else tinygpt_lstm)(spec)
        sides["tinygpt"] = step
    if "tinygpt.keras" in libs:
        try:
            sides["tinygpt.keras"] = tinygpt_keras_lstm(spec)
        except Exception as error:  # tinygpt.keras is being written: report why, keep going
            missing["tinygpt.keras"] = f"{type(error).__name__}: {error}"
    if "torch" in libs:
        if common.import_torch() is None:
            missing["torch"] = "torch not installed"
        else:
            make = torch_gpt if spec["kind"] == "gpt" else torch_lstm
            weights = (tg_model or tinygpt_weights(spec)) if same_weights else None
            sides["torch"] = make(spec, weights)
    return sides, missing, tg_model


def worker_build(name, lib, tag=None):
    """In a worker process (common.run_sides): this library's sides of workload `name`, named
    "<side> <tag>" when a tag is given."""
    libs = {"torch": ("torch",)}.get(lib, ("tinygpt", "tinygpt.keras") if WORKLOADS[name]["kind"] in RECURRENT
                                      else ("tinygpt",))
    start_kb = common.rss_kb("VmRSS")  # after the imports, before the model is built
    sides, missing, _ = build(name, libs)
    if tag:
        sides = {f"{side} {tag}": fn for side, fn in sides.items()}
    return sides, missing, lambda: {"openmp": common.openmp_runtimes(), "start_kb": start_kb,
                                    "peak_kb": common.rss_kb("VmHWM")}


def malloc_ab(names, rounds=5, quick=False, threads=common.THREADS, clock="wall", log=print):
    """Each library with and without keep_freed_memory, four workers in one run, blocks
    alternating -> markdown rows: the allocator's effect on each side, measured side by side."""
    out = []
    for name in names:
        spec = WORKLOADS[name]
        if spec["kind"] != "gpt":
            continue
        libs = ("tinygpt",) + (() if common.import_torch(load=False) is None else ("torch",))
        builders = {f"{lib} {tag}": ("bench.train", "worker_build", (name, lib, tag), tag == "keep")
                    for lib in libs for tag in ("default", "keep")}
        steps = max(1, spec["steps"] // 2) if quick else spec["steps"]
        stats, _, _ = common.run_sides(builders, rounds=rounds, steps=steps, work=work_per_step(spec),
                                       clock=clock, threads=threads)
        log(f"  {name}: " + ", ".join(f"{side} {s.fmt()}" for side, s in stats.items()))
        row = [f"train {name} ({spec['unit']})"]
        for lib in ("tinygpt", "torch"):
            d, k = stats.get(f"{lib} default"), stats.get(f"{lib} keep")
            row += [d.fmt() if d else None, k.fmt() if k else None, common.fmt_ratio(common.ratio(k, d))]
        for tag in ("default", "keep"):
            row.append(common.fmt_ratio(common.ratio(stats.get(f"tinygpt {tag}"), stats.get(f"torch {tag}"))))
        out.append(row)
    return out


MALLOC_HEADERS = ["workload", "tinygpt default malloc", "tinygpt keep_freed_memory", "×",
                  "PyTorch default malloc", "PyTorch keep_freed_memory", "×",
                  "tinygpt / torch, default", "tinygpt / torch, keep"]


def run(names, rounds=5, quick=False, sgemm=None, log=print, clock="wall", same_process=False,
        threads=common.THREADS, keep_memory=True):
    """Time each workload; -> list of result dicts (one per workload). Each library runs in a
    worker process of its own (common.run_sides) unless same_process=True; keep_memory=False runs
    the workers on glibc's default malloc settings instead of `tinygpt train`'s."""
    results = []
    for name in names:
        spec = WORKLOADS[name]
        steps = max(1, spec["steps"] // 2) if quick else spec["steps"]
        kw = dict(rounds=rounds, steps=steps, warmup=1 if quick else 2, work=work_per_step(spec), clock=clock)
        flops = flops_per_unit(spec, tinygpt_weights(spec) if spec["kind"] == "gpt" else None)
        peaks = {}
        if same_process:
            sides, missing, _ = build(name)
            stats = common.interleave(sides, **kw)
            runtimes = {"both": common.openmp_runtimes()}
            del sides
        else:
            libs = ("tinygpt",) + (() if common.import_torch(load=False) is None else ("torch",))
            builders = {lib: ("bench.train", "worker_build", (name, lib)) for lib in libs}
            stats, missing, reports = common.run_sides(builders, threads=threads, keep_memory=keep_memory, **kw)
            runtimes = {lib: r["openmp"] for lib, r in reports.items() if r}
            peaks = {lib: (r["peak_kb"], r["start_kb"]) for lib, r in reports.items() if r}
            if "torch" not in libs:
                missing["torch"] = "torch not installed"
        for side, why in missing.items():
            log(f"  {name}: {side} skipped ({why})")
        res = dict(workload=name, unit=spec["unit"], stats=stats, missing=missing, flops=flops, openmp=runtimes,
                   target=spec["target"], torch_ref=spec["torch_ref"], rounds=rounds, steps=steps,
                   peaks=peaks)
        if sgemm is not None:
            res["mfu"] = {side: flops * s.median / (sgemm.median * 1e9) for side, s in stats.items()}
            res["mfu_min"] = {side: flops * s.lo / (sgemm.median * 1e9) for side, s in stats.items()}
        results.append(res)
        log(f"  {name}: " + ", ".join(f"{side} {s.fmt()} {spec['unit']}" for side, s in stats.items()))
    return results


def rows(results):
    """Markdown rows: workload, tinygpt, torch, ratio vs target, MFU (tinygpt / torch)."""
    out = []
    for r in results:
        st, tg, th = r["stats"], r["stats"].get("tinygpt"), r["stats"].get("torch")
        mfu = r.get("mfu", {})
        mfu_min = r.get("mfu_min", {})
        mfu_text = " / ".join(f"{100 * mfu[s]:.1f}% (min {100 * mfu_min[s]:.1f}%)" if s in mfu else "–"
                              for s in ("tinygpt", "torch"))
        peaks = r.get("peaks", {})
        if "tinygpt" in peaks and "torch" in peaks:
            (tg_peak, tg_start), (th_peak, th_start) = peaks["tinygpt"], peaks["torch"]
            peak_text = (f"{tg_peak / 1024:,.0f} / {th_peak / 1024:,.0f} MiB = {tg_peak / th_peak:.2f} "
                         f"(above imports {(tg_peak - tg_start) / max(th_peak - th_start, 1):.2f})")
        else:
            peak_text = None
        out.append([f"train {r['workload']} ({r['unit']})", tg.fmt() if tg else None,
                    th.fmt() if th else None, common.fmt_ratio(common.ratio(tg, th), r["target"]),
                    f"≥ {r['target']:.1f}", mfu_text, peak_text])
        if "tinygpt.keras" in st or "tinygpt.keras" in r["missing"]:
            k = st.get("tinygpt.keras")
            out.append([f"train {r['workload']} via tinygpt.keras", k.fmt() if k else
                        f"not run: {r['missing']['tinygpt.keras'][:60]}", th.fmt() if th and k else None,
                        common.fmt_ratio(common.ratio(k, th), r["target"]), f"≥ {r['target']:.1f}",
                        f"{100 * mfu['tinygpt.keras']:.1f}%" if "tinygpt.keras" in mfu else None, None])
    return out


# ----- profile ---------------------------------------------------------------------------------

# cProfile function name -> where the time goes. NumPy operators inside a Python function count as
# that function's own time, so e.g. add_forward's own time is NumPy's elementwise add.
CATEGORIES = [
    ("matmul (BLAS / C sgemm)", ("matmul_forward", "matmul_backward", "sgemm", "method 'matmul'")),
    ("attention kernel", ("attention_forward", "attention_backward")),
    ("layernorm", ("layernorm_forward", "layernorm_backward")),
    ("GELU", ("gelu_forward", "gelu_backward")),
    ("softmax / cross-entropy", ("cross_entropy", "softmax")),
    ("LSTM kernel", ("lstm_forward", "lstm_backward")),
    ("GRU kernel", ("gru_forward", "gru_backward")),
    ("elementwise add / bias and residual", ("add_forward", "add_backward", "unbroadcast")),
    ("optimizer (adamw_update, Adam.update)", ("adamw_update", "_adamw", "update", "step")),
    ("clip_grad_norm_", ("clip_grad_norm_",)),
    ("embedding (np.add.at) / getitem", ("embedding_", "getitem_", "method 'at'")),
    ("split / transpose / reshape copies", ("split_", "transpose_", "reshape_", "concatenate",
                                            "ascontiguousarray", "stack_")),
    ("allocation (np.empty / zeros / copies)", ("numpy.empty", "numpy.zeros", "numpy.array", "method 'copy'")),
    ("autograd engine + dispatch (Python)", ("tensor.py", "backend.py", "functional.py",
                                             "module.py", "_topological_order", "apply")),
]


def categorize(name):
    for label, keys in CATEGORIES:
        if any(k in name for k in keys):
            return label
    return "other"


def profile(name, steps=3, threads=None, top=25):
    """cProfile `steps` tinygpt training steps of workload `name` with a CPU-time clock (robust to
    other users' load when threads=1); prints own time by category and the top functions."""
    import cProfile
    import pstats
    import time
    if threads:
        common.set_threads(threads)
    spec = WORKLOADS[name]
    step = (tinygpt_gpt if spec["kind"] == "gpt" else tinygpt_lstm)(spec)[0]
    step()
    step()
    prof = cProfile.Profile(time.process_time if threads == 1 else time.perf_counter)
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    stats = pstats.Stats(prof)
    total, by_cat, rows = 0.0, {}, []
    for (file, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
        label = f"{Path(file).name}:{func}" if file != "~" else func
        total += tt
        cat = categorize(label)
        by_cat[cat] = by_cat.get(cat, 0.0) + tt
        rows.append((tt, nc, label))
    per_step = total / steps
    print(f"{name}: {per_step * 1e3:.1f} ms per step of own time "
          f"({'CPU time, 1 thread' if threads == 1 else 'wall time'}), "
          f"{work_per_step(spec) / per_step:,.0f} {spec['unit']}")
    print(common.table(["where", "ms / step", "share"],
                       [[c, f"{t / steps * 1e3:.1f}", f"{100 * t / total:.1f}%"]
                        for c, t in sorted(by_cat.items(), key=lambda kv: -kv[1])]))
    print()
    print(common.table(["function", "calls / step", "ms / step"],
                       [[label, f"{nc / steps:.0f}", f"{tt / steps * 1e3:.2f}"]
                        for tt, nc, label in sorted(rows, reverse=True)[:top]]))
    return by_cat, per_step


HEADERS = ["workload", "tinygpt median (min–max)", "PyTorch median (min–max)", "ratio", "target",
           "MFU tinygpt / torch (slowest round)", "peak RSS of the worker, tinygpt / torch"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="3 rounds and half the steps")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile tinygpt's step instead of timing against PyTorch")
    parser.add_argument("--threads", type=int, default=common.THREADS,
                        help=f"threads for every library (default {common.THREADS})")
    parser.add_argument("--clock", choices=list(common.CLOCKS), default="wall",
                        help="cpu: rates per CPU-second; with --threads 1 robust to a busy machine")
    parser.add_argument("--same-process", action="store_true",
                        help="both libraries in this process (shared OpenMP runtime and malloc: "
                             "see common.run_sides) instead of one worker process each")
    parser.add_argument("--default-malloc", action="store_true",
                        help="glibc's default malloc settings instead of `tinygpt train`'s "
                             "(keep_freed_memory), for both libraries: the bench before 2026-11-29")
    parser.add_argument("--malloc-ab", action="store_true",
                        help="each library with and without keep_freed_memory, side by side in one run")
    args = parser.parse_args(argv)
    keep = not args.default_malloc
    if args.malloc_ab:
        rows_ = malloc_ab(args.workload, rounds=args.rounds or (3 if args.quick else 5), quick=args.quick,
                          threads=args.threads, clock=args.clock)
        print()
        print(common.table(MALLOC_HEADERS, rows_))
        return
    if args.profile:
        if keep:
            common.keep_freed_memory()
        for name in args.workload:
            profile(name, threads=args.threads)
        return
    if args.same_process:
        common.import_torch()  # torch first: it loads its own OpenMP runtime (see common.run_sides)
        common.set_threads(args.threads)
        if keep:
            common.keep_freed_memory()
    sgemm = common.sgemm_fresh(args.threads, args.clock)
    print(f"NumPy sgemm n=2048, {args.threads} threads ({args.clock} clock): {sgemm.fmt()} GFLOP/s")
    results = run(args.workload, rounds=args.rounds or (3 if args.quick else 5), quick=args.quick,
                  sgemm=sgemm, clock=args.clock, same_process=args.same_process, threads=args.threads,
                  keep_memory=keep)
    print()
    print(common.table(HEADERS, rows(results)))


if __name__ == "__main__":
    main()
