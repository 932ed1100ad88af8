"""TrainConfig: every setting of a language-model training run, checked when it is made, saved
as the run's config.json, and turned into a model (GPTConfig or LSTMConfig).

The defaults are nanoGPT's CPU Shakespeare setting (char tokenizer, 4 layers x 4 heads x 128,
block 64, batch 12, lr 1e-3 warmup + cosine to 1e-4, AdamW weight decay 0.1, clip 1.0).
Not here: reading data (data.py), the training loop (trainer.py).
"""

import dataclasses
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from tinygpt.corpora import default_corpus_name
from tinygpt.models import GPT, GPTConfig, LSTMConfig, LSTMLanguageModel

MODELS = ("gpt", "lstm")
TOKENIZERS = ("char", "word", "bpe")
BPE_PATTERNS = ("gpt4", "gpt2")  # the pre-split regex a bpe tokenizer is trained with (pretokenize.py)
SCHEDULES = ("cosine", "constant")

# Settings that may change when a run is resumed: they do not touch the weights, the optimizer
# or the batches, so the resumed run still takes exactly the steps an uninterrupted one would.
RESUMABLE_CHANGES = ("steps", "eval_interval", "eval_iters", "sample_tokens", "keep_checkpoints",
                     "resume", "out_dir", "init_from", "zero", "check_weights_every", "mpi_timeout",
                     # these two may change only together with the rank count, keeping the global
                     # batch (batch_size x ranks x grad_accum) and so the batches; the Trainer checks it
                     "batch_size", "grad_accum")


