"""A race between the default `tinygpt train` (char-level Shakespeare, 4 layers x 4 heads x 128 wide,
block 64, batch 12, 2000 steps) and the same GPT in PyTorch: does tinygpt reach the same validation
loss (within 0.02) in less wall-clock time?

tinygpt runs the real thing: Trainer.run() on the default TrainConfig (only out_dir, a temporary
directory, and sample_tokens=0 differ), loss estimates and checkpoints included. PyTorch trains
bench/torch_models.TorchGPT from tinygpt's initial weights, on the same batches (the same windows of
the same token arrays, drawn from a copy of the Trainer's generator), with tinygpt's learning rate at
every step, the same AdamW groups and settings, clip and loss-estimate windows, and saves a checkpoint
(model + optimizer, torch.save) wherever tinygpt does. Each side runs in a worker process of its own;
they take turns, CHUNK steps at a time (order reversed each round, PAUSE s between chunks), so that
both see the same machine. Usage (from the repo root):
  python bench/default_train.py [--steps 2000] [--quick] [--threads 2]
Not here: throughput at fixed shapes (train.py), the sample a real run generates at its end.
"""

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench import common  # noqa: E402

STEPS = 2000
QUICK_STEPS = 200
CHUNK = 100  # steps per turn
TARGET_LOSS = 0.02  # |val loss tinygpt - val loss torch| at most
TARGET_RATIO = 1.0  # training wall time tinygpt / torch, below


def windows(tokens, batch_size, block_size, rng):
    """tokens (N,) -> x, y: (B, T) int64, y = x shifted by one: nanoGPT's get_batch, written out
    here (the torch worker must not import tinygpt) and checked against
    tinygpt.data.random_windows by the batch digests and tests/test_bench_default_train.py."""
    starts = rng.integers(0, len(tokens) - block_size, size=batch_size)  # (B,)
    chunk = np.asarray(tokens[starts[:, None] + np.arange(block_size + 1)], dtype=np.int64)  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]


def eval_rng(seed, split_index):
    """The generator of Trainer.estimate_loss for split 0 (train) or 1 (val): fresh each estimate."""
    return np.random.default_rng([seed, 1, split_index])


def digest(batches_digest, x, y):
    batches_digest.update(x.tobytes())
    batches_digest.update(y.tobytes())


# ----- tinygpt's side: the real Trainer --------------------------------------------------------

def race_config(workdir, steps, **changes):
    """The default TrainConfig, but for where it writes, no sample at the end, and `steps`."""
    from tinygpt.train import TrainConfig
    return TrainConfig(steps=steps, out_dir=str(Path(workdir) / "tinygpt-run"), sample_tokens=0, **changes)


def export(trainer, workdir):
    """What the torch side needs to train the same model on the same batches, from a Trainer
    that has not trained yet: token arrays, initial weights, the settings, every step's lr and
    the batch generator's state. Writes them into `workdir`; -> the settings dict."""
    workdir = Path(workdir)
    c, group = trainer.config, trainer.optimizer.param_groups[0]
    np.save(workdir / "train.npy", np.asarray(trainer.train_tokens))
    np.save(workdir / "val.npy", np.asarray(trainer.val_tokens))
    np.savez(workdir / "init.npz", **{n: p.data for n, p in trainer.model.named_parameters()})
    settings = {
        "model": {k: getattr(trainer.model.config, k) for k in ("vocab_size", "block_size", "n_layer",
                                                                "n_head", "n_embd", "bias")},
        "dropout": trainer.model.config.dropout,
        "batch_size": c.batch_size, "block_size": c.block_size, "steps": c.steps, "seed": c.seed,
        "betas": list(group["betas"]), "eps": group["eps"],
        "weight_decay": {str(g["weight_decay"]): len(g["params"]) for g in trainer.optimizer.param_groups},
        "grad_clip": c.grad_clip, "eval_interval": c.eval_interval, "eval_iters": c.eval_iters,
        "lr": [trainer.schedule.lr_at(step) for step in range(c.steps)],
        "rng": trainer.rng.bit_generator.state,
    }
    if settings["dropout"]:
        raise ValueError(f"TorchGPT has no dropout; the race needs dropout 0, got {settings['dropout']}")
    (workdir / "settings.json").write_text(json.dumps(settings))
    return settings


