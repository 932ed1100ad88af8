"""A run directory: config.json, tokenizer.json, tokens.bin, ckpt_<step>.{json,safetensors},
metrics.csv (one row per evaluation), train_steps.csv (step, loss, lr of every step) and loss.png. Checkpoints go through tinygpt.checkpoint: arrays
(weights, optimizer moments) in safetensors, everything else (step, optimizer scalars, schedule,
RNG states) in JSON. load_run() rebuilds a run's model and tokenizer for generate/evaluate/finetune.
Not here: the training loop (trainer.py) or the file formats themselves (tinygpt.checkpoint).
"""

import csv
import io
import json
from collections import namedtuple
from pathlib import Path

import numpy as np

from tinygpt.checkpoint import CheckpointError, checkpoint_path, latest_checkpoint, load_checkpoint
from tinygpt.checkpoint import save_checkpoint, write_atomically
from tinygpt.models import SequenceClassifier
from tinygpt.nn import Dropout
from tinygpt.tokenizers import load_tokenizer
from tinygpt.train.config import build_model, read_run_config

CONFIG, TOKENIZER, TOKENS, METRICS, STEPS, PLOT, SAMPLE = (
    "config.json", "tokenizer.json", "tokens.bin", "metrics.csv", "train_steps.csv", "loss.png", "sample.txt")
METRIC_COLUMNS = ("step", "train_loss", "val_loss", "perplexity", "lr", "tokens_per_sec")
STEP_COLUMNS = ("step", "loss", "lr")  # train_steps.csv: the loss of each step's own batch

Run = namedtuple("Run", ["dir", "config", "model", "tokenizer", "step", "meta"])


def write_text_atomically(path, text):
    """UTF-8 text -> path, atomically (see tinygpt.checkpoint.write_atomically)."""
    write_atomically(path, text.encode("utf-8"))


def write_json(path, data):
    write_text_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


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


def save_step(run_dir, step, tensors, meta, keep):
    """Save checkpoint ckpt_<step> and delete all but the newest `keep`; returns its .json path."""
    path = save_checkpoint(checkpoint_path(run_dir, step), tensors, meta)
    old = sorted(Path(run_dir).glob("ckpt_*.json"))[:-keep]  # zero-padded steps sort by name
    for record in old:
        record.unlink()  # the JSON first: without it the arrays file is never read
        record.with_suffix(".safetensors").unlink(missing_ok=True)
    return path


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
    where = checkpoint or latest_checkpoint(run_dir)
    if where is None:
        raise CheckpointError(f"{run_dir} has no checkpoint yet (ckpt_*.json); train it first")
    tensors, meta = load_checkpoint(where)
    load_model_tensors(model, tensors, Path(where).name)
    model.eval()
    return Run(run_dir, config, model, tokenizer, meta.get("step"), meta)


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
