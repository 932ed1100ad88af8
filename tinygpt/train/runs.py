"""A run directory: config.json, tokenizer.json, tokens.bin, ckpt_<step>.{json,safetensors},
metrics.csv (one row per evaluation), train_steps.csv (step, loss, lr of every step) and loss.png. Checkpoints go through tinygpt.checkpoint: arrays
(weights, optimizer moments) in safetensors, everything else (step, optimizer scalars, schedule,
RNG states) in JSON. load_run() rebuilds a run's model and tokenizer for generate/evaluate/finetune.
Not here: the training loop (trainer.py) or the file formats themselves (tinygpt.checkpoint).
"""

import csv
import errno
import io
import json
import os
import re
import socket
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np

from tinygpt.checkpoint import (CheckpointError, CheckpointWarning, checkpoint_path, latest_checkpoint,
                                 load_checkpoint, load_newest_intact, orphan_arrays, rng_from_json,
                                 step_checkpoints)
from tinygpt.checkpoint import save_checkpoint, write_atomically
from tinygpt.models import SequenceClassifier
from tinygpt.nn import Dropout
from tinygpt.tokenizers import load_tokenizer
from tinygpt.train.config import build_model, read_run_config

CONFIG, TOKENIZER, TOKENS, METRICS, STEPS, PLOT, SAMPLE = (
    "config.json", "tokenizer.json", "tokens.bin", "metrics.csv", "train_steps.csv", "loss.png", "sample.txt")
METRIC_COLUMNS = ("step", "train_loss", "val_loss", "perplexity", "lr", "tokens_per_sec")
STEP_COLUMNS = ("step", "loss", "lr")  # train_steps.csv: the loss of each step's own batch

LOCK = ".lock"  # the writer's pid and hostname while train/resume/finetune runs in the directory

Run = namedtuple("Run", ["dir", "config", "model", "tokenizer", "step", "meta"])


def write_text_atomically(path, text):
    """UTF-8 text -> path, atomically (see tinygpt.checkpoint.write_atomically)."""
    write_atomically(path, text.encode("utf-8"))


def write_json(path, data):
    write_text_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# One writer per run directory
# ---------------------------------------------------------------------------------------------