@dataclass
class TrainConfig:
    """A language-model training run. Invalid values raise ValueError naming the field."""

    # data: a built-in corpus (see `tinygpt corpora`) or a UTF-8 text file; neither = the default
    corpus: Optional[str] = None
    data: Optional[str] = None
    errors: str = "strict"  # for bad UTF-8 in `data`: "strict" refuses the file, "replace" reads on
    val_fraction: float = 0.1  # the last 10% of the tokens are held out
    # tokenizer
    tokenizer: str = "char"  # char | word | bpe
    vocab_size: int = 512  # bpe: the whole vocabulary; word: at most this many words (with <unk>)
    unk: Optional[str] = None  # char: a token for characters the training text lacks (e.g. "<unk>")
    # bpe: GPT-4's split (digits in threes, a leading symbol joins the word) or GPT-2's, the one
    # Hugging Face's ByteLevel pre-tokenizer knows: only a gpt2 run's tokenizer can be exported
    bpe_pattern: str = "gpt4"
    # model
    model: str = "gpt"  # gpt | lstm
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128  # GPT width; for the LSTM, the embedding size
    block_size: int = 64  # context length (GPT), truncated-backprop length (LSTM)
    dropout: float = 0.0
    bias: bool = True
    lstm_layers: int = 2
    lstm_hidden: int = 256
    # optimisation
    steps: int = 2000
    batch_size: int = 12  # windows per forward on each rank; the global batch is this x ranks x grad_accum
    grad_accum: int = 1  # micro-batches whose gradients are summed before one optimizer step
    max_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: Optional[int] = None  # None: min(100, steps // 10)
    lr_decay_steps: Optional[int] = None  # the cosine reaches min_lr here; None: at `steps`
    schedule: str = "cosine"  # cosine (warmup, then cosine to min_lr) | constant (max_lr)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99  # nanoGPT's choice for small models: few tokens per step
    grad_clip: float = 1.0  # global gradient-norm limit; 0 turns clipping off
    # bookkeeping
    eval_interval: int = 250
    eval_iters: int = 20  # batches per split in each loss estimate
    out_dir: Optional[str] = None  # None: runs/<corpus or file>-<tokenizer>-<model>
    seed: int = 1337
    resume: bool = False  # continue the run in out_dir from its latest checkpoint
    init_from: Optional[str] = None  # start from the weights and tokenizer of another run
    sample_tokens: int = 200  # generated at the end of training
    keep_checkpoints: int = 2  # older checkpoints are deleted once a newer one is saved
    # data-parallel training under mpiexec (docs/distributed.md); ignored in one process
    zero: int = 0  # 1: ZeRO stage 1, each rank keeps AdamW's moments for its slice of the parameters
    check_weights_every: int = 0  # debug: every N steps, check that all ranks hold the same weights
    mpi_timeout: float = 300.0  # seconds a rank waits for the others before the job is aborted

    def __post_init__(self):
        _check_choice(self, "model", MODELS)
        _check_choice(self, "tokenizer", TOKENIZERS)
        _check_choice(self, "schedule", SCHEDULES)
        _check_choice(self, "bpe_pattern", BPE_PATTERNS)
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size", "lstm_layers",
                     "lstm_hidden", "batch_size", "grad_accum", "eval_interval", "eval_iters", "keep_checkpoints"):
            _check_int(self, name, minimum=1)
        for name in ("steps", "sample_tokens", "seed", "check_weights_every"):
            _check_int(self, name, minimum=0)
        for name in ("warmup_steps", "lr_decay_steps"):
            if getattr(self, name) is not None:
                _check_int(self, name, minimum=0)
        for name in ("max_lr", "min_lr", "weight_decay", "grad_clip"):
            _check_number(self, name, low=0.0)
        for name, low, high in (("dropout", 0.0, 1.0), ("beta1", 0.0, 1.0), ("beta2", 0.0, 1.0),
                                ("val_fraction", 0.0, 1.0)):
            _check_number(self, name, low, high, high_open=True)
        if self.zero not in (0, 1) or isinstance(self.zero, bool):
            raise ValueError(f"zero must be 0 (off) or 1 (ZeRO stage 1: sharded optimizer moments), got "
                             f"{self.zero!r}; stages 2 and 3 (sharded gradients, parameters) are not supported")
        if isinstance(self.mpi_timeout, bool) or not isinstance(self.mpi_timeout, (int, float)) \
                or not self.mpi_timeout > 0:
            raise ValueError(f"mpi_timeout must be a number of seconds > 0, got {self.mpi_timeout!r}")
        if not 0.0 < self.val_fraction:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}: "
                             f"the validation loss needs held-out tokens")
        if self.unk is not None and (self.tokenizer != "char" or not isinstance(self.unk, str) or not self.unk):
            raise ValueError(f"unk={self.unk!r} (--unk) needs tokenizer 'char' and a non-empty token such as "
                             f"'<unk>', got tokenizer {self.tokenizer!r}; word has <unk> already, bpe reads any byte")
        if self.bpe_pattern != "gpt4" and self.tokenizer != "bpe":
            raise ValueError(f"bpe_pattern={self.bpe_pattern!r} (--bpe-pattern) needs tokenizer 'bpe', "
                             f"got tokenizer {self.tokenizer!r}")
        if self.min_lr > self.max_lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed max_lr ({self.max_lr})")
        decay = self.steps if self.lr_decay_steps is None else self.lr_decay_steps
        if self.schedule == "cosine" and self.warmup_steps is not None and self.warmup_steps > decay:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must not exceed lr_decay_steps "
                             f"({decay}); lower --warmup-steps or raise --steps")
        if self.model == "gpt" and self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                             f"each head gets n_embd // n_head channels")
        if self.tokenizer == "word" and self.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2 for the word tokenizer (<unk> takes one id, so "
                             f"{self.vocab_size} leaves no word: every text would encode to <unk>)")
        if self.tokenizer == "bpe" and self.vocab_size < 256:
            raise ValueError(f"vocab_size must be >= 256 for the bpe tokenizer (one id per byte), "
                             f"got {self.vocab_size}")
        if self.corpus is not None and self.data is not None:
            raise ValueError(f"give a corpus or a data file, not both (corpus={self.corpus!r}, "
                             f"data={self.data!r})")
        if self.resume and self.init_from is not None:
            raise ValueError("resume continues a run; init_from starts a new one from another run's "
                             "weights: give one of them")
        if self.errors not in ("strict", "replace", "ignore"):
            raise ValueError(f"errors must be 'strict', 'replace' or 'ignore', got {self.errors!r}")

    # ----- derived values ---------------------------------------------------------------------
    @property
    def source_name(self):
        """A short name for the training text: the corpus, or the data file's stem."""
        if self.data is not None:
            return Path(self.data).stem or "data"
        return self.corpus or default_corpus_name()

    def resolved(self):
        """A copy with the defaults that depend on other fields filled in (what config.json holds)."""
        out_dir = self.out_dir or str(Path("runs") / f"{self.source_name}-{self.tokenizer}-{self.model}")
        corpus = self.corpus if self.data is not None or self.corpus else default_corpus_name()
        decay = self.steps if self.lr_decay_steps is None else self.lr_decay_steps
        warmup = min(100, decay // 10) if self.warmup_steps is None else self.warmup_steps
        return dataclasses.replace(self, corpus=corpus, out_dir=out_dir, lr_decay_steps=decay, warmup_steps=warmup)

    def model_config(self, vocab_size):
        """-> {"type": "gpt"|"lstm", ...the GPTConfig/LSTMConfig fields}, what a run's config.json stores."""
        if self.model == "gpt":
            shape = GPTConfig(vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                              n_head=self.n_head, n_embd=self.n_embd, dropout=self.dropout, bias=self.bias)
        else:
            shape = LSTMConfig(vocab_size=vocab_size, n_embd=self.n_embd, hidden_size=self.lstm_hidden,
                               n_layer=self.lstm_layers, dropout=self.dropout)
        return {"type": self.model, **shape.to_dict()}

    # ----- saving -----------------------------------------------------------------------------
    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data, where="config"):
        """A saved dict -> TrainConfig; unknown or badly typed fields raise ValueError naming `where`."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object of TrainConfig fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown TrainConfig field(s) {unknown}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None

    @classmethod
    def from_run(cls, run_dir, **changes):
        """The config saved in run_dir/config.json, with `changes` applied (e.g. steps=4000, resume=True)."""
        return dataclasses.replace(cls.from_dict(read_run_config(run_dir)["train"],
                                                 where=str(Path(run_dir) / "config.json")), **changes)

    def differences(self, other, ignore=RESUMABLE_CHANGES):
        """[(field, self's value, other's value)] for the fields that differ, except `ignore`."""
        return [(f.name, getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)
                if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)]


def _check_choice(config, name, choices):
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_int(config, name, minimum):
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_number(config, name, low, high=math.inf, high_open=False):
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if high == math.inf and value < low:
        raise ValueError(f"{name} must be >= {low:g}, got {value!r}")
    if value < low or value > high or (high_open and value == high):
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must be in [{low:g}, {high:g}{bracket}, got {value!r}")


# ---------------------------------------------------------------------------------------------
# Models from saved configs
# ---------------------------------------------------------------------------------------------


def build_model(model_config, seed=0):
    """{"type": "gpt"|"lstm", ...fields} (as in config.json) -> a fresh GPT or LSTMLanguageModel."""
    fields = dict(model_config)
    kind = fields.pop("type", None)
    try:
        if kind == "gpt":
            return GPT(GPTConfig(**fields), seed=seed)
        if kind == "lstm":
            return LSTMLanguageModel(LSTMConfig(**fields), seed=seed)
    except TypeError as e:
        raise ValueError(f"model config {model_config} does not describe a {kind}: {e}") from None
    raise ValueError(f"model type must be one of {', '.join(MODELS)}, got {kind!r}")


def read_run_config(run_dir):
    """run_dir/config.json -> its dict, or ValueError saying what is wrong with the directory."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise ValueError(f"run directory not found: {run_dir}")
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a tinygpt run: it has no config.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("kind") not in ("lm", "classifier"):
        raise ValueError(f"{path} is not a tinygpt run config (no kind 'lm' or 'classifier')")
    # the fields every reader needs, checked here so a hand-edited file is one clear message, not a KeyError
    needed = {"model": dict, **({"train": dict} if config["kind"] == "lm" else {"label_names": list, "pooling": str})}
    for field, kind in needed.items():
        if not isinstance(config.get(field), kind):
            got = "missing" if field not in config else f"{config[field]!r:.60}"
            raise ValueError(f"{path}: field {field!r} is {got}, expected a {kind.__name__} "
                             f"(as `tinygpt {'train' if config['kind'] == 'lm' else 'finetune'}` writes it)")
    if not isinstance(config["model"].get("type"), str):
        raise ValueError(f"{path}: field 'model' has no 'type' (expected 'gpt' or 'lstm')")
    return config