def tinygpt_batches_digest(trainer, steps):
    """sha1 of the `steps` batches the Trainer will draw, from a copy of its generator."""
    from tinygpt.data import random_windows
    rng, d = np.random.Generator(np.random.PCG64()), hashlib.sha1()
    rng.bit_generator.state = trainer.rng.bit_generator.state
    for _ in range(steps):
        digest(d, *random_windows(trainer.train_tokens, trainer.config.batch_size, trainer.config.block_size, rng))
    return d.hexdigest()


class Turns:
    """The timing of one worker: a turn ends every `chunk` steps (end_turn sends its seconds to the
    parent and waits for the next go); step_seconds sums the training steps alone."""

    def __init__(self, conn, chunk, steps):
        self.conn, self.chunk, self.steps = conn, chunk, steps
        self.total = self.step_seconds = self.cpu = 0.0
        self.evals = {}  # step -> {"train": loss, "val": loss}

    def start(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def end_turn(self, step):
        # CPU time too: with one thread it is the work itself, which other users' load barely moves
        self.total += time.perf_counter() - self.t0
        self.cpu += time.process_time() - self.c0
        self.conn.send(("turn", step))
        if step < self.steps:
            self.conn.recv()  # the parent's go
            self.start()

    def at_step(self, step, seconds):
        self.step_seconds += seconds
        if step % self.chunk == 0 and step < self.steps:
            self.end_turn(step)

    def at_eval(self, step, losses):
        self.evals[step] = losses
        if step == self.steps:
            self.end_turn(step)

    def result(self, **more):
        return {"total_seconds": self.total, "step_seconds": self.step_seconds, "cpu_seconds": self.cpu,
                "evals": self.evals, **more}


def tinygpt_worker(conn, workdir, steps, chunk, threads):
    """Builds the Trainer, exports what torch needs, then runs Trainer.run() in turns."""
    common.set_threads(threads)
    from tinygpt.train import Trainer
    turns = Turns(conn, chunk, steps)

    def progress(event):
        if event.kind == "step":  # the Trainer's own step time: tokens_per_sec = B * T / dt
            turns.at_step(event.step, tokens_per_step / event.tokens_per_sec)
        elif event.kind == "eval":
            turns.at_eval(event.step, {"train": event.train_loss, "val": event.val_loss})

    try:
        trainer = Trainer(race_config(workdir, steps), progress=progress)
        tokens_per_step = trainer.config.batch_size * trainer.config.block_size
        settings = export(trainer, workdir)
        batches = tinygpt_batches_digest(trainer, steps)
    except Exception as error:
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ready", {"parameters": trainer.model.num_parameters(), "tokens": len(trainer.train_tokens)
                         + len(trainer.val_tokens), "settings": {k: v for k, v in settings.items()
                                                                  if k not in ("lr", "rng")}}))
    conn.recv()
    turns.start()
    trainer.run()
    conn.send(("done", turns.result(batches=batches, openmp=common.openmp_runtimes())))


# ----- PyTorch's side --------------------------------------------------------------------------

