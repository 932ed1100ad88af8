"""The `tinygpt` command (also `python -m tinygpt`): train, generate, finetune, evaluate, export, plot,
info, corpora, bench. The only module of tinygpt that prints.

Each subcommand is a function cmd_<name>(args) -> exit code that calls the library and formats
what it returns. Every error is one line `tinygpt: error: ...` on stderr and a non-zero exit code
(a traceback only with --debug); Ctrl-C exits with 130. Not here: any training or sampling logic.
"""

import argparse
import dataclasses
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

import tinygpt
from tinygpt import distributed
from tinygpt.malloc_settings import keep_freed_memory

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """A bad command line: argparse's message, shown as one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage and call sys.exit(2)
        message += self.did_you_mean(message)
        raise UsageError(f"{self.prog.split(' ', 1)[-1]}: {message}" if " " in self.prog else message)

    def parse_args(self, args=None, namespace=None):
        self.argv = list(sys.argv[1:] if args is None else args)  # for did_you_mean
        return super().parse_args(args, namespace)

    def did_you_mean(self, message):
        """"unrecognized arguments: --step 5" -> "; did you mean --steps?" (difflib over our flags)."""
        import difflib
        if not message.startswith("unrecognized arguments:"):
            return ""
        flags = [o for action in self._actions for o in action.option_strings]
        for action in self._actions:  # unknown flags of `tinygpt train` surface here, at the top
            if isinstance(action, argparse._SubParsersAction):
                command = next((a for a in getattr(self, "argv", []) if a in action.choices), None)
                if command is not None:
                    flags = [o for a in action.choices[command]._actions for o in a.option_strings]
        hints = []
        for word in message.split(":", 1)[1].split():
            close = difflib.get_close_matches(word.split("=", 1)[0], flags, n=1, cutoff=0.6)
            if word.startswith("--") and close:
                hints.append(f"did you mean {close[0]} (not {word})?")
        return "; " + "; ".join(hints) if hints else ""


def say(*parts, file=None):
    """print, flushed at once (streamed generation), to stdout unless told otherwise."""
    print(*parts, file=file or sys.stdout, flush=True)


def note(message):
    """An informational line on stderr, written above any progress bar."""
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

TRAIN_DESCRIPTION = """Train a language model on a built-in corpus or your own text file.