class RunLock:
    """An exclusive lock on a run directory: two writers would interleave metrics.csv and delete
    each other's checkpoints. Readers (generate, evaluate) never take it.

    The lock is fcntl.flock on run_dir/.lock, which holds the holder's "pid hostname". The kernel
    drops a flock when its process dies, so a lock file left by a killed run (a dead pid) is simply
    taken over. Where flock does not exist (Windows) only the pid check guards the directory.
    """

    def __init__(self, run_dir):
        self.path, self.fd = Path(run_dir) / LOCK, None

    def acquire(self):
        try:
            import fcntl
        except ImportError:  # no flock: fall back to the pid in the file
            fcntl = None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if fcntl is None:
                holder = _read_holder(self.path)
                if holder and holder[1] == socket.gethostname() and _pid_alive(holder[0]) and holder[0] != os.getpid():
                    os.close(fd)
                    raise _locked_error(self.path, holder)
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    os.close(fd)
                    if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    raise _locked_error(self.path, _read_holder(self.path)) from None
                # the holder may have unlinked the file between our open and our flock: then we
                # hold a lock on a name nobody else sees; open the current file again
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode("utf-8"))
            os.fsync(fd)
            # a file object, not a bare descriptor: if the holder is dropped without release() (a
            # Trainer that is never run), garbage collection closes it and so drops the lock
            self.fd = os.fdopen(fd, "r+b", buffering=0)
            return self

    def release(self):
        """Unlink, then unlock: a waiting writer that opened the old file sees it is gone and retries."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self.fd.close()  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(path):
    """The lock file -> (pid, hostname), or None when it is empty or unreadable."""
    try:
        pid, host = path.read_text(encoding="utf-8").split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, but another user's
    return True


def _locked_error(path, holder):
    who = f"process {holder[0]} on {holder[1]}" if holder else "another process"
    return ValueError(f"{path.parent} is in use by {who} (lock file {path}); wait for it to finish or "
                      f"stop it (kill {holder[0] if holder else '<pid>'}); only one train/finetune may "
                      f"write a run directory at a time")


def remove_leftover_temp_files(run_dir):
    """Delete the .<name>.*.tmp files a killed writer left behind (write_atomically's temp names)
    -> their names. Only a writer holding the RunLock may call this: a live writer's temp file
    would be deleted under it."""
    removed = []
    for path in Path(run_dir).glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return sorted(removed)


# ---------------------------------------------------------------------------------------------
# Model and optimizer state <-> checkpoint arrays + JSON
# ---------------------------------------------------------------------------------------------


def model_tensors(model):
    """{"model.<dotted name>": array} for every parameter."""
    return {f"model.{name}": array for name, array in model.state_dict().items()}


def load_model_tensors(model, tensors, where):
    """Copy the "model.*" arrays into `model`; a CheckpointError in one line if they do not fit."""
    state = {name[len("model."):]: array for name, array in tensors.items() if name.startswith("model.")}
    own = dict(model.named_parameters())
    wrong = [f"{n} is {state[n].shape} in the checkpoint but {own[n].shape} in the model"
             for n in own if n in state and state[n].shape != own[n].shape]
    missing = [n for n in own if n not in state]
    unexpected = [n for n in state if n not in own]
    problems = wrong[:1]
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {unexpected[0]})")
    if problems:
        more = f" (and {len(wrong) - 1} more shape mismatches)" if len(wrong) > 1 else ""
        raise CheckpointError(f"checkpoint {where} does not fit the model in config.json: "
                              f"{'; '.join(problems)}{more}; was it copied from a run with another model?")
    model.load_state_dict(state)


def optimizer_tensors(optimizer):
    """optimizer -> ({"optim.<index>.<name>": array}, JSON-able rest of its state_dict)."""
    state_dict = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state_dict["state"].items():
        scalars[index] = {}
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                tensors[f"optim.{index}.{name}"] = value  # Adam's moments exp_avg, exp_avg_sq
            else:
                scalars[index][name] = value  # its step count
    return tensors, {"param_groups": state_dict["param_groups"], "state": scalars}


def load_optimizer(optimizer, tensors, meta, where):
    """The inverse of optimizer_tensors, into an optimizer over the same parameters."""
    state = {index: dict(scalars) for index, scalars in meta["state"].items()}
    for name, array in tensors.items():
        if name.startswith("optim."):
            _, index, field = name.split(".", 2)
            state.setdefault(index, {})[field] = array
    try:
        optimizer.load_state_dict({"param_groups": meta["param_groups"], "state": state})
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise CheckpointError(f"checkpoint {where}: the optimizer state does not fit this model ({e})") from None


def dropout_modules(model):
    """[(name, Dropout)]: each has its own Generator, whose state a checkpoint must keep."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, Dropout)]


# Dropout modules a checkpoint may lack because tinygpt added them after it was written: a GPT's
# attention-probability dropout. Such a module keeps the generator it was built with.
ADDED_DROPOUTS = (".attn.attn_dropout",)


def missing_dropouts(model, saved):
    """Names of model's dropout modules absent from a checkpoint's rng['dropout'] dict `saved`."""
    return [name for name, _ in dropout_modules(model) if name not in saved]


def restore_dropout_rngs(model, saved):
    """Set each dropout module's generator from a checkpoint's rng['dropout'] dict (checked first
    by check_lm_meta or the fine-tuning loader); an added module (ADDED_DROPOUTS) missing there
    keeps its own."""
    for name, module in dropout_modules(model):
        if name in saved:
            module.rng = rng_from_json(saved[name])


def save_step(run_dir, step, tensors, meta, keep):
    """Save checkpoint ckpt_<step> and delete all but the newest `keep`; returns its .json path."""
    path = save_checkpoint(checkpoint_path(run_dir, step), tensors, meta)
    old = sorted(Path(run_dir).glob("ckpt_*.json"))[:-keep]  # zero-padded steps sort by name
    for record in old:
        record.unlink()  # the JSON first: without it the arrays file is never read
        record.with_suffix(".safetensors").unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------------------------------------
# Choosing and checking the checkpoint a resumed run starts from
# ---------------------------------------------------------------------------------------------


def resume_checkpoint(run_dir, name=None):
    """The checkpoint to resume run_dir from -> (path, tensors, meta, notes).

    Without `name`, the newest; if it is damaged, a CheckpointError that names the newest intact
    one and the flag to choose it (silently training on from an older step would surprise). With
    `name` (e.g. "ckpt_000020"), that one; newer checkpoints are renamed damaged_ckpt_<step>.* so
    they neither shadow the resumed run's saves nor get pruned in their place.
    Only the holder of the RunLock may call this (it renames files)."""
    run_dir, notes = Path(run_dir), []
    if name is None:
        path = latest_checkpoint(run_dir)
        if path is None:
            raise ValueError(f"{run_dir} has no checkpoint to resume from (ckpt_*.json)")
        notes += [f"{o.name} has no {o.with_suffix('.json').name} (its save was interrupted); resuming from "
                  f"{path.stem}" for o in orphan_arrays(run_dir)]
        try:
            tensors, meta = load_checkpoint(path)
        except CheckpointError as e:
            for older in step_checkpoints(run_dir)[1:]:
                try:
                    load_checkpoint(older)
                except CheckpointError:
                    continue
                raise CheckpointError(f"cannot resume {run_dir}: {e}; the newest intact checkpoint is "
                                      f"{older.stem}: resume from it with `tinygpt train --resume {run_dir} "
                                      f"--checkpoint {older.stem}`") from None
            raise
        return path, tensors, meta, notes
    path = run_dir / Path(str(name)).name
    path = path.with_suffix(".json") if path.suffix in ("", ".safetensors") else path
    match = re.match(r"^ckpt_(\d+)\.json$", path.name)
    if match is None or not path.is_file():
        have = ", ".join(p.stem for p in step_checkpoints(run_dir)) or "none"
        raise ValueError(f"--checkpoint {name!r}: {run_dir} has no such checkpoint; expected one of: {have}")
    tensors, meta = load_checkpoint(path)
    step = int(match[1])
    for newer in [p for p in step_checkpoints(run_dir) if int(p.stem[len("ckpt_"):]) > step] + \
            [p for p in run_dir.glob("ckpt_*.safetensors") if int(p.stem[len("ckpt_"):]) > step]:
        for part in (newer.with_suffix(".json"), newer.with_suffix(".safetensors")):
            if part.exists():
                part.rename(part.with_name("damaged_" + part.name))
                notes.append(f"moved {part.name} aside to damaged_{part.name}")
    return path, tensors, meta, notes


def check_lm_meta(meta, where, max_step, model):
    """A training checkpoint's JSON meta, checked field by field before anything is restored, so a
    hand-edited file is one message naming the file, the field, the value and the expectation
    instead of a KeyError deep in the optimizer."""
    def bad(field, value, expected):
        return CheckpointError(f"checkpoint {where}: {field} is {value!r:.80}, expected {expected}")

    if meta.get("kind") != "lm":
        raise bad("kind", meta.get("kind"), "'lm' (a language-model training checkpoint)")
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise bad("step", step, "an int >= 0")
    if step > max_step:
        raise ValueError(f"{Path(where).parent} is already at step {step}, past steps={max_step}; "
                         f"pass a larger --steps to train on")
    optimizer = meta.get("optimizer")
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("param_groups"), list) \
            or not isinstance(optimizer.get("state"), dict) \
            or not all(isinstance(v, dict) for v in optimizer["state"].values()):
        raise bad("optimizer", optimizer, "{'param_groups': [...], 'state': {index: {...}}}")
    if not isinstance(meta.get("schedule"), dict):
        raise bad("schedule", meta.get("schedule"), "a dict from the schedule's state_dict()")
    rng = meta.get("rng")
    if not isinstance(rng, dict) or not isinstance(rng.get("dropout"), dict):
        raise bad("rng", rng, "{'data': <rng state>, 'dropout': {module name: <rng state>}}")
    try:
        rng_from_json(rng.get("data"))
    except (ValueError, TypeError, KeyError) as e:
        raise bad("rng['data']", rng.get("data"), f"a saved random generator state ({e})") from None
    names = [name for name, _ in dropout_modules(model)]
    added = [name for name in missing_dropouts(model, rng["dropout"]) if name.endswith(ADDED_DROPOUTS)]
    if sorted(rng["dropout"]) != sorted(set(names) - set(added)):
        raise bad("rng['dropout'] names", sorted(rng["dropout"]), f"the model's dropout modules {sorted(names)}")
    for name in set(names) - set(added):
        try:
            rng_from_json(rng["dropout"][name])
        except (ValueError, TypeError, KeyError) as e:
            raise bad(f"rng['dropout'][{name!r}]", rng["dropout"][name], f"a saved random generator state ({e})") from None


