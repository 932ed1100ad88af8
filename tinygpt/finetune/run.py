"""Fine-tuning a pretrained language model to classify texts: the run's body (GPT or LSTM) inside a
SequenceClassifier, trained on labelled examples and scored by accuracy and macro-F1 on a held-out split
(or on a fixed test file, test_data).

Texts are encoded by the pretrained run's tokenizer, cut to max_len tokens and right-padded; the
classifier reads each text's state at its last real token (or the mean). With freeze_body only the head learns,
so the body's features never change: they are computed once and reused every epoch.
Not here: the classifier itself (models/classifier.py), loading and splitting the labelled examples
(data.py) or language-model training (tinygpt.train).
"""

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

import tinygpt
from tinygpt import functional as F
from tinygpt.checkpoint import checkpoint_path, rng_from_json, rng_state_to_json, save_checkpoint
from tinygpt.text_files import load_labelled
from tinygpt.finetune import state as finetune_state
from tinygpt.finetune.data import encode_texts, load_examples, split_examples, to_batch_arrays
from tinygpt.generate import inference
from tinygpt.models import SequenceClassifier
from tinygpt.optim import AdamW, WarmupCosine, clip_grad_norm_, weight_decay_groups
from tinygpt.tensor import Tensor
from tinygpt.train import runs
from tinygpt.train.config import build_model
from tinygpt.train.trainer import TrainEvent


def _looks_like_a_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


UNKNOWN_LIMIT = 0.05  # a char model that cannot read more than this share of the texts is refused


