"""The training loop: a random batch of windows -> forward -> backward -> clip -> AdamW step, with
a warmup + cosine learning rate, loss estimates every eval_interval steps (metrics.csv), and
checkpoints that resume bit for bit. Ctrl-C stops after the current step and saves. Under mpiexec
each rank computes its share of every global batch and tinygpt.distributed averages the gradients;
rank 0 alone writes files and reports. Library code never prints: progress(TrainEvent) and log(str)
callbacks report instead. Not here: the run directory's files (runs.py), the data (data.py), the
command line (cli.py), the MPI communication itself (tinygpt.distributed).
"""

import contextlib
import dataclasses
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

import tinygpt
from tinygpt.malloc_settings import keep_freed_memory
from tinygpt import distributed
from tinygpt.checkpoint import checkpoint_path, rng_from_json, rng_state_to_json
from tinygpt.data import random_windows, sequential_batches, split_tokens
from tinygpt.token_files import write_tokens
from tinygpt.generate import default_prompt, generate_text, inference
from tinygpt.train.limits import check_eval_work, check_step_fits
from tinygpt.optim import AdamW, ConstantLR, WarmupCosine, clip_grad_norm_, weight_decay_groups
from tinygpt.train import parallel, runs
from tinygpt.train.config import RESUMABLE_CHANGES, TrainConfig, build_model, read_run_config
from tinygpt.train.data import (build_tokenizer, check_split_sizes, encode_in_pieces, load_splits,
                                read_training_text)


@dataclass
class TrainEvent:
    """What progress(event) receives: kind "step" after each step, "eval" after each estimate."""

    kind: str
    step: int  # steps done so far
    steps: int  # steps the run will do in all
    loss: Optional[float] = None  # this step's training loss
    lr: Optional[float] = None
    tokens_per_sec: Optional[float] = None
    train_loss: Optional[float] = None  # estimates over eval_iters batches (kind "eval")
    val_loss: Optional[float] = None
    accuracy: Optional[float] = None  # held-out accuracy (fine-tuning's "eval")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    train_loss: Optional[float]  # the last estimates
    val_loss: Optional[float]
    checkpoint: Optional[Path]
    interrupted: bool  # Ctrl-C/SIGTERM/SIGHUP: the checkpoint holds the state after the last whole step
    sample: Optional[str]  # generated at the end of an uninterrupted run
    seconds: float  # wall time of this call
    step_seconds: Optional[float]  # mean wall time of one training step (no evaluation)
    stop_signal: Optional[int] = None  # the signal number that interrupted it (None: Ctrl-C as KeyboardInterrupt)