class TorchRun:
    """TorchGPT trained as the Trainer trains, from what export() wrote in `workdir`."""

    def __init__(self, workdir):
        import torch
        from bench.torch_models import TorchGPT, load_tinygpt_gpt
        self.torch, self.workdir = torch, Path(workdir)
        s = self.settings = json.loads((self.workdir / "settings.json").read_text())
        self.train_tokens, self.val_tokens = np.load(self.workdir / "train.npy"), np.load(self.workdir / "val.npy")
        self.model = TorchGPT(**s["model"])
        with np.load(self.workdir / "init.npz") as init:
            load_tinygpt_gpt(self.model, dict(init))
        params = list(self.model.parameters())
        # weight_decay_groups: decay on every 2-D+ parameter, none on biases and LayerNorm gains
        decay, no_decay = [p for p in params if p.dim() >= 2], [p for p in params if p.dim() < 2]
        wd = max(float(k) for k in s["weight_decay"])
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                                            {"params": no_decay, "weight_decay": 0.0}],
                                           lr=s["lr"][0], betas=tuple(s["betas"]), eps=s["eps"])
        self.params = params
        self.rng = np.random.Generator(np.random.PCG64())
        self.rng.bit_generator.state = s["rng"]
        self.step_count, self.digest = 0, hashlib.sha1()

    def train_step(self):
        """One step, in Trainer.train_step's order -> loss (float)."""
        torch, s = self.torch, self.settings
        x, y = windows(self.train_tokens, s["batch_size"], s["block_size"], self.rng)
        digest(self.digest, x, y)
        for group in self.optimizer.param_groups:
            group["lr"] = s["lr"][self.step_count]
        _, loss = self.model(torch.from_numpy(x), torch.from_numpy(y))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if s["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(self.params, s["grad_clip"])
        self.optimizer.step()
        self.step_count += 1
        return loss.item()

    def estimate_loss(self):
        """Trainer.estimate_loss on the same windows: {"train": mean, "val": mean}."""
        s, out = self.settings, {}
        self.model.eval()
        with self.torch.no_grad():
            for k, (split, tokens) in enumerate((("train", self.train_tokens), ("val", self.val_tokens))):
                rng = eval_rng(s["seed"], k)
                losses = [self.model(*(self.torch.from_numpy(a) for a in
                                       windows(tokens, s["batch_size"], s["block_size"], rng)))[1].item()
                          for _ in range(s["eval_iters"])]
                out[split] = float(np.mean(losses))
        self.model.train()
        return out

    def save(self):
        """A checkpoint where the Trainer saves one (nanoGPT's ckpt.pt: model and optimizer)."""
        path = self.workdir / "torch-ckpt.pt"
        self.torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                         "step": self.step_count}, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)


def torch_worker(conn, workdir, steps, chunk, threads):
    """Trains TorchRun in turns, with the Trainer.run() loop's evaluations and checkpoints."""
    torch = common.import_torch()  # before anything else: torch's own OpenMP runtime
    if torch is None:
        conn.send(("error", "torch not installed"))
        return
    common.set_threads(threads, tinygpt=False)
    common.keep_freed_memory()  # Trainer.run() does the same on the tinygpt side
    try:
        run = TorchRun(workdir)
    except Exception as error:
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    interval = run.settings["eval_interval"]
    turns = Turns(conn, chunk, steps)
    conn.send(("ready", {}))
    conn.recv()
    turns.start()
    turns.at_eval(0, run.estimate_loss())  # where the loss curve starts, as Trainer.run()
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        run.train_step()
        turns.at_step(step, time.perf_counter() - t0)
        if step % interval == 0 or step == steps:
            turns.at_eval(step, run.estimate_loss())
            run.save()
    conn.send(("done", turns.result(batches=run.digest.hexdigest(), openmp=common.openmp_runtimes())))


# ----- the race ---------------------------------------------------------------------------------

def run(steps=STEPS, chunk=CHUNK, threads=common.THREADS, pause=common.PAUSE, log=print):
    """Both sides in turns -> {"tinygpt": result, "torch": result or None, "missing", "conditions", ...}"""
    import multiprocessing as mp
    ctx = mp.get_context("spawn")
    workdir = Path(tempfile.mkdtemp(prefix="tinygpt-default-train-"))
    workers, missing, info = {}, {}, {}
    busy = common.cpu_busy()
    load_before = common.conditions(busy)
    try:
        for lib, target in (("tinygpt", tinygpt_worker), ("torch", torch_worker)):
            if lib == "torch" and common.import_torch(load=False) is None:
                missing["torch"] = "torch not installed"
                continue
            proc, parent, msg = common.start_worker(ctx, target, (str(workdir), steps, chunk, threads))
            if proc is None:
                missing[lib] = msg[1]
                continue
            workers[lib], info[lib] = (proc, parent), msg[1]
        if "tinygpt" not in workers:
            raise RuntimeError(f"tinygpt's side did not start: {missing.get('tinygpt')}")
        log(f"  default train: {info['tinygpt']['parameters']:,} parameters, {info['tinygpt']['tokens']:,} tokens, "
            f"{steps} steps, turns of {chunk} steps")
        names, done, results, turn = list(workers), set(), {}, 0
        while len(done) < len(names):
            for lib in (names if turn % 2 == 0 else names[::-1]):
                if lib in done:
                    continue
                time.sleep(pause)
                conn = workers[lib][1]
                conn.send(("go",))
                _, step = conn.recv()
                if step >= steps:
                    results[lib] = conn.recv()[1]
                    done.add(lib)
            turn += 1
            log(f"  default train: turn {turn}, step {min(turn * chunk, steps)}", end="\r")
        log("")
        load_after = common.conditions()
    finally:
        for proc, conn in workers.values():
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
        shutil.rmtree(workdir, ignore_errors=True)
    return {"steps": steps, "chunk": chunk, "threads": threads, "tinygpt": results.get("tinygpt"),
            "torch": results.get("torch"), "missing": missing, "info": info.get("tinygpt"),
            "conditions": {"before": load_before, "after": load_after}}