@dataclass
class FinetuneConfig:
    from_run: str  # a language-model run directory (tinygpt train), or a Hugging Face GPT-2 folder
    data: Optional[str] = None  # a labelled CSV (text,label) or JSONL file ...
    corpus: Optional[str] = None  # ... or a labelled built-in corpus, e.g. "sentiment-zh"
    test_data: Optional[str] = None  # score on this labelled file; then all of data/corpus is for training
    val_fraction: float = 0.2  # held out for the reported accuracy (without test_data)
    train_size: Optional[int] = None  # use only this many training examples (None: all)
    test_size: Optional[int] = None  # and this many held-out ones
    freeze_body: bool = False  # train the head only
    from_scratch: bool = False  # the baseline: the same model and tokenizer, random weights
    epochs: int = 3
    steps: Optional[int] = None  # overrides epochs
    eval_interval: Optional[int] = None  # score the held-out examples every N steps (None: every epoch)
    lr: float = 3e-4
    batch_size: int = 32
    max_len: int = 64
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    pooling: str = "last"  # last | mean
    allow_unknown: bool = False  # train even when over UNKNOWN_LIMIT of the characters are unknown
    seed: int = 0
    out_dir: Optional[str] = None  # None: runs/<from_run>-<data>-cls
    resume: bool = False  # continue the run in out_dir from its newest checkpoint (see FinetuneConfig.resuming)

    def __post_init__(self):
        if (self.data is None) == (self.corpus is None):
            raise ValueError("give exactly one of data (a labelled .csv/.jsonl file) or corpus "
                             f"(e.g. 'sentiment-zh'), got data={self.data!r}, corpus={self.corpus!r}")
        if self.freeze_body and self.from_scratch:
            raise ValueError("freeze_body (--freeze-body) with from_scratch (--from-scratch) would "
                             "train a head on a frozen random body; drop one of them")
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("max_len", 1), ("seed", 0)):
            _check_int(name, getattr(self, name), minimum)
        for name in ("steps", "eval_interval", "train_size", "test_size"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        for name in ("lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', got {self.pooling!r}")

    @classmethod
    def resuming(cls, run_dir):
        """The settings an interrupted fine-tuning run in run_dir was started with, set to resume it."""
        saved = finetune_state.read_settings(run_dir)
        return cls(**{**saved, "resume": True, "out_dir": str(run_dir)})

    def resolved(self):
        name = Path(self.data).stem if self.data else self.corpus
        suffix = "scratch" if self.from_scratch else ("frozen" if self.freeze_body else "cls")
        return dataclasses.replace(self, out_dir=self.out_dir or str(
            Path("runs") / f"{Path(self.from_run).name}-{name}-{suffix}"))


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class FinetuneResult:
    run_dir: Path
    accuracy: float  # on the held-out split
    macro_f1: float
    confusion: list  # confusion[true][predicted] = count
    label_names: list
    n_train: int
    n_test: int
    dropped_examples: int  # texts with no token left (e.g. only unknown characters)
    dropped_chars: int  # characters a char tokenizer has no id for, removed before encoding
    seconds: float
    interrupted: bool = False  # a signal stopped it: the checkpoint holds the state after the last whole step
    stop_signal: Optional[int] = None  # that signal's number (None: not interrupted, or a KeyboardInterrupt)
    checkpoint: Optional[Path] = None  # the newest checkpoint's .json
    step: int = 0  # steps done


def classification_report(labels, predictions, n_classes):
    """-> {"accuracy", "macro_f1", "confusion"}: macro-F1 averages each class's F1 with equal weight,
    so a model that always answers the majority class scores low even when accuracy looks fine."""
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)  # rows: true class, columns: predicted
    true_pos = np.diag(confusion).astype(float)
    precision = true_pos / np.maximum(confusion.sum(axis=0), 1)
    recall = true_pos / np.maximum(confusion.sum(axis=1), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return {"accuracy": float(true_pos.sum() / max(len(labels), 1)), "macro_f1": float(f1.mean()),
            "confusion": confusion.tolist()}


# ---------------------------------------------------------------------------------------------
# Model, prediction, training
# ---------------------------------------------------------------------------------------------


def predict(model, idx, lengths, batch_size=64):
    """idx: (N, T), lengths: (N,) -> predicted labels (N,): the argmax of the logits."""
    out = []
    with inference(model):
        for i in range(0, len(idx), batch_size):
            logits, _ = model(idx[i:i + batch_size], lengths=lengths[i:i + batch_size])
            out.append(logits.data.argmax(axis=-1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def predict_from_features(model, features):
    """features: (N, C) pooled body outputs -> predicted labels (N,), through the head alone."""
    with inference(model):
        return model.head(Tensor(features)).data.argmax(axis=-1)


def pooled_features(model, idx, lengths, batch_size=64):
    """(N, T) -> (N, C): what the head reads, computed once when the body is frozen."""
    out = []
    with inference(model):
        for i in range(0, len(idx), batch_size):
            x = model.body.features(idx[i:i + batch_size])  # (B, T, C)
            out.append(model.pool(x, lengths[i:i + batch_size]).data)  # (B, C)
    return np.concatenate(out)


def finetune(config, progress=None, log=None):
    """Fine-tune config.from_run for classification -> FinetuneResult; saves a classifier run, with
    checkpoints every eval_interval steps (or epoch) from which config.resume continues exactly."""
    progress, log = progress or (lambda event: None), log or (lambda message: None)
    started, config = time.perf_counter(), config.resolved()
    run_dir = Path(config.out_dir)
    lock = _lock_to_resume(run_dir, log) if config.resume else None  # before anything is read
    try:
        return _finetune(config, run_dir, started, progress, log)
    finally:
        if lock is not None:
            lock.release()


def _lock_to_resume(run_dir, log):
    """The run lock of an interrupted fine-tuning run in run_dir (refusing a finished one)."""
    if (run_dir / runs.CONFIG).exists():
        raise ValueError(f"{run_dir} is a finished classifier run; there is nothing to resume")
    finetune_state.read_settings(run_dir)  # a clear error if this is not a fine-tuning run
    lock = runs.RunLock(run_dir).acquire()
    for name in runs.remove_leftover_temp_files(run_dir):
        log(f"removed {name}, left by an interrupted save")
    return lock


def _finetune(config, run_dir, started, progress, log):
    if not config.resume and run_dir.exists() and any(run_dir.iterdir()):
        hint = (f"; resume it with --resume {run_dir}" if (run_dir / finetune_state.SETTINGS).exists()
                and not (run_dir / runs.CONFIG).exists() else "")
        raise ValueError(f"{run_dir} exists and is not empty{hint}; choose another --out-dir")
    source = runs.load_lm_source(config.from_run)  # a run, or a Hugging Face GPT-2 folder
    if source.config["kind"] != "lm":
        raise ValueError(f"{config.from_run} is a {source.config['kind']} run; fine-tune a language-model run")
    block_size = source.config["model"].get("block_size")
    if block_size is not None and config.max_len > block_size:
        raise ValueError(f"max_len {config.max_len} exceeds the model's block_size {block_size}; "
                         f"pass --max-len {block_size} or less")

    texts, labels, label_names = load_examples(config)
    numeric = [name for name in label_names if _looks_like_a_number(name)]
    if numeric and any(not name.lstrip("-").isdigit() for name in numeric):
        log(f"note: labels such as {numeric[:3]} look like numbers; each distinct label is a class "
            f"name ({len(label_names)} classes), not a value to regress on")
    (train_texts, train_labels), (test_texts, test_labels) = split_examples(config, texts, labels, label_names)
    train_ids, dropped_train = encode_texts(source.tokenizer, train_texts)
    test_ids, dropped_test = encode_texts(source.tokenizer, test_texts)
    x_train, len_train, y_train = to_batch_arrays(train_ids, train_labels, config.max_len)
    x_test, len_test, y_test = to_batch_arrays(test_ids, test_labels, config.max_len)
    dropped_examples = len(train_ids) + len(test_ids) - len(x_train) - len(x_test)
    n_chars = sum(len(t) for t in train_texts) + sum(len(t) for t in test_texts)
    unknown_share = (dropped_train + dropped_test) / max(n_chars, 1)
    if unknown_share > UNKNOWN_LIMIT and not config.allow_unknown:
        raise ValueError(f"{dropped_train + dropped_test:,} of the {n_chars:,} characters of the labelled "
                         f"texts ({unknown_share:.0%}) are not in the pretrained run's vocabulary and "
                         f"would be dropped; pretrain on text like these, or pass --allow-unknown "
                         f"(allow_unknown=True) to fine-tune on what is left")
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError("no example has a token this tokenizer knows; the texts and the pretrained "
                         "run's vocabulary do not overlap")
    log(f"{len(x_train)} training / {len(x_test)} held-out examples, labels {label_names}; "
        f"{dropped_train + dropped_test} unknown characters and {dropped_examples} empty texts dropped")

    body = source.model if not config.from_scratch else build_model(source.config["model"], seed=config.seed)
    model = SequenceClassifier(body, len(label_names), pooling=config.pooling, seed=config.seed)
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    steps = config.steps or config.epochs * steps_per_epoch
    eval_interval = config.eval_interval or steps_per_epoch
    params = model.head.named_parameters() if config.freeze_body else model.named_parameters()
    optimizer = AdamW(weight_decay_groups(params, config.weight_decay), lr=config.lr, weight_decay=config.weight_decay)
    schedule = WarmupCosine(config.lr, config.lr / 10, max(1, steps // 10), steps)
    # frozen: the body's output never changes, so the head trains and is scored on features computed once
    features = pooled_features(model, x_train, len_train) if config.freeze_body else None
    test_features = pooled_features(model, x_test, len_test) if config.freeze_body else None

    rng = np.random.default_rng(config.seed)
    metrics = runs.MetricsLog(run_dir / runs.METRICS, ("step", "train_loss", "val_accuracy", "val_macro_f1"))
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = None if config.resume else runs.RunLock(run_dir).acquire()  # one writer per run directory
    try:
        step, losses, position, report, checkpoint, saved_step = 0, [], 0, None, None, None
        if config.resume:  # the weights, optimizer, schedule, dropout streams, and where the data order stood
            checkpoint, meta, notes = finetune_state.load_state(run_dir, model, optimizer, schedule)
            for message in notes:
                log(message)
            step, losses, position, saved_step = meta["step"], meta["losses"], meta["position"], meta["step"]
            rng = rng_from_json(meta["rng"]["epoch"])  # replays this epoch's shuffle
            metrics.truncate_after(step)
            log(f"resuming {run_dir} at step {step} of {steps} from {checkpoint.stem}")
        else:
            finetune_state.write_settings(run_dir, dataclasses.asdict(config))
        model.train()
        with finetune_state.StopOnSignal(log) as stopper:
            while step < steps:
                epoch_rng = rng_state_to_json(rng)  # saved with each checkpoint: resume replays the shuffle
                order = rng.permutation(len(x_train))  # a new shuffle each epoch
                for i in range(position, len(order), config.batch_size):
                    if stopper.requested:
                        break
                    batch = order[i:i + config.batch_size]
                    schedule.step(optimizer)
                    if features is not None:
                        loss = F.cross_entropy(model.head(Tensor(features[batch])), y_train[batch])
                    else:
                        _, loss = model(x_train[batch], y_train[batch], len_train[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    if config.grad_clip > 0:
                        clip_grad_norm_(optimizer.parameters(), config.grad_clip)
                    optimizer.step()
                    step, position = step + 1, i + config.batch_size
                    losses = (losses + [loss.item()])[-eval_interval:]  # what the next metrics row averages
                    progress(TrainEvent("step", step, steps, loss=losses[-1]))
                    if step % eval_interval == 0 or step == steps:  # the last step is always scored
                        predicted = (predict(model, x_test, len_test) if test_features is None
                                     else predict_from_features(model, test_features))
                        report = classification_report(y_test, predicted, len(label_names))
                        metrics.append({"step": step, "train_loss": float(np.mean(losses[-eval_interval:])),
                                        "val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"]})
                        progress(TrainEvent("eval", step, steps, train_loss=float(np.mean(losses[-eval_interval:])),
                                            accuracy=report["accuracy"]))
                        model.train()
                        if step < steps:  # the last one is the classifier run's own checkpoint below
                            checkpoint = finetune_state.save_state(run_dir, step, model, optimizer, schedule,
                                                                   epoch_rng, position, losses)
                            saved_step = step
                    if step == steps:
                        break
                else:
                    position = 0  # the epoch is done: the next one starts at the top of its order
                    continue
                break  # the last step, or a signal

            if step < steps:  # a signal: the state after the last whole step is saved
                if saved_step != step:
                    checkpoint = finetune_state.save_state(run_dir, step, model, optimizer, schedule,
                                                           epoch_rng, position, losses)
                return FinetuneResult(run_dir, report and report["accuracy"], report and report["macro_f1"],
                                      report and report["confusion"], label_names, len(x_train), len(x_test),
                                      dropped_examples, dropped_train + dropped_test, time.perf_counter() - started,
                                      interrupted=True, stop_signal=int(stopper.signal), checkpoint=checkpoint,
                                      step=step)
            _save_classifier(run_dir, config, source, model, label_names, report, step)
        return FinetuneResult(run_dir, report["accuracy"], report["macro_f1"], report["confusion"], label_names,
                              len(x_train), len(x_test), dropped_examples, dropped_train + dropped_test,
                              time.perf_counter() - started,
                              checkpoint=checkpoint_path(run_dir, step).with_suffix(".json"), step=step)
    finally:
        if lock is not None:
            lock.release()


def _save_classifier(run_dir, config, source, model, label_names, report, step):
    source.tokenizer.save(run_dir / runs.TOKENIZER)  # a Hugging Face folder's may be vocab.json + merges.txt
    runs.write_json(run_dir / runs.CONFIG, {
        "kind": "classifier", "tinygpt_version": tinygpt.__version__, "finetune": dataclasses.asdict(config),
        "model": source.config["model"], "label_names": list(label_names), "pooling": config.pooling,
        "max_len": config.max_len})
    runs.write_json(run_dir / "results.json", {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                                               "confusion": report["confusion"], "label_names": list(label_names)})
    save_checkpoint(checkpoint_path(run_dir, step), runs.model_tensors(model),
                    {"kind": "classifier", "step": step, "accuracy": report["accuracy"]})


def evaluate_classifier(run_dir, data=None):
    """A classifier run -> classification_report on its held-out split (rebuilt from its seed), or
    on every example of another labelled file `data` (its label names must be the run's)."""
    run = runs.load_run(run_dir)
    if run.config["kind"] != "classifier":
        raise ValueError(f"{run_dir} is not a classifier run (it is {run.config['kind']!r})")
    names = run.config["label_names"]
    if data is None:
        config = FinetuneConfig(**run.config["finetune"])
        texts, labels, _ = load_examples(config)
        _, (texts, labels) = split_examples(config, texts, labels, names)
    else:
        texts, labels, file_names = load_labelled(data)
        unknown = sorted(set(file_names) - set(names))
        if unknown:
            raise ValueError(f"{data} has labels {unknown} that the classifier was not trained on ({names})")
        labels = np.array([names.index(file_names[k]) for k in labels], dtype=np.int64)
    ids, _ = encode_texts(run.tokenizer, texts)
    idx, lengths, labels = to_batch_arrays(ids, labels, run.config["max_len"])
    report = classification_report(labels, predict(run.model, idx, lengths), len(names))
    return {**report, "label_names": names, "n": len(labels)}