# ---------------------------------------------------------------------------------------------
# Loading a finished (or interrupted) run
# ---------------------------------------------------------------------------------------------


def build_run_model(config, seed=0):
    """A run's config.json dict -> its (untrained) model: an LM, or a SequenceClassifier around one."""
    body = build_model(config["model"], seed=seed)
    if config["kind"] == "classifier":
        return SequenceClassifier(body, len(config["label_names"]), pooling=config["pooling"], seed=seed)
    return body


def load_run_tokenizer(run_dir):
    path = Path(run_dir) / TOKENIZER
    if not path.is_file():
        raise ValueError(f"{run_dir} has no {TOKENIZER}; the run directory is incomplete")
    return load_tokenizer(path)


def load_run(run_dir, checkpoint=None):
    """run_dir (and optionally one of its checkpoints) -> Run(dir, config, model, tokenizer, step, meta).

    The model is in eval mode with the checkpoint's weights; every fault is one clear error."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    tokenizer = load_run_tokenizer(run_dir)
    model = build_run_model(config)
    if config["model"]["vocab_size"] != tokenizer.vocab_size:
        raise ValueError(f"{run_dir}: the model has vocab_size {config['model']['vocab_size']} but "
                         f"{TOKENIZER} has {tokenizer.vocab_size} tokens; they come from different runs")
    if checkpoint is not None:
        where = checkpoint
        tensors, meta = load_checkpoint(where)
    else:
        if latest_checkpoint(run_dir) is None:
            raise CheckpointError(f"{run_dir} has no checkpoint yet (ckpt_*.json); train it first")
        where, tensors, meta, notes = load_newest_intact(run_dir)  # a reader may fall back
        for message in notes:
            warnings.warn(f"{run_dir}: {message}", CheckpointWarning, stacklevel=2)
    load_model_tensors(model, tensors, Path(where).name)
    model.eval()
    return Run(run_dir, config, model, tokenizer, meta.get("step"), meta)


def is_hf_folder(path):
    """A Hugging Face model folder (config.json without tinygpt's "kind", and safetensors weights),
    as opposed to a tinygpt run directory, which also has a config.json."""
    folder = Path(path)
    if not (folder / CONFIG).is_file() or not any((folder / name).is_file() for name in
                                                  ("model.safetensors", "model.safetensors.index.json")):
        return False
    try:
        return "kind" not in json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False


def load_lm_source(path):
    """What training (init_from) and fine-tuning (from_run) start from -> a Run: a tinygpt run
    directory (load_run), or a Hugging Face GPT-2 folder with its tokenizer, described by the
    config.json fields a run would have (kind, model, train's tokenizer/vocab_size/block_size)."""
    if not is_hf_folder(path):
        return load_run(path)
    from tinygpt.models.hf_gpt2 import load_model_from_path
    from tinygpt.tokenizers import GPT2Tokenizer
    model, tokenizer = load_model_from_path(path, load_tokenizer=GPT2Tokenizer.from_pretrained)
    if tokenizer is None:
        raise ValueError(f"{path} is a Hugging Face model folder without a tokenizer (tokenizer.json, or "
                         f"vocab.json + merges.txt); a run needs one to encode its text")
    c = model.config
    if tokenizer.vocab_size != c.vocab_size:
        raise ValueError(f"{path}: the model's vocab_size is {c.vocab_size} but its tokenizer has "
                         f"{tokenizer.vocab_size} tokens; a run keeps the two equal")
    model_config = {"type": "gpt", "vocab_size": c.vocab_size, "block_size": c.block_size, "n_layer": c.n_layer,
                    "n_head": c.n_head, "n_embd": c.n_embd, "dropout": c.dropout, "bias": c.bias}
    train = {"tokenizer": "bpe", "bpe_pattern": "gpt2", "vocab_size": c.vocab_size, "block_size": c.block_size}
    config = {"kind": "lm", "model": model_config, "train": train}
    return Run(Path(path), config, model, tokenizer, None, {"huggingface": True})


# ---------------------------------------------------------------------------------------------
# metrics.csv and the loss curve
# ---------------------------------------------------------------------------------------------


class MetricsLog:
    """metrics.csv, one row per evaluation; a row is written and flushed as soon as it exists."""

    def __init__(self, path, columns=METRIC_COLUMNS):
        self.path, self.columns = Path(path), tuple(columns)

    def rows(self):
        if not self.path.is_file():
            return []
        with open(self.path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def append(self, row):
        new = not self.path.is_file()
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self.columns)
            if new:
                writer.writeheader()
            writer.writerow({k: _format(row.get(k)) for k in self.columns})

    def truncate_after(self, step):
        """Drop rows past `step`: a resumed run repeats what came after its checkpoint."""
        kept = [row for row in self.rows() if int(row["step"]) <= step]
        lines = [",".join(self.columns)] + [",".join(row[k] for k in self.columns) for row in kept]
        write_text_atomically(self.path, "\n".join(lines) + "\n")


def _format(value):
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def fresh_run_dir(path):
    """path, or path-2, path-3, ...: the first that does not exist or is empty, so that running
    the same `tinygpt train` again makes a new run instead of refusing."""
    path = Path(path)
    candidate, n = path, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def ema(values, beta=0.9):
    """Exponential moving average with bias correction (as Adam's moments): the first points are
    not pulled towards 0. values (N,) -> (N,)."""
    out, average = [], 0.0
    for k, v in enumerate(values, start=1):
        average = beta * average + (1 - beta) * v
        out.append(average / (1 - beta ** k))
    return out


def plot_metrics(metrics_path, png_path):
    """loss.png of the run that holds metrics_path; returns False (quietly) without matplotlib."""
    try:
        plot_runs([Path(metrics_path).parent], png_path)
    except ImportError:
        return False
    return True


def plot_runs(run_dirs, png_path):
    """One PNG comparing runs: each step's training loss (faint) and its EMA, the evaluations'
    train/val estimates as points, and the learning rate on a second axis. ImportError without
    matplotlib, which is imported here only, so that training never needs it."""
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 5))
    lr_ax = ax.twinx()
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, run_dir in enumerate(run_dirs):
        run_dir, color = Path(run_dir), colors[k % len(colors)]
        name = run_dir.name if len(run_dirs) == 1 else str(run_dir)
        steps = MetricsLog(run_dir / STEPS, STEP_COLUMNS).rows()
        if steps:
            x, loss = [int(r["step"]) for r in steps], [float(r["loss"]) for r in steps]
            window = max(1, len(loss) // 50)  # smooth more on longer runs
            ax.plot(x, loss, color=color, alpha=0.2, linewidth=0.8)
            ax.plot(x, ema(loss, beta=1 - 1 / (window + 1)), color=color, linewidth=1.5,
                    label=f"{name}: train loss per step (EMA)")
            lr_ax.plot(x, [float(r["lr"]) for r in steps], color=color, linestyle=":", linewidth=1,
                       label=f"{name}: learning rate")
        evals = [r for r in MetricsLog(run_dir / METRICS).rows() if r["val_loss"]]
        if evals:
            x = [int(r["step"]) for r in evals]
            ax.plot(x, [float(r["val_loss"]) for r in evals], color=color, marker="o", linestyle="--",
                    label=f"{name}: val loss (estimate)")
            ax.plot(x, [float(r["train_loss"]) for r in evals], color=color, marker="x", linestyle="none",
                    label=f"{name}: train loss (estimate)")
        if not steps and not evals:
            raise ValueError(f"{run_dir} has neither {STEPS} nor {METRICS}; is it a run directory?")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # a short run would get ticks at step 2.5
    ax.set_title(Path(run_dirs[0]).name if len(run_dirs) == 1 else "comparison")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    lr_ax.set_ylabel("learning rate (dotted)")
    lr_ax.set_ylim(bottom=0)
    handles = ax.get_legend_handles_labels()
    ax.legend(*handles, fontsize="small", loc="upper right")
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    write_atomically(png_path, png.getvalue())  # an interrupted run never leaves half a PNG