class Trainer:
    """Sets up a run (new, resumed, or initialised from another run) on construction; run() trains."""

    def __init__(self, config, progress=None, log=None, checkpoint=None):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer needs a TrainConfig, got {type(config).__name__}")
        # None in one process; else this rank's place in the MPI job (tinygpt.distributed)
        self.world = distributed.get_world(config.mpi_timeout)
        self.rank, self.ranks = (self.world.rank, self.world.size) if self.world else (0, 1)
        self.is_root = self.rank == 0
        self.progress = (progress if self.is_root else None) or (lambda event: None)
        self.log = (log if self.is_root else None) or (lambda message: None)
        if self.world is not None:
            self.world.log = log
            distributed.share_cores(self.world)
        config = config.resolved()
        self.run_dir = Path(config.out_dir)
        self.metrics = runs.MetricsLog(self.run_dir / runs.METRICS)
        self.step_log = runs.MetricsLog(self.run_dir / runs.STEPS, runs.STEP_COLUMNS)  # every step's loss
        self.last_eval, self.saved_step, self.checkpoint = {}, None, None
        self._stop_requested = self._in_step = False
        self._stop_agreed = False  # under MPI: the ranks stop together, when any of them was asked to
        self.stop_signal = None  # the signal (SIGINT, SIGTERM, SIGHUP) that stopped the run
        self._lock = None  # a runs.RunLock from setup until run() returns
        self.resume_from = checkpoint  # resume from this ckpt_<step> instead of the newest
        if checkpoint is not None and not config.resume:
            raise ValueError(f"checkpoint={checkpoint!r} chooses where a resumed run starts; it needs resume")
        failed = None
        try:
            (self._resume if config.resume else self._start)(config)
        except BaseException as error:
            self._release_lock()
            failed = error
        if self.world is not None and self.world.any(failed is not None, "the run's set-up"):
            if failed is None:
                failed = RuntimeError("another rank failed to set up the run (its own error says why)")
        if failed is not None:
            raise failed
        if config.resume and self.is_root:
            self._rewrite_resumed_files()
        self.global_batch = self.config.batch_size * self.ranks * self.config.grad_accum
        self.buckets = None
        if self.world is not None:
            from tinygpt.distributed.buckets import GradBuckets
            self.buckets = GradBuckets(self.model.parameters(), self.world)
        self.log(f"global batch {self.global_batch} windows = batch_size {self.config.batch_size} x "
                 f"{self.ranks} rank(s) x grad_accum {self.config.grad_accum}"
                 + ("" if not self.config.zero else "; ZeRO-1 optimizer sharding" if self.world
                    else "; zero=1 does nothing in one process (there is no other rank to share with)"))

    def _take_lock(self):
        """One writer per run directory; then the temp files a killed writer left are garbage."""
        self._lock = runs.RunLock(self.run_dir).acquire()
        for name in runs.remove_leftover_temp_files(self.run_dir):
            self.log(f"removed {name}, left by an interrupted save")

    def _release_lock(self):
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ----- setting up -------------------------------------------------------------------------
    def _start(self, config):
        """A new run. Everything that can fail (data, tokenizer, sizes) runs before the first write.
        Every rank builds the tokenizer and the ids itself (no file needs to be shared); rank 0 writes."""
        if self.is_root and (self.run_dir / runs.CONFIG).exists():
            raise ValueError(f"{self.run_dir} already holds a run; resume it with --resume "
                             f"{self.run_dir}, or choose another --out-dir")
        if self.is_root and self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise ValueError(f"{self.run_dir} exists and is not empty; choose another --out-dir")
        text = read_training_text(config)
        if config.init_from is not None:
            source = runs.load_lm_source(config.init_from)  # a run, or a Hugging Face GPT-2 folder
            if source.config["kind"] != "lm":
                raise ValueError(f"init_from {config.init_from} is a {source.config['kind']} run, not a language model")
            tokenizer, model_config = source.tokenizer, dict(source.config["model"], dropout=config.dropout)
            config = _matching_model(config, source.config["train"], model_config)
            where = "a Hugging Face GPT-2 folder" if source.meta.get("huggingface") else f"step {source.step}"
            self.log(f"initialising from {config.init_from} ({where}); "
                     f"its tokenizer and model shape are kept")
        else:
            tokenizer = build_tokenizer(config, text)
            model_config = config.model_config(tokenizer.vocab_size)
        try:
            ids = encode_in_pieces(tokenizer, text)
        except ValueError as e:
            raise ValueError(f"{config.data or config.corpus} cannot be encoded by the tokenizer of "
                             f"{config.init_from}: {e}") from None
        check_split_sizes(len(ids), config.val_fraction, config.block_size, config.data or f"corpus {config.corpus!r}")
        self.config, self.tokenizer = config, tokenizer
        self.model = build_model(model_config, seed=config.seed)
        check_step_fits(model_config, config.batch_size, config.block_size, self.model.num_parameters())
        check_eval_work(config.eval_iters, config.batch_size, config.block_size,
                        len(ids) - int(len(ids) * (1.0 - config.val_fraction)))
        if config.init_from is not None:
            self.model.load_state_dict(source.model.state_dict())
        self._make_optimizer()
        # a stream of its own for the batches, separate from the one that initialised the weights
        self.rng = np.random.default_rng([config.seed, 0])
        self.step, self.fresh = 0, True
        parallel.fork_dropout(self.model, config.seed, self.rank, 0)
        if not self.is_root:
            self.train_tokens, self.val_tokens = split_tokens(ids, config.val_fraction)
            return

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        if (self.run_dir / runs.CONFIG).exists():  # another train got here between the check and the lock
            raise ValueError(f"{self.run_dir} already holds a run; resume it with --resume {self.run_dir}")
        write_tokens(self.run_dir / runs.TOKENS, ids, tokenizer.vocab_size)
        tokenizer.save(self.run_dir / runs.TOKENIZER)
        self._write_config(model_config)
        self.train_tokens, self.val_tokens = load_splits(self.run_dir / runs.TOKENS, config.val_fraction)
        self.log(f"{len(ids):,} tokens ({tokenizer.vocab_size} in the vocabulary) -> {self.run_dir / runs.TOKENS}; "
                 f"model: {self.model.num_parameters():,} parameters")

    def _resume(self, config):
        """Continue the run in out_dir from its latest checkpoint, exactly where it stopped."""
        saved = TrainConfig.from_run(self.run_dir)
        path, tensors, meta, notes = parallel.open_checkpoint(self.world, self.run_dir, self.resume_from,
                                                              self._take_lock)
        for message in notes:
            self.log(message)
        # batch_size and grad_accum may change only with the rank count (checked below)
        same_ranks = meta.get("ranks", 1) == self.ranks
        differences = config.differences(saved.resolved(), ignore=tuple(
            name for name in RESUMABLE_CHANGES if not (same_ranks and name in ("batch_size", "grad_accum"))))
        if differences:
            name, given, was = differences[0]
            raise ValueError(f"cannot resume {self.run_dir}: {name} is {given!r} but the run was made with "
                             f"{was!r}; a resumed run keeps its settings (only steps and the evaluation "
                             f"settings may change)")
        parallel.check_global_batch(self.run_dir, config, self.ranks, meta, saved)
        model_config = read_run_config(self.run_dir)["model"]
        self.config, self.tokenizer = config, runs.load_run_tokenizer(self.run_dir)
        self.model = build_model(model_config, seed=config.seed)
        runs.check_lm_meta(meta, path, config.steps, self.model)
        runs.load_model_tensors(self.model, tensors, path.name)
        self._make_optimizer()
        runs.load_optimizer(self.optimizer, tensors, meta["optimizer"], path.name)
        self.schedule.load_state_dict(meta["schedule"])
        self.rng = rng_from_json(meta["rng"]["data"])
        runs.restore_dropout_rngs(self.model, meta["rng"]["dropout"])
        self.step, self.fresh, self.saved_step, self.checkpoint = meta["step"], False, meta["step"], path
        parallel.fork_dropout(self.model, config.seed, self.rank, self.step)
        self.last_eval = {"train": meta.get("train_loss"), "val": meta.get("val_loss")}
        self.train_tokens, self.val_tokens = load_splits(self.run_dir / runs.TOKENS, config.val_fraction)
        self._model_config = model_config  # config.json is rewritten once every rank has read it
        self.log(f"resuming {self.run_dir} at step {self.step} from {path.name}")

    def _rewrite_resumed_files(self):
        """After every rank has read the run: drop metrics past the checkpoint, save the new settings."""
        self.metrics.truncate_after(self.step)
        self.step_log.truncate_after(self.step)
        self._write_config(self._model_config)  # the new steps / eval settings

    def _make_optimizer(self):
        c = self.config
        groups = weight_decay_groups(self.model.named_parameters(), c.weight_decay)  # no decay on biases, gains
        if c.zero and self.world is not None:
            from tinygpt.distributed.zero import ZeroAdamW
            self.optimizer = ZeroAdamW(groups, self.world, lr=c.max_lr, betas=(c.beta1, c.beta2),
                                       weight_decay=c.weight_decay)
        else:
            self.optimizer = AdamW(groups, lr=c.max_lr, betas=(c.beta1, c.beta2), weight_decay=c.weight_decay)
        self.schedule = (WarmupCosine(c.max_lr, c.min_lr, c.warmup_steps, c.lr_decay_steps)
                         if c.schedule == "cosine" else ConstantLR(c.max_lr))

    def _write_config(self, model_config):
        runs.write_json(self.run_dir / runs.CONFIG, {
            "kind": "lm", "tinygpt_version": tinygpt.__version__, "train": self.config.to_dict(),
            "model": model_config, "tokenizer": runs.TOKENIZER, "tokens": runs.TOKENS})

    # ----- one step, one estimate, one save ---------------------------------------------------
    def _my_micro_batches(self, x, y):
        return parallel.my_micro_batches(x, y, self.config.batch_size, self.rank, self.ranks, self.config.grad_accum)

    def train_step(self):
        """One optimizer step on a fresh random batch -> (loss, lr). The whole global batch is drawn
        on every rank, from the same generator, and each rank computes its rows of it."""
        c = self.config
        x, y = random_windows(self.train_tokens, self.global_batch, c.block_size, self.rng)  # (G, T) each
        lr = self.schedule.step(self.optimizer)  # the lr of this step, written into every group
        self.optimizer.zero_grad()
        micro = self._my_micro_batches(x, y)
        losses = []
        for m, (xm, ym) in enumerate(micro):  # (b, T) each
            _, loss = self.model(xm, ym)
            if self.buckets is not None and m == len(micro) - 1:
                # gradients summed over micro-steps and ranks, then divided: the global batch's mean
                self.buckets.backward(loss, divide_by=self.ranks * len(micro))
            else:
                loss.backward()  # accumulates into p.grad; only the last micro-step communicates
            losses.append(loss.item())
        if self.buckets is None and len(micro) > 1:
            scale = np.float32(1.0 / len(micro))
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad *= scale
        loss = sum(losses) / len(losses)
        if self.world is not None:  # the global loss, and whether any rank was asked to stop
            total = self.world.sum([loss, float(self._stop_requested)], "the step's loss")
            loss, self._stop_agreed = float(total[0]) / self.ranks, bool(total[1] > 0)
        if c.grad_clip > 0:
            clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()
        self.step += 1
        if not math.isfinite(loss):
            raise FloatingPointError(f"the training loss is {loss} at step {self.step}; lower the learning "
                                     f"rate (--max-lr) or the gradient clip (--grad-clip)")
        return loss, lr

    def estimate_loss(self):
        """{"train": mean loss, "val": mean loss} over eval_iters batches per split. The batches come
        from a fixed seed, so every estimate sees the same ones (comparable, and the training RNG is
        untouched, which keeps resumed runs exact)."""
        c, out = self.config, {}
        for k, (split, tokens) in enumerate((("train", self.train_tokens), ("val", self.val_tokens))):
            rng = np.random.default_rng([c.seed, 1, k])
            with inference(self.model):  # each rank its rows of each global batch, as in training
                losses = [self.model(xm, ym)[1].item() for _ in range(c.eval_iters)
                          for xm, ym in self._my_micro_batches(*random_windows(tokens, self.global_batch, c.block_size, rng))]
            if self.world is None:
                out[split] = float(np.mean(losses))
            else:
                out[split] = float(self.world.sum([sum(losses)], "the loss estimate")[0]) / (len(losses) * self.ranks)
        return out

    def save(self):
        """Checkpoint the whole training state at self.step -> the .json path."""
        if self.saved_step == self.step:
            return self.checkpoint
        optimizer_arrays, optimizer_meta = runs.optimizer_tensors(self.optimizer)  # ZeRO-1: gathers (every rank)
        if not self.is_root:
            self.checkpoint, self.saved_step = checkpoint_path(self.run_dir, self.step), self.step
            self._agree_saved(None)
            return self.checkpoint
        tensors = runs.model_tensors(self.model)
        tensors.update(optimizer_arrays)
        meta = {"kind": "lm", "step": self.step, "global_batch": self.global_batch, "ranks": self.ranks,
                "tokens_seen": self.step * self.global_batch * self.config.block_size,
                "optimizer": optimizer_meta, "schedule": self.schedule.state_dict(),
                "rng": {"data": rng_state_to_json(self.rng),
                        "dropout": {n: rng_state_to_json(m.rng) for n, m in runs.dropout_modules(self.model)}},
                "train_loss": self.last_eval.get("train"), "val_loss": self.last_eval.get("val")}
        try:
            self.checkpoint = runs.save_step(self.run_dir, self.step, tensors, meta, self.config.keep_checkpoints)
        except BaseException as error:
            self._agree_saved(error)
            raise
        self._agree_saved(None)
        self.saved_step = self.step
        self.log(f"saved checkpoint {self.run_dir / self.checkpoint.stem} (.safetensors + .json)")
        return self.checkpoint

    def _agree_saved(self, error):
        """Every rank learns whether rank 0's save worked: on a failed save they all stop."""
        if self.world is not None and self.world.any(error is not None, "the checkpoint save") and error is None:
            raise RuntimeError(f"rank 0 could not save the checkpoint at step {self.step} (it reports why)")

    def _evaluate(self, lr, tokens_per_sec):
        self.last_eval = self.estimate_loss()
        train_loss, val_loss = self.last_eval["train"], self.last_eval["val"]
        if self.is_root:
            self.metrics.append({"step": self.step, "train_loss": train_loss, "val_loss": val_loss,
                                 "perplexity": math.exp(min(val_loss, 700.0)), "lr": lr,
                                 "tokens_per_sec": tokens_per_sec})
        self.progress(TrainEvent("eval", self.step, self.config.steps, train_loss=train_loss, val_loss=val_loss))

    # ----- the loop ---------------------------------------------------------------------------
    def run(self):
        """Train to config.steps (or until Ctrl-C) -> TrainResult."""
        keep_freed_memory()  # no page faults for each step's activations (tinygpt/malloc_settings.py)
        c, started = self.config, time.perf_counter()
        step_time, interval_time, interval_tokens = [], 0.0, 0
        tokens_per_step = self.global_batch * c.block_size  # over all ranks
        with self._lock_held(), self._stop_after_step_on_signal():
            try:
                if self.fresh:
                    self._evaluate(self.schedule.lr_at(0), None)  # where the loss curve starts
                while self.step < c.steps:
                    if self._stop_agreed if self.world is not None else self._stop_requested:
                        raise KeyboardInterrupt
                    t0, self._in_step = time.perf_counter(), True
                    loss, lr = self.train_step()
                    self._in_step, dt = False, time.perf_counter() - t0
                    step_time.append(dt)
                    if self.is_root:
                        self.step_log.append({"step": self.step, "loss": loss, "lr": lr})
                    if self.world is not None and c.check_weights_every and self.step % c.check_weights_every == 0:
                        self.world.check_same([p.data for p in self.model.parameters()],
                                              f"the weights after step {self.step}")
                    interval_time, interval_tokens = interval_time + dt, interval_tokens + tokens_per_step
                    self.progress(TrainEvent("step", self.step, c.steps, loss=loss, lr=lr,
                                             tokens_per_sec=tokens_per_step / dt))
                    if self.step % c.eval_interval == 0 or self.step == c.steps:
                        self._evaluate(lr, interval_tokens / interval_time)
                        interval_time, interval_tokens = 0.0, 0
                        self.save()
                self.save()  # steps=0, or a resume that had nothing left to do: still a checkpoint
            except KeyboardInterrupt:
                if self._in_step:
                    raise  # a second Ctrl-C inside a step: its state may be half-updated; keep the last save
                self.save()  # between steps the state is whole (the caller says how to resume)
                return self._result(started, step_time, interrupted=True)
        # The run is finished and saved: the plot and the sample are extras, and neither may fail it.
        if not self.is_root:
            return self._result(started, step_time)
        if runs.plot_metrics(self.run_dir / runs.METRICS, self.run_dir / runs.PLOT):
            self.log(f"loss curve -> {self.run_dir / runs.PLOT}")
        sample = None
        if c.sample_tokens:
            try:
                sample = generate_text(self.model, self.tokenizer, default_prompt(self.tokenizer),
                                       c.sample_tokens, temperature=0.8, top_k=200, seed=c.seed)
                runs.write_text_atomically(self.run_dir / runs.SAMPLE, sample)
            except (ValueError, OSError) as error:
                sample = None
                self.log(f"no closing sample ({error}); the run itself is complete and saved")
        return self._result(started, step_time, sample=sample)

    def _result(self, started, step_time, interrupted=False, sample=None):
        return TrainResult(self.run_dir, self.step, self.last_eval.get("train"), self.last_eval.get("val"),
                           self.checkpoint, interrupted, sample, time.perf_counter() - started,
                           float(np.mean(step_time)) if step_time else None,
                           int(self.stop_signal) if interrupted and self.stop_signal is not None else None)

    @contextlib.contextmanager
    def _lock_held(self):
        try:
            yield
        finally:
            self._release_lock()

    @contextlib.contextmanager
    def _stop_after_step_on_signal(self):
        """The first Ctrl-C (SIGINT), SIGTERM (kill, a job scheduler) or SIGHUP (the terminal closed)
        asks the loop to stop after the current step, when the state is whole and can be saved; a
        second one interrupts at once. (Signals can only be caught in the main thread.)"""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested, self.stop_signal = True, signal.Signals(signum)
            name = "Ctrl-C" if signum == signal.SIGINT else self.stop_signal.name
            self.log(f"{name}: stopping after this step (send it again to stop at once)")

        wanted = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        previous = {s: signal.signal(s, handler) for s in wanted}
        try:
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old)