def summary(res):
    """-> (markdown table, [notes]) of a run() result."""
    tg, th, n = res["tinygpt"], res["torch"], res["steps"]
    val = lambda r, step: r["evals"][step]["val"] if r and step in r["evals"] else None  # noqa: E731
    fmt = lambda v, d=4: None if v is None else f"{v:.{d}f}"  # noqa: E731
    rows = []
    for step in (0, n):
        a, b = val(tg, step), val(th, step)
        diff = None if a is None or b is None else a - b
        ok = "" if diff is None or step == 0 else (" ✓" if abs(diff) <= TARGET_LOSS else " ✗")
        rows.append([f"val loss at step {step}", fmt(a), fmt(b),
                     None if diff is None else f"{diff:+.4f}{ok}", f"within ±{TARGET_LOSS}" if step else "–"])
    a, b = tg["evals"][n]["train"], th["evals"][n]["train"] if th else None
    rows.append([f"train loss at step {n}", fmt(a), fmt(b), None if b is None else f"{a - b:+.4f}", "–"])
    for key, label in (("step_seconds", "training steps only"), ("total_seconds", "with loss estimates and checkpoints")):
        a, b = tg[key], th[key] if th else None
        r = None if b is None else a / b
        rows.append([f"wall time, {label} (s)", f"{a:.1f}", None if b is None else f"{b:.1f}",
                     None if r is None else f"{r:.2f}" + (" ✓" if r < TARGET_RATIO else " ✗") + " (ratio)",
                     f"ratio < {TARGET_RATIO:.1f}"])
    a, b = tg["cpu_seconds"], th["cpu_seconds"] if th else None
    rows.append(["CPU time of the worker, with estimates and checkpoints (s)", f"{a:.1f}",
                 None if b is None else f"{b:.1f}", None if b is None else f"{a / b:.2f} (ratio)",
                 "robust to load at 1 thread"])
    rows.append(["ms per step (steps only)", f"{1e3 * tg['step_seconds'] / n:.1f}",
                 None if th is None else f"{1e3 * th['step_seconds'] / n:.1f}", None, "–"])
    table = common.table(["", "tinygpt", "PyTorch", "difference or ratio", "target"], rows)
    notes = [f"same batches: {'yes' if th and tg['batches'] == th['batches'] else 'NO' if th else 'n/a'} "
             f"(sha1 of all {n} training batches on each side)",
             f"conditions: before {res['conditions']['before']}; after {res['conditions']['after']}"]
    notes += [f"{lib} not run: {why}" for lib, why in res["missing"].items()]
    return table, notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=None, help=f"default {STEPS} (the default run)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} steps")
    parser.add_argument("--chunk", type=int, default=CHUNK, help=f"steps per turn (default {CHUNK})")
    parser.add_argument("--threads", type=int, default=common.THREADS,
                        help=f"threads for each library (default {common.THREADS})")
    args = parser.parse_args(argv)
    steps = args.steps or (QUICK_STEPS if args.quick else STEPS)
    if steps < 1 or args.chunk < 1:
        parser.error("--steps and --chunk must be at least 1")
    res = run(steps, args.chunk, args.threads, log=lambda *a, **k: print(*a, **k, flush=True))
    table, notes = summary(res)
    print()
    print(f"default `tinygpt train` ({steps} steps, {args.threads} thread(s) each, turns of {args.chunk} steps, "
          f"{common.PAUSE} s pause) against the same GPT in PyTorch:")
    print(table)
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
