"""GPT-2 124M training against llm.c's CPU trainer (train_gpt2.c), beside tinygpt and PyTorch.

    python bench/llmc.py --llmc ~/src/llm.c            # or TINYGPT_BENCH_LLMC=~/src/llm.c
    python bench/llmc.py --llmc ~/src/llm.c --seq-len 64 256 --rounds 3

llm.c is never part of tinygpt: this script builds a copy of the train_gpt2.c of the checkout you
point it to, in a temporary directory, with llm.c's own flags (its Makefile's `-Ofast
-march=native -fopenmp -DOMP`). That trainer reads fixed file names and has B=4, T=64 and 41 steps
written into main(); the copy substitutes T and the step count (the exact substitutions are
printed) and runs in a directory laid out with the files it expects:

- gpt2_124M.bin: tinygpt's own initial GPT-2 124M weights (bench/train.py's seed), written in
  llm.c's checkpoint layout, so all three libraries train the same model;
- dev/data/tinyshakespeare/tiny_shakespeare_{train,val}.bin: random GPT-2 token ids in llm.c's
  token-file layout (no tokenizer file: llm.c then prints ids when it samples).

Checked before timing: llm.c's step-0 validation loss (the mean over 5 batches of its val file,
read in order) against tinygpt's loss on the same 5 batches of the same weights.

What is timed: llm.c prints "step N: train loss L (took X ms)" around its batch load, forward,
zero_grad, backward and AdamW update (lr 1e-4, no weight decay, no gradient clipping); its
validation and sampling passes are outside that region. A round's rate is B*T tokens times the
timed steps over their summed time, step 0 excluded (it allocates the gradients and moments).
tinygpt and PyTorch run bench/train.py's gpt2-124m step (AdamW, weight decay on matrices,
gradient clip 1.0) in a worker process each; rounds interleave the three, a pause between blocks.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common, train  # noqa: E402

MODEL_MAGIC, MODEL_VERSION = 20240326, 3  # llm.c's gpt2_build_from_checkpoint accepts these
TOKENS_MAGIC, TOKENS_VERSION = 20240520, 1  # llmc/dataloader.h
HEADER_INTS = 256
BATCH = 4  # train_gpt2.c's B
VAL_BATCHES = 5  # train_gpt2.c's val_num_batches
# (what train_gpt2.c's main() says, what the copy says instead)
SUBSTITUTIONS = (("int T = 64;", "int T = {T};"), ("step <= 40;", "step <= {last_step};"))


def padded_vocab(V, multiple=128):
    """llm.c pads the vocabulary to a multiple of 128 (50257 -> 50304); the extra rows are zeros."""
    return (V + multiple - 1) // multiple * multiple


def llmc_parameters(model):
    """tinygpt GPT -> the 16 float32 arrays of llm.c's ParameterTensors, in its order and shapes.
    llm.c keeps every weight matrix (out, in), like torch's Linear; tinygpt's Linear keeps (in, out)."""
    cfg, tr = model.config, model.transformer
    V, C = cfg.vocab_size, cfg.n_embd
    wte = np.zeros((padded_vocab(V), C), np.float32)  # (Vp, C)
    wte[:V] = tr.wte.weight.data
    blocks = list(tr.h)

    def stack(get):  # (L, ...) over the layers
        return np.stack([np.asarray(get(b), np.float32) for b in blocks])

    return [wte, tr.wpe.weight.data.astype(np.float32),
            stack(lambda b: b.ln_1.weight.data), stack(lambda b: b.ln_1.bias.data),
            stack(lambda b: b.attn.c_attn.weight.data.T),  # (L, 3C, C)
            stack(lambda b: b.attn.c_attn.bias.data),
            stack(lambda b: b.attn.c_proj.weight.data.T),  # (L, C, C)
            stack(lambda b: b.attn.c_proj.bias.data),
            stack(lambda b: b.ln_2.weight.data), stack(lambda b: b.ln_2.bias.data),
            stack(lambda b: b.mlp.c_fc.weight.data.T),  # (L, 4C, C)
            stack(lambda b: b.mlp.c_fc.bias.data),
            stack(lambda b: b.mlp.c_proj.weight.data.T),  # (L, C, 4C)
            stack(lambda b: b.mlp.c_proj.bias.data),
            tr.ln_f.weight.data.astype(np.float32), tr.ln_f.bias.data.astype(np.float32)]


def write_checkpoint(path, model):
    """model's weights as llm.c's gpt2_124M.bin: 256 int32 of header, then the float32 parameters."""
    cfg = model.config
    header = np.zeros(HEADER_INTS, np.int32)
    header[:8] = [MODEL_MAGIC, MODEL_VERSION, cfg.block_size, cfg.vocab_size, cfg.n_layer,
                  cfg.n_head, cfg.n_embd, padded_vocab(cfg.vocab_size)]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        for array in llmc_parameters(model):
            f.write(np.ascontiguousarray(array, np.float32).tobytes())


def write_tokens(path, tokens):
    """token ids (< 65536) as llm.c's token file: 256 int32 of header, then uint16 ids."""
    tokens = np.asarray(tokens)
    if tokens.min() < 0 or tokens.max() >= 1 << 16:
        raise ValueError(f"llm.c token files hold uint16 ids; got ids from {tokens.min()} to {tokens.max()}")
    header = np.zeros(HEADER_INTS, np.int32)
    header[:3] = [TOKENS_MAGIC, TOKENS_VERSION, tokens.size]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype(np.uint16).tobytes())