def _matching_model(config, source_train, model_config):
    """config with its tokenizer and model fields set to those of the run it starts from."""
    shape = {"tokenizer": source_train["tokenizer"], "vocab_size": source_train["vocab_size"],
             "bpe_pattern": source_train.get("bpe_pattern", "gpt4"), "model": model_config["type"]}
    if model_config["type"] == "gpt":
        shape.update({k: model_config[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "bias")})
    else:
        shape.update(n_embd=model_config["n_embd"], lstm_layers=model_config["n_layer"],
                     lstm_hidden=model_config["hidden_size"], block_size=source_train["block_size"])
    return dataclasses.replace(config, **shape)


def train(config, progress=None, log=None, checkpoint=None):
    """Set up and run a training run -> TrainResult. See TrainConfig for the settings; `checkpoint`
    (e.g. "ckpt_000020") resumes from that checkpoint instead of the newest."""
    return Trainer(config, progress, log, checkpoint).run()


def evaluate_lm(model, tokens, block_size, batch_size=32, max_batches=None, progress=None):
    """Mean loss over consecutive windows of `tokens` -> {"loss", "perplexity", "tokens", "windows"}:
    every token is predicted once (not a random sample), so the number is exact and repeatable, and
    differs from training's estimate_loss (eval_iters random batches). progress(batches done)."""
    for name, value in (("batch_size", batch_size), ("max_batches", max_batches)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be an int >= 1 (or max_batches None: every batch), got {value!r}; "
                             f"a mean over no batches has no value")
    total, count, windows = 0.0, 0, 0
    with inference(model):
        for i, (x, y, _) in enumerate(sequential_batches(tokens, batch_size, block_size)):
            if max_batches is not None and i >= max_batches:
                break
            total += model(x, y)[1].item() * y.size
            count, windows = count + y.size, windows + len(y)
            if progress is not None:
                progress(i + 1)
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": count, "windows": windows}
