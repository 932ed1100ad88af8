"""The `tinygpt` command (also `python -m tinygpt`): train, generate, finetune, evaluate, info,
corpora, bench. The only module of tinygpt that prints.

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
from tinygpt.allocator import keep_freed_memory

EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """A bad command line: argparse's message, shown as one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage and call sys.exit(2)
        raise UsageError(f"{self.prog.split(' ', 1)[-1]}: {message}" if " " in self.prog else message)


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

# (flag, TrainConfig field, type, help); every default is None so that only given flags count
TRAIN_OPTIONS = [
    ("--corpus", "corpus", str, "built-in corpus (see `tinygpt corpora`); default: shakespeare, else pydoc"),
    ("--data", "data", str, "a UTF-8 text file to train on instead of a corpus"),
    ("--errors", "errors", str, "bad UTF-8 in --data: strict (refuse, default) or replace"),
    ("--model", "model", str, "gpt (default) or lstm"),
    ("--tokenizer", "tokenizer", str, "char (default), word or bpe"),
    ("--vocab-size", "vocab_size", int, "bpe vocabulary size / most frequent words kept (512)"),
    ("--n-layer", "n_layer", int, "GPT layers (4)"),
    ("--n-head", "n_head", int, "GPT attention heads (4)"),
    ("--n-embd", "n_embd", int, "GPT width / LSTM embedding size (128)"),
    ("--block-size", "block_size", int, "context length in tokens (64)"),
    ("--dropout", "dropout", float, "dropout probability (0.0)"),
    ("--lstm-layers", "lstm_layers", int, "LSTM layers (2)"),
    ("--lstm-hidden", "lstm_hidden", int, "LSTM hidden size (256)"),
    ("--steps", "steps", int, "optimizer steps (2000)"),
    ("--batch-size", "batch_size", int, "windows per step (12)"),
    ("--max-lr", "max_lr", float, "peak learning rate (1e-3)"),
    ("--min-lr", "min_lr", float, "learning rate at the end of the cosine (1e-4)"),
    ("--warmup-steps", "warmup_steps", int, "linear warmup steps (min(100, steps/10))"),
    ("--lr-decay-steps", "lr_decay_steps", int, "the step where the cosine reaches --min-lr (--steps)"),
    ("--schedule", "schedule", str, "cosine (default) or constant"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay of the matrices (0.1)"),
    ("--grad-clip", "grad_clip", float, "global gradient-norm limit, 0 = off (1.0)"),
    ("--eval-interval", "eval_interval", int, "estimate losses and save every N steps (250)"),
    ("--eval-iters", "eval_iters", int, "batches per loss estimate (20)"),
    ("--val-fraction", "val_fraction", float, "share of the tokens held out (0.1)"),
    ("--out-dir", "out_dir", str, "run directory (runs/<data>-<tokenizer>-<model>)"),
    ("--seed", "seed", int, "random seed (1337)"),
    ("--sample-tokens", "sample_tokens", int, "tokens to generate at the end (200)"),
]


def cmd_train(args):
    from tinygpt.corpora import default_corpus_note
    from tinygpt.train import TrainConfig, train

    given = {field: getattr(args, field) for _, field, _, _ in TRAIN_OPTIONS if getattr(args, field) is not None}
    if args.resume:
        config = TrainConfig.from_run(args.resume, **{**given, "resume": True, "out_dir": args.resume})
    else:
        config = TrainConfig(**given, init_from=args.init_from)
        if config.corpus is None and config.data is None and default_corpus_note():
            note(default_corpus_note())
    bar = ProgressBar("train")
    try:
        result = train(config, progress=bar.update, log=bar.write, checkpoint=args.checkpoint)
    finally:
        bar.close()
    if result.interrupted:
        say(f"interrupted at step {result.step}; saved {result.checkpoint}", file=sys.stderr)
        say(f"continue with: tinygpt train --resume {result.run_dir}", file=sys.stderr)
        return 128 + result.stop_signal if result.stop_signal else EXIT_INTERRUPTED  # 143 SIGTERM, 129 SIGHUP
    ms = f", {1000 * result.step_seconds:.0f} ms/step" if result.step_seconds else ""
    if result.val_loss is not None:
        say(f"step {result.step}: train loss {result.train_loss:.4f}, val loss {result.val_loss:.4f} "
            f"(perplexity {np.exp(result.val_loss):.2f}); {result.seconds:.0f} s{ms}")
    say(f"run saved in {result.run_dir}; try: tinygpt generate --run {result.run_dir}")
    if result.sample:
        say("---- sample ----")
        say(result.sample)
    return 0


class ProgressBar:
    """A tqdm bar fed by the library's progress(event) and log(message) callbacks."""

    def __init__(self, unit):
        self.bar, self.unit = None, unit

    def update(self, event):
        from tqdm import tqdm
        if self.bar is None:
            self.bar = tqdm(total=event.steps, initial=event.step - (event.kind == "step"), unit="step",
                            desc=self.unit, file=sys.stderr, dynamic_ncols=True,
                            disable=None)  # None: no bar when stderr is not a terminal
        if event.kind == "step":
            self.bar.update(event.step - self.bar.n)
            postfix = {"loss": f"{event.loss:.4f}"}
            if event.tokens_per_sec:
                postfix["tok/s"] = f"{event.tokens_per_sec:,.0f}"
            self.bar.set_postfix(postfix, refresh=False)
        elif event.val_loss is not None:
            self.write(f"step {event.step}: train loss {event.train_loss:.4f}, val loss {event.val_loss:.4f}")
        elif event.accuracy is not None:
            self.write(f"step {event.step}: train loss {event.train_loss:.4f}, held-out accuracy {event.accuracy:.4f}")

    def write(self, message):
        note(message)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------
# generate, finetune, evaluate
# ---------------------------------------------------------------------------------------------


def cmd_generate(args):
    from tinygpt.generate import default_prompt, stream_text
    from tinygpt.train import load_run

    run = load_run(args.run)
    if run.config["kind"] != "lm":
        raise ValueError(f"{args.run} is a {run.config['kind']} run; generate needs a language-model run")
    prompt = default_prompt(run.tokenizer) if args.prompt is None else args.prompt
    if args.seed is not None and args.seed < 0:  # NumPy would say only "expected non-negative integer"
        raise ValueError(f"--seed must be an integer >= 0 (or left out: different every time), got {args.seed}")
    rng = np.random.default_rng(args.seed)  # one stream for all samples: each sample differs
    for k in range(args.num_samples):
        pieces = stream_text(run.model, run.tokenizer, prompt, args.max_new_tokens, args.temperature,
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


def cmd_finetune(args):
    from tinygpt.finetune import FinetuneConfig, finetune

    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    config = FinetuneConfig(**{k: v for k, v in vars(args).items() if k in fields and v is not None})
    bar = ProgressBar("finetune")
    try:
        result = finetune(config, progress=bar.update, log=bar.write)
    finally:
        bar.close()
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


def cmd_evaluate(args):
    from tinygpt.train import evaluate_lm, load_run
    from tinygpt.train.data import encode_in_pieces, load_splits
    from tinygpt.data import read_text

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
    result = evaluate_lm(run.model, tokens, block_size, args.batch_size, args.max_batches)
    say(f"{what} of {args.run} at step {run.step}: loss {result['loss']:.4f}, "
        f"perplexity {result['perplexity']:.2f} ({result['tokens']:,} tokens)")
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

    train = sub.add_parser("train", parents=[common], help="train a language model (default: Shakespeare, char GPT)")
    for flag, field, kind, text in TRAIN_OPTIONS:
        train.add_argument(flag, dest=field, type=kind, default=None, help=text)
    train.add_argument("--resume", metavar="RUN", help="continue RUN from its latest checkpoint")
    train.add_argument("--checkpoint", metavar="CKPT", help="with --resume: start from CKPT (e.g. ckpt_000020), "
                       "not the newest")
    train.add_argument("--init-from", metavar="RUN", help="start from RUN's weights and tokenizer (new text)")
    train.set_defaults(func=cmd_train)

    gen = sub.add_parser("generate", parents=[common], help="sample text from a trained run")
    gen.add_argument("--run", required=True, help="run directory")
    gen.add_argument("--prompt", help="text to continue (default: a newline)")
    gen.add_argument("--max-new-tokens", type=int, default=200)
    gen.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    gen.add_argument("--top-k", type=int, default=200, help="sample from the k most likely tokens (200)")
    gen.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with this mass")
    gen.add_argument("--seed", type=int, default=None, help="random seed (default: different every time)")
    gen.add_argument("--stop", action="append", default=[], help="stop before this string (repeatable)")
    gen.add_argument("--num-samples", type=int, default=1)
    gen.add_argument("--no-stream", action="store_true", help="print each sample when it is complete")
    gen.set_defaults(func=cmd_generate)

    ft = sub.add_parser("finetune", parents=[common], help="fine-tune a run to classify labelled texts")
    ft.add_argument("--from", dest="from_run", required=True, metavar="RUN", help="pretrained run directory")
    source = ft.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="labelled .csv (text,label) or .jsonl file")
    source.add_argument("--corpus", help="labelled built-in corpus, e.g. sentiment-zh")
    ft.add_argument("--test-data", help="score on this labelled file (then all of --data/--corpus trains)")
    ft.add_argument("--freeze-body", action="store_true", default=None, help="train the classifier head only")
    ft.add_argument("--from-scratch", action="store_true", default=None,
                    help="baseline: same model and tokenizer, random initial weights")
    for flag, kind, text in (("--epochs", int, "passes over the training examples (3)"),
                             ("--steps", int, "optimizer steps (overrides --epochs)"),
                             ("--eval-interval", int, "score the held-out examples every N steps (every epoch)"),
                             ("--lr", float, "peak learning rate (3e-4)"),
                             ("--batch-size", int, "examples per step (32)"),
                             ("--max-len", int, "tokens kept per text (64)"),
                             ("--val-fraction", float, "share held out for the accuracy (0.2)"),
                             ("--train-size", int, "use this many training examples"),
                             ("--test-size", int, "use this many held-out examples"),
                             ("--pooling", str, "last (default) or mean"),
                             ("--seed", int, "random seed (0)"),
                             ("--out-dir", str, "classifier run directory")):
        ft.add_argument(flag, type=kind, default=None, help=text)
    ft.set_defaults(func=cmd_finetune)

    ev = sub.add_parser("evaluate", parents=[common], help="validation loss/perplexity, or classifier accuracy")
    ev.add_argument("--run", required=True, help="run directory (language model or classifier)")
    ev.add_argument("--data", help="evaluate on this file instead of the run's held-out split")
    ev.add_argument("--errors", default="strict", help="bad UTF-8 in --data: strict or replace")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--max-batches", type=int, default=None, help="stop after this many batches")
    ev.set_defaults(func=cmd_evaluate)

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
        say(f"tinygpt: error: {one_line(e)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, UsageError) else EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