def build(llmc_dir, build_dir, T, last_step):
    """Copy llm.c's train_gpt2.c (and llmc/) into build_dir with T and the last step substituted,
    compile it -> (executable path, the substitutions made, the compile command)."""
    llmc_dir = Path(llmc_dir).expanduser()
    source = llmc_dir / "train_gpt2.c"
    if not source.is_file() or not (llmc_dir / "llmc").is_dir():
        raise FileNotFoundError(f"--llmc {llmc_dir}: expected a checkout of karpathy/llm.c with "
                                f"train_gpt2.c and llmc/ in it")
    text = source.read_text()
    made = []
    for old, new in SUBSTITUTIONS:
        new = new.format(T=T, last_step=last_step)
        if text.count(old) != 1:
            raise RuntimeError(f"{source} has {text.count(old)} copies of {old!r}, expected one: this "
                               f"llm.c differs from the one bench/llmc.py was written for")
        text = text.replace(old, new)
        made.append(f"{old!r} -> {new!r}")
    build_dir = Path(build_dir)
    shutil.copytree(llmc_dir / "llmc", build_dir / "llmc", dirs_exist_ok=True)
    (build_dir / "train_gpt2.c").write_text(text)
    cc = os.environ.get("CC", "cc")
    command = [cc, "-Ofast", "-Wno-unused-result", "-march=native", "-fopenmp", "-DOMP",
               "train_gpt2.c", "-lm", "-lgomp", "-o", "train_gpt2"]
    done = subprocess.run(command, cwd=build_dir, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building llm.c failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
    return build_dir / "train_gpt2", made, " ".join(command)


def lay_out_run_dir(run_dir, model, T, steps, seed=7):
    """The files train_gpt2.c opens, in run_dir -> the val tokens (for the loss check)."""
    run_dir = Path(run_dir)
    data = run_dir / "dev" / "data" / "tinyshakespeare"
    data.mkdir(parents=True, exist_ok=True)
    write_checkpoint(run_dir / "gpt2_124M.bin", model)
    rng = np.random.default_rng(seed)
    V = model.config.vocab_size
    val = rng.integers(0, V, VAL_BATCHES * BATCH * T + 1)  # exactly VAL_BATCHES batches, in order
    write_tokens(data / "tiny_shakespeare_val.bin", val)
    write_tokens(data / "tiny_shakespeare_train.bin", rng.integers(0, V, (steps + 2) * BATCH * T + 1))
    return val


def tinygpt_val_loss(model, val, T):
    """tinygpt's mean loss over the batches llm.c reads from the val file (window i: tokens
    i*B*T .. (i+1)*B*T, targets one further)."""
    from tinygpt import no_grad
    losses = []
    with no_grad():
        for i in range(VAL_BATCHES):
            chunk = val[i * BATCH * T: (i + 1) * BATCH * T + 1]
            x, y = chunk[:-1].reshape(BATCH, T), chunk[1:].reshape(BATCH, T)
            losses.append(float(model(x, y)[1].item()))
    return float(np.mean(losses))


STEP_LINE = re.compile(r"step (\d+): train loss ([-\d.naninf]+) \(took ([\d.]+) ms\)")
VAL_LINE = re.compile(r"val loss ([-\d.naninf]+)")


def run_llmc(executable, run_dir, threads, timeout=3600):
    """One run of the built trainer -> (step-0 val loss, [(step, train loss, ms)])."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run([str(executable)], cwd=run_dir, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"llm.c's trainer exited with {done.returncode}:\n{done.stdout[-1500:]}"
                           f"{done.stderr[-1500:]}")
    steps = [(int(s), float(loss), float(ms)) for s, loss, ms in STEP_LINE.findall(done.stdout)]
    val = VAL_LINE.search(done.stdout)
    if not steps or val is None:
        raise RuntimeError(f"no step or val loss lines in llm.c's output:\n{done.stdout[-1500:]}")
    return float(val.group(1)), steps


def llmc_rate(steps, T):
    """tokens/s over the timed steps after step 0"""
    timed = [ms for step, _, ms in steps if step > 0]
    return BATCH * T * len(timed) / (sum(timed) / 1e3)


def measure(llmc_dir, seq_lens=(64, 256), rounds=3, steps=3, threads=common.THREADS, log=print):
    """-> [result dict per T]: Stat of tok/s for tinygpt, torch and llm.c, the loss check, the build."""
    import multiprocessing as mp
    results = []
    for T in seq_lens:
        name = {64: "gpt2-124m", 256: "gpt2-124m-t256"}.get(T)
        if name is None:
            raise ValueError(f"--seq-len {T}: bench/train.py has GPT-2 124M workloads at T=64 and 256")
        spec = train.WORKLOADS[name]
        model = train.tinygpt_weights(spec)
        with tempfile.TemporaryDirectory(prefix="tinygpt-bench-llmc-") as tmp:
            executable, made, command = build(llmc_dir, Path(tmp) / "build", T, steps)
            run_dir = Path(tmp) / "run"
            val = lay_out_run_dir(run_dir, model, T, steps)
            ours = tinygpt_val_loss(model, val, T)
            del model
            ctx = mp.get_context("spawn")
            libs = ("tinygpt",) + (() if common.import_torch(load=False) is None else ("torch",))
            workers = {}
            try:
                for lib in libs:
                    proc, conn, msg = common.start_worker(ctx, common._worker, (lib, "bench.train", "worker_build",
                                                                                 (name, lib), threads, True))
                    if proc is None:
                        raise RuntimeError(f"{lib} worker: {msg[1]}")
                    workers[lib] = (proc, conn, msg[1][0])
                    conn.send(("run", msg[1][0], 1, "wall"))  # warm-up step
                    conn.recv()
                rates = {lib: [] for lib in (*libs, "llm.c")}
                theirs, losses = None, []
                for r in range(rounds):
                    order = [*libs, "llm.c"]
                    for lib in (order if r % 2 == 0 else order[::-1]):
                        time.sleep(common.PAUSE)
                        if lib == "llm.c":
                            theirs, llmc_steps = run_llmc(executable, run_dir, threads)
                            rates[lib].append(llmc_rate(llmc_steps, T))
                            losses.append(llmc_steps[0][1])
                        else:
                            _, conn, side = workers[lib]
                            conn.send(("run", side, steps, "wall"))
                            rates[lib].append(BATCH * T * steps / conn.recv())
            finally:
                common.stop_workers((proc, conn) for proc, conn, _ in workers.values())
        stats = {lib: common.Stat.of(v) for lib, v in rates.items()}
        res = dict(workload=name, T=T, stats=stats, llmc_val_loss=theirs, tinygpt_val_loss=ours,
                   substitutions=made, command=command, rounds=rounds, steps=steps)
        log(f"  {name}: " + ", ".join(f"{lib} {s.fmt()} tok/s" for lib, s in stats.items())
            + f"; step-0 val loss llm.c {theirs:.6f}, tinygpt {ours:.6f}")
        results.append(res)
    return results


HEADERS = ["workload", "tinygpt median (min–max)", "PyTorch median (min–max)", "llm.c median (min–max)",
           "tinygpt / torch", "tinygpt / llm.c", "step-0 loss, llm.c / tinygpt"]


def rows(results):
    out = []
    for res in results:
        s = res["stats"]
        torch = s.get("torch")
        out.append([f"train {res['workload']} (tok/s, B=4, T={res['T']})", s["tinygpt"].fmt(),
                    torch.fmt() if torch else "not installed", s["llm.c"].fmt(),
                    common.fmt_ratio(common.ratio(s["tinygpt"], torch), 1.3) if torch else "–",
                    common.fmt_ratio(common.ratio(s["tinygpt"], s["llm.c"]), 3.0),
                    f"{res['llmc_val_loss']:.4f} / {res['tinygpt_val_loss']:.4f}"])
    return out


def llmc_commit(llmc_dir):
    done = subprocess.run(["git", "-C", str(llmc_dir), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown (not a git checkout)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--llmc", default=os.environ.get("TINYGPT_BENCH_LLMC"),
                        help="a checkout of karpathy/llm.c (default: $TINYGPT_BENCH_LLMC)")
    parser.add_argument("--seq-len", type=int, nargs="+", default=[64, 256], help="T, of 64 and 256")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per block (llm.c: after step 0)")
    parser.add_argument("--threads", type=int, default=common.THREADS)
    args = parser.parse_args(argv)
    if not args.llmc:
        parser.error("--llmc PATH (a checkout of karpathy/llm.c) or TINYGPT_BENCH_LLMC is needed; "
                     "without llm.c, bench/train.py --workload gpt2-124m gpt2-124m-t256 compares against PyTorch")
    print(f"llm.c {llmc_commit(args.llmc)} at {args.llmc}; {args.threads} threads per library, "
          f"{args.rounds} interleaved rounds of {args.steps} timed steps; {common.conditions()}")
    results = measure(args.llmc, args.seq_len, args.rounds, args.steps, args.threads)
    print(f"\nbuilt with: {results[0]['command']}; in train_gpt2.c: "
          + "; ".join(results[-1]["substitutions"]) + f" (T per row); at the end: {common.conditions()}\n")
    print(common.table(HEADERS, rows(results)))


if __name__ == "__main__":
    main()