With no options this is nanoGPT's CPU Shakespeare-char setting (4 layers, 4 heads, 128 wide,
64 characters of context, 2000 steps, a few minutes on a laptop). The run directory holds
config.json, tokenizer.json, tokens.bin, checkpoints, metrics.csv (each evaluation),
train_steps.csv (each step's loss and learning rate) and loss.png."""

TRAIN_EXAMPLES = """examples:
  tinygpt train                                          # Shakespeare, char GPT -> runs/shakespeare-char-gpt
  tinygpt train --data notes.txt --steps 500             # your own UTF-8 text
  tinygpt train --tokenizer bpe --vocab-size 512 --model lstm
  tinygpt train --resume runs/shakespeare-char-gpt --steps 3000   # continue a run
  tinygpt train --init-from runs/shakespeare-char-gpt --data sonnets.txt
  tinygpt train --out-dir runs/mine --overwrite          # replace the run in runs/mine"""

FINETUNE_DESCRIPTION = """Fine-tune a trained language model to classify labelled texts.

The pretrained run's body gets a classification head; --data is a .csv with text,label columns
or a .jsonl file with "text" and "label" fields. Prints held-out accuracy, macro-F1 and the
confusion matrix, and saves a classifier run that `tinygpt evaluate` can score."""

FINETUNE_EXAMPLES = """examples:
  tinygpt finetune --from runs/shakespeare-char-gpt --data reviews.csv
  tinygpt finetune --from runs/zh/pretrain --corpus sentiment-zh --pooling mean --epochs 10
  tinygpt finetune --from runs/zh/pretrain --data train.csv --test-data test.csv --from-scratch
  tinygpt finetune --resume runs/zh/pretrain-train-cls   # continue after Ctrl-C/SIGTERM or a crash"""

# (flag, TrainConfig field, type or tuple of choices, help); every default is None so that only given flags count
TRAIN_OPTIONS = [
    ("--corpus", "corpus", str, "built-in corpus (see `tinygpt corpora`); default: shakespeare, else pydoc"),
    ("--data", "data", str, "a UTF-8 text file to train on instead of a corpus"),
    ("--errors", "errors", ("strict", "replace"), "bad UTF-8 in --data: strict (refuse, default) or replace"),
    ("--model", "model", ("gpt", "lstm"), "gpt (default) or lstm"),
    ("--tokenizer", "tokenizer", ("char", "word", "bpe"), "char (default), word or bpe"),
    ("--unk", "unk", str, "char tokenizer: a token for characters the text lacks, e.g. --unk '<unk>' "
                          "(then other text encodes too)"),
    ("--vocab-size", "vocab_size", int, "bpe vocabulary size / most frequent words kept (512)"),
    ("--bpe-pattern", "bpe_pattern", ("gpt4", "gpt2"), "bpe pre-split regex: gpt4 (default) or gpt2, "
                                                       "which `tinygpt export` can write for Hugging Face"),
    ("--n-layer", "n_layer", int, "GPT layers (4)"),
    ("--n-head", "n_head", int, "GPT attention heads (4)"),
    ("--n-embd", "n_embd", int, "GPT width / LSTM embedding size (128)"),
    ("--block-size", "block_size", int, "context length in tokens (64)"),
    ("--dropout", "dropout", float, "dropout probability (0.0)"),
    ("--lstm-layers", "lstm_layers", int, "LSTM layers (2)"),
    ("--lstm-hidden", "lstm_hidden", int, "LSTM hidden size (256)"),
    ("--steps", "steps", int, "optimizer steps (2000)"),
    ("--batch-size", "batch_size", int, "windows per step (12); under mpiexec per rank"),
    ("--grad-accum", "grad_accum", int, "micro-batches summed into one step (1); global batch = "
                                        "batch size x ranks x this"),
    ("--zero", "zero", int, "under mpiexec: 1 shards AdamW's moments over the ranks (ZeRO-1; 0 = off)"),
    ("--check-weights-every", "check_weights_every", int, "under mpiexec, debug: check every N steps "
                                                          "that all ranks hold the same weights (0 = off)"),
    ("--mpi-timeout", "mpi_timeout", float, "under mpiexec: seconds to wait for the other ranks "
                                            "before aborting the job (300)"),
    ("--max-lr", "max_lr", float, "peak learning rate (1e-3)"),
    ("--min-lr", "min_lr", float, "learning rate at the end of the cosine (1e-4)"),
    ("--warmup-steps", "warmup_steps", int, "linear warmup steps (min(100, steps/10))"),
    ("--lr-decay-steps", "lr_decay_steps", int, "the step where the cosine reaches --min-lr (--steps)"),
    ("--schedule", "schedule", ("cosine", "constant"), "cosine (default) or constant"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay of the matrices (0.1)"),
    ("--grad-clip", "grad_clip", float, "global gradient-norm limit, 0 = off (1.0)"),
    ("--eval-interval", "eval_interval", int, "estimate losses and save every N steps (250)"),
    ("--eval-iters", "eval_iters", int, "batches per loss estimate (20)"),
    ("--val-fraction", "val_fraction", float, "share of the tokens held out (0.1)"),
    ("--out-dir", "out_dir", str, "run directory (default: runs/<data>-<tokenizer>-<model>, or -2, -3, ... "
                                  "when that already holds a run)"),
    ("--seed", "seed", int, "random seed (1337)"),
    ("--sample-tokens", "sample_tokens", int, "tokens to generate at the end (200)"),
]


# flags that shape one kind of model, and do nothing for the other
GPT_ONLY, LSTM_ONLY = ("n_layer", "n_head"), ("lstm_layers", "lstm_hidden")


def refuse_contradicting_train_flags(args, given):
    """Refuse combinations that would be silently ignored: the user surely meant something else."""
    flag = lambda field: "--" + field.replace("_", "-")  # noqa: E731
    if args.resume and (args.init_from or "out_dir" in given):
        other = "--init-from" if args.init_from else "--out-dir"
        raise UsageError(f"--resume {args.resume} continues that run in its own directory; {other} "
                         f"would be ignored: drop it (or start a new run without --resume)")
    model = given.get("model", "gpt")
    unused = [f for f in (GPT_ONLY if model == "lstm" else LSTM_ONLY) if f in given]
    if unused:
        instead = "--lstm-layers, --lstm-hidden" if model == "lstm" else "--n-layer, --n-head, --n-embd"
        raise UsageError(f"{', '.join(map(flag, unused))} shape{'s' if len(unused) == 1 else ''} "
                         f"{'a GPT' if model == 'lstm' else 'an LSTM'} and would be ignored by "
                         f"--model {model}; its size flags are {instead}")
    if "bpe_pattern" in given and given.get("tokenizer", "char") != "bpe":
        raise UsageError(f"--bpe-pattern {given['bpe_pattern']} chooses the split of the bpe tokenizer and "
                         f"would be ignored by --tokenizer {given.get('tokenizer', 'char')}; add --tokenizer bpe")
    if "vocab_size" in given and given.get("tokenizer", "char") == "char":
        raise UsageError(f"--vocab-size {given['vocab_size']} does nothing with the char tokenizer "
                         f"(its vocabulary is the text's characters); use --tokenizer bpe or word")


def cmd_train(args):
    from tinygpt.corpora import default_corpus_note
    from tinygpt.train import TrainConfig, train

    given = {field: getattr(args, field) for _, field, _, _ in TRAIN_OPTIONS if getattr(args, field) is not None}
    refuse_contradicting_train_flags(args, given)
    if args.resume:
        config = TrainConfig.from_run(args.resume, **{**given, "resume": True, "out_dir": args.resume})
        header = None  # the trainer's own first line says "resuming <run> at step N"
    else:
        config = TrainConfig(**given, init_from=args.init_from)
        out_dir, header = choose_out_dir_on_rank_0(config, args.overwrite)
        config = dataclasses.replace(config, out_dir=out_dir)
        if config.corpus is None and config.data is None and default_corpus_note():
            header += "\n" + default_corpus_note()
    if distributed.launched_rank() > 0:  # under mpiexec rank 0 alone reports; the others just train
        result = train(config, checkpoint=args.checkpoint)
        return (128 + result.stop_signal if result.stop_signal else EXIT_INTERRUPTED) if result.interrupted else 0
    bar = ProgressBar("train", args.log_interval, header, measured=estimate_size(config))
    try:
        result = train(config, progress=bar.update, log=bar.write, checkpoint=args.checkpoint)
    finally:
        bar.close()
    if result.interrupted:
        saved = f"; saved checkpoint {Path(result.checkpoint).stem}" if result.checkpoint else ""
        say(f"interrupted at step {result.step}{saved}; continue with: tinygpt train --resume {result.run_dir}",
            file=sys.stderr)
        return 128 + result.stop_signal if result.stop_signal else EXIT_INTERRUPTED  # 143 SIGTERM, 129 SIGHUP
    ms = f", {1000 * result.step_seconds:.0f} ms/step" if result.step_seconds else ""
    if result.val_loss is not None:
        say(f"step {result.step}: train loss {result.train_loss:.4f}, val loss {result.val_loss:.4f} "
            f"({estimate_size(config)}; perplexity {np.exp(result.val_loss):.2f}); {result.seconds:.0f} s{ms}")
    say(f"run saved in {result.run_dir}; try: tinygpt generate --run {result.run_dir}")
    if result.sample:
        say("---- sample ----")
        say(result.sample)
    return 0


def choose_out_dir_on_rank_0(config, overwrite):
    """choose_out_dir, run by rank 0 alone under mpiexec and sent to the others (each would pick
    its own "-2" otherwise)."""
    world = distributed.get_world(config.mpi_timeout)
    if world is None:
        return choose_out_dir(config, overwrite)
    chosen, error = (None, None), None
    if world.is_root:
        try:
            chosen = choose_out_dir(config, overwrite)
        except Exception as e:
            error = e
    out_dir = world.broadcast_text(chosen[0], "choosing the run directory")
    if error is not None:
        raise error
    if out_dir is None:
        raise ValueError("rank 0 could not choose the run directory (it reports why)")
    return out_dir, chosen[1] or ""


def choose_out_dir(config, overwrite):
    """The run directory of a new run. Without --out-dir: the default name, or -2, -3, ... when
    that already holds a run, so running the same command twice just works. With --out-dir: that
    directory; a run already in it is deleted first only with --overwrite.
    -> (out_dir, the line that names it, shown once the run is set up: an error stays one line)."""
    from tinygpt.train import runs

    if config.out_dir is None:
        default = Path(config.resolved().out_dir)
        out_dir = runs.fresh_run_dir(default)
        taken = f" ({default} already holds a run)" if out_dir != default else ""
        return str(out_dir), f"training into {out_dir}{taken}"
    out_dir = Path(config.out_dir)
    if overwrite and (out_dir / runs.CONFIG).is_file():
        import shutil
        shutil.rmtree(out_dir)
        return str(out_dir), f"training into {out_dir} (--overwrite: the run that was there is deleted)"
    return str(out_dir), f"training into {out_dir}"


def estimate_size(config):
    """What training's loss estimates average over, e.g. "20 batches of 12"."""
    c = config.resolved()
    return f"estimated on {c.eval_iters} random batches of {c.batch_size * distributed.launched_size() * c.grad_accum}"


def stderr_is_terminal():
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


class ProgressBar:
    """Progress for the library's progress(event) and log(message) callbacks: a tqdm bar (a widget
    in notebooks) on a terminal; elsewhere (a pipe, nohup, CI) a plain line every `every` steps,
    like nanoGPT's `iter N: loss ..., time ...`, so a log file shows that training moves."""

    def __init__(self, unit, every=None, header=None, measured=None):
        self.bar, self.unit, self.every, self.header = None, unit, every, header
        self.measured = f" ({measured})" if measured else ""  # what a loss estimate averages over
        self.terminal = stderr_is_terminal() or "ipykernel" in sys.modules
        self.last_time = self.last_step = self.first_time = self.first_step = None

    def update(self, event):
        import time
        now = time.perf_counter()
        self.write_header()
        if self.first_time is None:
            self.first_time, self.first_step = now, event.step - (event.kind == "step")
            self.last_time, self.last_step = now, self.first_step
            every = self.every or min(100, max(1, event.steps // 20))
            self.every = every
            if self.terminal:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=event.steps, initial=self.first_step, unit="step", desc=self.unit,
                                file=sys.stderr, **terminal_size())
        if event.kind == "step":
            if self.bar is not None:
                self.bar.update(event.step - self.bar.n)
                postfix = {"loss": f"{event.loss:.4f}"}
                if event.tokens_per_sec:
                    postfix["tok/s"] = f"{event.tokens_per_sec:,.0f}"
                self.bar.set_postfix(postfix, refresh=False)
            elif event.step % self.every == 0 or event.step == event.steps:
                self.write(self.line(event, now))
        elif event.step == event.steps and event.step > 0:
            pass  # the final estimate is the command's own last line
        elif event.val_loss is not None:
            self.write(f"step {event.step}: train loss {event.train_loss:.4f}, val loss {event.val_loss:.4f}"
                       f"{self.measured}")
        elif event.accuracy is not None:
            self.write(f"step {event.step}: train loss {event.train_loss:.4f}, held-out accuracy {event.accuracy:.4f}")

    def line(self, event, now):
        """step 40/2000: loss 2.5312, 73 ms/step, 10,520 tok/s, ETA 2m23s (since the last line)."""
        ms = 1000 * (now - self.last_time) / max(1, event.step - self.last_step)
        done = event.step - self.first_step
        left = (now - self.first_time) / max(1, done) * (event.steps - event.step)
        self.last_time, self.last_step = now, event.step
        tok = f", {event.tokens_per_sec:,.0f} tok/s" if event.tokens_per_sec else ""
        return (f"{self.unit} step {event.step}/{event.steps}: loss {event.loss:.4f}, {ms:.0f} ms/step{tok}, "
                f"ETA {int(left // 60)}m{int(left % 60):02d}s")

    def write(self, message):
        self.write_header()
        note(message)

    def write_header(self):
        if self.header is not None:
            header, self.header = self.header, None
            note(header)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def terminal_size():
    """{"ncols", "nrows"} of stderr's terminal for tqdm; 80 x 24 where it reports 0 (a fresh pty,
    some CI consoles and IDE panes), which would make tqdm draw an empty bar or hide it."""
    import os
    try:
        columns, rows = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        columns, rows = 0, 0
    return {"ncols": columns if columns > 0 else 80, "nrows": rows if rows > 0 else 24}


# ---------------------------------------------------------------------------------------------
# generate, finetune, evaluate
# ---------------------------------------------------------------------------------------------


def load_hf_folder(path):
    """--model PATH -> (GPT, GPT2Tokenizer): a Hugging Face GPT-2 folder with its tokenizer files."""
    from tinygpt.models.hf_gpt2 import load_model_from_path
    from tinygpt.tokenizers import GPT2Tokenizer

    model, tokenizer = load_model_from_path(path, load_tokenizer=GPT2Tokenizer.from_pretrained)
    if tokenizer is None:
        raise ValueError(f"--model {path} has no tokenizer (tokenizer.json, or vocab.json + merges.txt); "
                         f"save a GPT2Tokenizer into it with tokenizer.save_pretrained({str(path)!r})")
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError(f"--model {path}: its tokenizer has {tokenizer.vocab_size} tokens but the model's "
                         f"vocab_size is {model.config.vocab_size}; they do not belong together")
    return model, tokenizer


def model_and_tokenizer(args):
    """--run RUN or --model PATH (exactly one) -> (model, tokenizer, what to call it)."""
    from tinygpt.train import load_run

    if (args.run is None) == (args.model is None):
        raise UsageError("pass --run RUN (a tinygpt run) or --model PATH (a Hugging Face GPT-2 folder), "
                         f"exactly one of the two; got {'both' if args.run else 'neither'}")
    if args.model is not None:
        model, tokenizer = load_hf_folder(args.model)
        return model, tokenizer, args.model
    run = load_run(args.run)
    if run.config["kind"] != "lm":
        raise ValueError(f"{args.run} is a {run.config['kind']} run; generate needs a language-model run")
    return run.model, run.tokenizer, args.run


def cmd_generate(args):
    from tinygpt.generate import default_prompt, stream_text

    model, tokenizer, _ = model_and_tokenizer(args)
    prompt = default_prompt(tokenizer) if args.prompt is None else args.prompt
    if args.seed is not None and args.seed < 0:  # NumPy would say only "expected non-negative integer"
        raise ValueError(f"--seed must be an integer >= 0 (or left out: different every time), got {args.seed}")
    if args.num_samples < 1 or args.max_new_tokens < 0:
        bad = (f"--num-samples {args.num_samples}" if args.num_samples < 1
               else f"--max-new-tokens {args.max_new_tokens}")
        raise UsageError(f"{bad}: expected --num-samples >= 1 and --max-new-tokens >= 0")
    rng = np.random.default_rng(args.seed)  # one stream for all samples: each sample differs
    for k in range(args.num_samples):
        pieces = stream_text(model, tokenizer, prompt, args.max_new_tokens, args.temperature,
                             args.top_k, args.top_p, rng, args.stop)
        if args.no_stream:
            say(prompt + "".join(pieces))
        else:
            sys.stdout.write(prompt)
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
            say()
        if k + 1 < args.num_samples:
            say("---------------")
    return 0


def cmd_serve(args):
    from tinygpt.serve import make_server

    server = make_server(args.run, args.host, args.port)
    host, port = server.server_address[:2]
    say(f"serving {args.run} at http://{host}:{port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        say("stopped")
    finally:
        server.server_close()
    return 0


def cmd_finetune(args):
    from tinygpt.finetune import FinetuneConfig, finetune
    if distributed.launched_size() > 1:
        raise UsageError(f"tinygpt finetune is not data-parallel: under mpiexec each of the "
                         f"{distributed.launched_size()} ranks would train alone into the same run; run it "
                         f"as one process (docs/distributed.md)")

    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields - {"resume"} and v is not None}
    if args.resume:
        if given:  # an exact resume keeps every setting the run was started with
            raise UsageError(f"--resume {args.resume} continues that run with the settings it was started "
                             f"with; drop {', '.join('--' + k.replace('_', '-') for k in sorted(given))}")
        config = FinetuneConfig.resuming(args.resume)
    else:
        if not args.from_run:
            raise UsageError("finetune: the following arguments are required: --from (or --resume RUN)")
        if args.data is None and args.corpus is None:
            raise UsageError("finetune: one of the arguments --data --corpus is required")
        config = FinetuneConfig(**given)
    bar = ProgressBar("finetune")
    try:
        result = finetune(config, progress=bar.update, log=bar.write)
    finally:
        bar.close()
    if result.interrupted:
        saved = f"; saved checkpoint {Path(result.checkpoint).stem}" if result.checkpoint else ""
        say(f"interrupted at step {result.step}{saved}; continue with: tinygpt finetune --resume {result.run_dir}",
            file=sys.stderr)
        return 128 + result.stop_signal if result.stop_signal else EXIT_INTERRUPTED  # 143 SIGTERM, 129 SIGHUP
    say(f"held-out accuracy {result.accuracy:.4f}, macro-F1 {result.macro_f1:.4f} "
        f"({result.n_test} examples; trained on {result.n_train}; {result.seconds:.0f} s)")
    say_confusion(result.confusion, result.label_names)
    say(f"classifier saved in {result.run_dir}")
    return 0


def say_confusion(confusion, names):
    width = max(len(n) for n in names) + 2
    say("confusion (rows: true label, columns: predicted)")
    say(" " * width + "".join(f"{n:>{width}}" for n in names))
    for name, row in zip(names, confusion):
        say(f"{name:>{width}}" + "".join(f"{v:>{width}}" for v in row))


class BatchProgress:
    """progress(done) for a loop of `total` batches: a tqdm bar on a terminal, else a line at every
    tenth of the way."""

    def __init__(self, unit, total):
        self.unit, self.total, self.bar, self.shown = unit, total, None, 0

    def __enter__(self):
        if stderr_is_terminal() or "ipykernel" in sys.modules:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.total, unit="batch", desc=self.unit, file=sys.stderr,
                            **terminal_size())
        return self

    def __call__(self, done):
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        elif done * 10 // max(1, self.total) > self.shown or done == self.total:
            self.shown = done * 10 // max(1, self.total)
            note(f"{self.unit}: batch {done}/{self.total}")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def cmd_evaluate(args):
    from tinygpt.train import load_run
    from tinygpt.train.data import encode_in_pieces, load_splits
    from tinygpt.text_files import read_text

    if (args.run is None) == (args.model is None):
        raise UsageError("pass --run RUN (a tinygpt run) or --model PATH (a Hugging Face GPT-2 folder), "
                         f"exactly one of the two; got {'both' if args.run else 'neither'}")
    if args.model is not None:
        return evaluate_hf_folder(args)
    run = load_run(args.run)
    if run.config["kind"] == "classifier":
        from tinygpt.finetune import evaluate_classifier
        report = evaluate_classifier(args.run, args.data)
        say(f"accuracy {report['accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f} ({report['n']} examples)")
        say_confusion(report["confusion"], report["label_names"])
        return 0
    train_config = run.config["train"]
    block_size = train_config["block_size"]
    if args.data is not None:
        try:
            tokens, what = encode_in_pieces(run.tokenizer, read_text(args.data, errors=args.errors)), args.data
        except ValueError as e:
            raise ValueError(f"{args.data} cannot be encoded by the run's tokenizer: {e}") from None
    else:
        tokens, what = load_splits(Path(args.run) / "tokens.bin", train_config["val_fraction"])[1], "validation split"
    if len(tokens) < block_size + 1:
        raise ValueError(f"{what} has {len(tokens)} tokens, fewer than block_size + 1 = {block_size + 1}")
    check_batches(args)
    windows = (len(tokens) - 1) // block_size
    report_evaluation(run.model, tokens, block_size, windows, args,
                      f"{what} of {args.run} at step {run.step}", "full split" if args.data is None else "whole file")
    return 0


def check_batches(args):
    for flag, value in (("--batch-size", args.batch_size), ("--max-batches", args.max_batches)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be an int >= 1, got {value}; a mean over no batches has no value")


def evaluate_hf_folder(args):
    """tinygpt evaluate --model PATH --data FILE: the loss of FILE's text under a HF GPT-2 folder,
    in windows of the model's whole context (block_size = n_positions)."""
    from tinygpt.text_files import read_text
    from tinygpt.train.data import encode_in_pieces

    if args.data is None:
        raise UsageError("--model PATH needs --data FILE: a Hugging Face folder has no held-out split")
    model, tokenizer = load_hf_folder(args.model)
    check_batches(args)
    block_size = model.config.block_size
    try:
        tokens = encode_in_pieces(tokenizer, read_text(args.data, errors=args.errors))
    except ValueError as e:
        raise ValueError(f"{args.data} cannot be encoded by {args.model}'s tokenizer: {e}") from None
    if len(tokens) < block_size + 1:
        raise ValueError(f"{args.data} has {len(tokens)} tokens, fewer than the model's block_size + 1 = "
                         f"{block_size + 1}")
    windows = (len(tokens) - 1) // block_size
    report_evaluation(model, tokens, block_size, windows, args, f"{args.data} under {args.model}", "whole file")
    return 0


def report_evaluation(model, tokens, block_size, windows, args, title, measured):
    """evaluate_lm over `windows` windows of tokens (at most --max-batches batches), with a progress
    bar, then one line: title, the loss, what part was measured, and the perplexity."""
    from tinygpt.train import evaluate_lm

    total = -(-windows // args.batch_size)
    if args.max_batches is not None:
        total = min(total, args.max_batches)
    with BatchProgress("evaluate", total) as progress:
        result = evaluate_lm(model, tokens, block_size, args.batch_size, args.max_batches, progress=progress)
    if args.max_batches is not None and args.max_batches * args.batch_size < windows:
        measured = f"first {args.max_batches} batches of {args.batch_size}"
    say(f"{title}: val loss {result['loss']:.4f} "
        f"({measured}, {result['windows']:,} windows of {block_size} tokens = {result['tokens']:,} tokens; "
        f"perplexity {result['perplexity']:.2f})")


def cmd_export(args):
    """tinygpt export --run RUN --to PATH: the run's GPT as a Hugging Face GPT-2 folder, with its
    tokenizer when that has a GPT-2 equivalent."""
    from tinygpt.models import GPT
    from tinygpt.tokenizers import ByteLevelBPETokenizer, GPT2Tokenizer
    from tinygpt.train import load_run

    run = load_run(args.run)
    if run.config["kind"] != "lm" or not isinstance(run.model, GPT):
        raise ValueError(f"{args.run} holds a {run.config['kind']} {type(run.model).__name__}; tinygpt export "
                         f"writes a GPT language model (Hugging Face GPT-2 has no LSTM or classifier)")
    tokenizer, why_not = run.tokenizer, None
    if isinstance(tokenizer, ByteLevelBPETokenizer):
        try:
            tokenizer = GPT2Tokenizer.from_byte_bpe(tokenizer)
        except ValueError as e:
            tokenizer, why_not = None, f"{e}; hint: train with --tokenizer bpe --bpe-pattern gpt2"
    elif not isinstance(tokenizer, GPT2Tokenizer):
        tokenizer, why_not = None, (f"it is a {type(tokenizer).__name__} ({tokenizer.type_name}), which has no "
                                    f"Hugging Face GPT-2 equivalent; only byte-level BPE tokenizers do")
    run.model.save_pretrained(args.to)
    if tokenizer is not None:
        tokenizer.save_pretrained(args.to)
        say(f"exported {args.run} (step {run.step}) to {args.to}: config.json, model.safetensors, "
            f"tokenizer.json, vocab.json, merges.txt")
    else:
        say(f"exported {args.run} (step {run.step}) to {args.to}: config.json, model.safetensors")
        say(f"tinygpt: warning: the tokenizer was not exported: {why_not}; encode text with the run's "
            f"tokenizer (tinygpt.train.load_run({args.run!r}).tokenizer)", file=sys.stderr)
    say(f"load it with transformers.GPT2LMHeadModel.from_pretrained({args.to!r}), or tinygpt generate --model {args.to}"
        if tokenizer is not None else
        f"load it with transformers.GPT2LMHeadModel.from_pretrained({args.to!r}) or GPT.from_pretrained({args.to!r})")
    return 0


def cmd_plot(args):
    from tinygpt.train import runs

    out = Path(args.out) if args.out else (Path(args.run[0]) / runs.PLOT if len(args.run) == 1
                                           else Path("comparison.png"))
    try:
        runs.plot_runs(args.run, out)
    except ImportError:
        raise ValueError("tinygpt plot needs matplotlib: pip install 'tinygpt[data]' (or pip install matplotlib)") from None
    say(f"loss curves of {', '.join(args.run)} -> {out}")
    return 0


def cmd_profile(args):
    from tinygpt.profiler import profile_training_step

    if args.run is not None and args.config is not None:
        raise UsageError("pass --run RUN or --config NAME, not both")
    what = args.config or "baby"
    if args.run is not None:
        from tinygpt.models import GPT
        from tinygpt.train import load_run

        run = load_run(args.run)
        if run.config["kind"] != "lm" or not isinstance(run.model, GPT):
            raise ValueError(f"{args.run} holds a {run.config['kind']} {type(run.model).__name__}; "
                             f"tinygpt profile times a GPT language model's training step")
        what = run.model
    prof = profile_training_step(what, batch_size=args.batch_size, seq_len=args.seq_len)
    label = args.run or f"--config {what}"
    say(f"one training step of {label} (forward, backward, clip, AdamW), after two warm-up steps:")
    say(prof.table(sort_by=args.sort, limit=args.rows))
    if args.trace:
        prof.export_chrome_trace(args.trace)
        say(f"trace written to {args.trace}: open it in https://ui.perfetto.dev or chrome://tracing")
    return 0


# ---------------------------------------------------------------------------------------------
# info, corpora, bench
# ---------------------------------------------------------------------------------------------


def cmd_info(args):
    from tinygpt import backend

    say(f"tinygpt {tinygpt.__version__} (Python {platform.python_version()}, NumPy {np.__version__})")
    say(f"backend mode: {backend.get_backend()} (TINYGPT_BACKEND=auto|numpy|numba|c, or --backend)")
    for name, (ok, reason) in backend.availability().items():
        say(f"  {name:6s} {'available' if ok else 'NOT available'}: {reason}")
    mpi = distributed.mpi_library()  # imports mpi4py, when it is installed
    say(f"MPI: {mpi['library']} (MPI {mpi['standard']}, mpi4py {mpi['mpi4py']}), {mpi['size']} rank(s) in "
        f"this job" if mpi else "MPI: mpi4py not installed (pip install 'tinygpt[mpi]' for data-parallel training)")
    say(f"{'kernel':28s} {'runs on':8s} implementations")
    for name, chosen, have in backend.report():
        say(f"{name:28s} {chosen:8s} {', '.join(have)}")
    say("corpora:")
    return cmd_corpora(args, indent="  ")


def cmd_corpora(args, indent=""):
    from tinygpt.corpora import list_corpora

    for c in list_corpora():
        status = "installed" if c["available"] else f"not installed ({c['install']})"
        say(f"{indent}{c['name']:13s} {c['kind']:9s} {status}: {c['description']}")
    return 0


def cmd_bench(args):
    root = Path(tinygpt.__file__).resolve().parent.parent
    if not (root / "bench").is_dir():
        raise ValueError("the benchmarks live in the source checkout's bench/ package, which this "
                         "installation does not have; clone the repository and run `python -m bench`")
    if not (root / "bench" / "__main__.py").is_file():
        raise ValueError(f"{root / 'bench'} has no __main__.py, so `python -m bench` has nothing to run; "
                         f"run a benchmark script in it directly")
    return subprocess.call([sys.executable, "-m", "bench", *args.bench_args], cwd=root)


# ---------------------------------------------------------------------------------------------
# the parser and main
# ---------------------------------------------------------------------------------------------


def build_parser():
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")
    common.add_argument("--backend", choices=("auto", "numpy", "numba", "c"), default=argparse.SUPPRESS,
                        help="kernel implementation (default: TINYGPT_BACKEND or auto)")
    parser = Parser(prog="tinygpt", parents=[common],
                    description="Train, sample and fine-tune small GPT and LSTM language models.")
    parser.add_argument("--version", action="version", version=f"tinygpt {tinygpt.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=Parser)

    train = sub.add_parser("train", parents=[common], help="train a language model (default: Shakespeare, char GPT)",
                           formatter_class=argparse.RawDescriptionHelpFormatter, description=TRAIN_DESCRIPTION,
                           epilog=TRAIN_EXAMPLES)
    for flag, field, kind, text in TRAIN_OPTIONS:
        if isinstance(kind, tuple):  # a fixed set of words
            train.add_argument(flag, dest=field, choices=kind, default=None, help=text)
        else:
            train.add_argument(flag, dest=field, type=kind, default=None, help=text)
    train.add_argument("--overwrite", action="store_true", help="delete the run already in --out-dir first")
    train.add_argument("--log-interval", type=int, default=None, metavar="N",
                       help="when stderr is not a terminal, a progress line every N steps (steps/20, at most 100)")
    train.add_argument("--resume", metavar="RUN", help="continue RUN from its latest checkpoint")
    train.add_argument("--checkpoint", metavar="CKPT", help="with --resume: start from CKPT (e.g. ckpt_000020), "
                       "not the newest")
    train.add_argument("--init-from", metavar="RUN", help="start from RUN's weights and tokenizer (new text); "
                       "RUN may be a Hugging Face GPT-2 folder")
    train.set_defaults(func=cmd_train)

    gen = sub.add_parser("generate", parents=[common], help="sample text from a trained run")
    gen.add_argument("--run", help="run directory")
    gen.add_argument("--model", metavar="PATH", help="a Hugging Face GPT-2 folder (config.json, model.safetensors, "
                     "tokenizer files) instead of --run")
    gen.add_argument("--prompt", help="text to continue (default: a newline)")
    gen.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate per sample (200)")
    gen.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    gen.add_argument("--top-k", type=int, default=200, help="sample from the k most likely tokens (200)")
    gen.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with this mass")
    gen.add_argument("--seed", type=int, default=None, help="random seed (default: different every time)")
    gen.add_argument("--stop", action="append", default=[], help="stop before this string (repeatable)")
    gen.add_argument("--num-samples", type=int, default=1, help="samples to print, separated by a line (1)")
    gen.add_argument("--no-stream", action="store_true", help="print each sample when it is complete")
    gen.set_defaults(func=cmd_generate)

    srv = sub.add_parser("serve", parents=[common], help="a local web page: sample, loss curve, attention heatmaps")
    srv.add_argument("--run", required=True, help="run directory")
    srv.add_argument("--port", type=int, default=8000, help="port (8000; 0 picks a free one)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    srv.set_defaults(func=cmd_serve)

    ft = sub.add_parser("finetune", parents=[common], help="fine-tune a run to classify labelled texts",
                        formatter_class=argparse.RawDescriptionHelpFormatter, description=FINETUNE_DESCRIPTION,
                        epilog=FINETUNE_EXAMPLES)
    ft.add_argument("--from", dest="from_run", metavar="RUN", help="pretrained run directory, or a Hugging Face GPT-2 folder")
    ft.add_argument("--resume", metavar="RUN", help="continue the interrupted fine-tuning run RUN exactly")
    source = ft.add_mutually_exclusive_group()
    source.add_argument("--data", help="labelled .csv (text,label) or .jsonl file")
    source.add_argument("--corpus", help="labelled built-in corpus, e.g. sentiment-zh")
    ft.add_argument("--test-data", help="score on this labelled file (then all of --data/--corpus trains)")
    ft.add_argument("--freeze-body", action="store_true", default=None, help="train the classifier head only")
    ft.add_argument("--from-scratch", action="store_true", default=None,
                    help="baseline: same model and tokenizer, random initial weights")
    ft.add_argument("--allow-unknown", action="store_true", default=None,
                    help="fine-tune even when over 5%% of the characters are not in the run's vocabulary")
    for flag, kind, text in (("--epochs", int, "passes over the training examples (3)"),
                             ("--steps", int, "optimizer steps (overrides --epochs)"),
                             ("--eval-interval", int, "score the held-out examples every N steps (every epoch)"),
                             ("--lr", float, "peak learning rate (3e-4)"),
                             ("--batch-size", int, "examples per step (32)"),
                             ("--max-len", int, "tokens kept per text (64)"),
                             ("--val-fraction", float, "share held out for the accuracy (0.2)"),
                             ("--train-size", int, "use this many training examples"),
                             ("--test-size", int, "use this many held-out examples"),
                             ("--pooling", ("last", "mean"), "last (default) or mean"),
                             ("--seed", int, "random seed (0)"),
                             ("--out-dir", str, "classifier run directory")):
        if isinstance(kind, tuple):
            ft.add_argument(flag, choices=kind, default=None, help=text)
        else:
            ft.add_argument(flag, type=kind, default=None, help=text)
    ft.set_defaults(func=cmd_finetune)

    ev = sub.add_parser("evaluate", parents=[common], help="validation loss/perplexity, or classifier accuracy")
    ev.add_argument("--run", help="run directory (language model or classifier)")
    ev.add_argument("--model", metavar="PATH", help="a Hugging Face GPT-2 folder instead of --run (needs --data)")
    ev.add_argument("--data", help="evaluate on this file instead of the run's held-out split")
    ev.add_argument("--errors", default="strict", choices=("strict", "replace"),
                    help="bad UTF-8 in --data: strict (refuse, default) or replace")
    ev.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (32); "
                    "the loss does not depend on it, only the speed and memory do")
    ev.add_argument("--max-batches", type=int, default=None, help="stop after this many batches")
    ev.set_defaults(func=cmd_evaluate)

    export = sub.add_parser("export", parents=[common], help="write a GPT run as a Hugging Face GPT-2 folder")
    export.add_argument("--run", required=True, help="run directory (a GPT language model)")
    export.add_argument("--to", required=True, metavar="PATH", help="folder to write (new, empty, or a model folder)")
    export.set_defaults(func=cmd_export)

    plot = sub.add_parser("plot", parents=[common], help="draw the loss curves of one or more runs into a PNG")
    plot.add_argument("--run", nargs="+", required=True, metavar="RUN", help="run directories (several: compared)")
    plot.add_argument("--out", help="PNG to write (default: RUN/loss.png for one run, comparison.png for several)")
    plot.set_defaults(func=cmd_plot)

    prof = sub.add_parser("profile", parents=[common], help="time every op of one training step, "
                          "forward and backward, and say which kernel ran it",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          description="Profile one GPT training step op by op (tinygpt.profile).",
                          epilog="examples:\n  tinygpt profile --config baby\n"
                                 "  tinygpt profile --run runs/shakespeare-char-gpt --trace step.json\n"
                                 "  tinygpt profile --config small --backend numpy --sort forward\n"
                                 "  tinygpt profile --config gpt2-124m --seq-len 256 --rows 8")
    prof.add_argument("--run", help="profile this run's model (random tokens of its vocabulary)")
    prof.add_argument("--config", choices=("tiny", "small", "baby", "gpt2-124m", "default"),
                      help="a built-in model size (default: baby)")
    prof.add_argument("--batch-size", type=int, default=None, help="windows per step (default: the config's)")
    prof.add_argument("--seq-len", type=int, default=None,
                      help="tokens per window (default: the config's; gpt2-124m: 64, the model's block_size otherwise)")
    prof.add_argument("--sort", default="total", choices=("total", "forward", "backward", "calls", "flops", "op"),
                      help="table order (default: total time)")
    prof.add_argument("--rows", type=int, default=None, help="show only the first N rows")
    prof.add_argument("--trace", help="also write a Chrome/Perfetto trace JSON to this path")
    prof.set_defaults(func=cmd_profile)

    sub.add_parser("info", parents=[common], help="version, backends and kernels, corpora").set_defaults(func=cmd_info)
    sub.add_parser("corpora", parents=[common], help="list the built-in corpora").set_defaults(func=cmd_corpora)
    bench = sub.add_parser("bench", parents=[common], help="run the benchmarks (source checkout only)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="passed on to python -m bench "
                       "(try: tinygpt bench --help)")
    bench.set_defaults(func=cmd_bench)
    return parser


def split_bench_arguments(argv):
    """`tinygpt [options] bench ARGS` -> (argv up to bench, ARGS): everything after `bench`, even
    --help, belongs to `python -m bench`, so argparse must not see it."""
    takes_value = False  # the word after --backend is its value, not the command
    for i, arg in enumerate(argv):
        if not arg.startswith("-") and not takes_value:
            return (argv[:i + 1], argv[i + 1:]) if arg == "bench" else (argv, [])
        takes_value = arg == "--backend"
    return argv, []


# library hints written for Python callers -> what a command-line user types instead
CLI_HINTS = (("pass errors='replace'", "pass --errors replace"),
             ("or choose another --out-dir", "choose another --out-dir, or pass --overwrite to replace it"),
             ("pass unk='<unk>'", "train the run with --unk '<unk>' (its tokenizer then encodes unseen "
                                  "characters as <unk>)"))


def for_the_command_line(text):
    for python, cli in CLI_HINTS:
        text = text.replace(python, cli)
    return text


def one_line(error):
    """An exception -> one line: multi-line messages are joined, and a type that is not a plain
    user error (ValueError, OSError, ...) is named, since then it is probably a bug."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    if not isinstance(error, (ValueError, TypeError, OSError, FloatingPointError, UsageError)):
        text = f"{type(error).__name__}: {text} (rerun with --debug for the traceback)"
    return text


def main(argv=None):
    """Run the command line `argv` (default: sys.argv[1:]) -> exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    keep_freed_memory()
    debug = "--debug" in argv
    import warnings  # a library warning (e.g. a damaged checkpoint skipped) is one line, like errors
    warnings.showwarning = lambda message, *rest, **kw: say(f"tinygpt: warning: {message}", file=sys.stderr)
    try:
        argv, passed_on = split_bench_arguments(argv)
        args = build_parser().parse_args(argv)
        if passed_on:
            args.bench_args = passed_on
        if not getattr(args, "func", None):
            build_parser().print_help()
            return EXIT_USAGE
        from tinygpt import backend
        with backend.use(getattr(args, "backend", None) or backend.get_backend()):  # restored after
            return args.func(args)
    except SystemExit as e:  # --help and --version exit through argparse
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        say("tinygpt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        if debug:
            raise
        say(f"tinygpt: error: {for_the_command_line(one_line(e))}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, UsageError) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
