"""Training text -> tokenizer -> token ids in a file that training reads as a memmap.

The text is encoded once, piece by piece, into run_dir/tokens.bin; batches are random windows of
the memory-mapped ids. The first (1 - val_fraction) of the tokens train and the rest validate: a
contiguous cut, as in nanoGPT, so no window straddles the two.
Not here: strict UTF-8 reading (tinygpt.text_files.read_text) or the corpora themselves (tinygpt.corpora).
"""

import numpy as np

from tinygpt.corpora import list_corpora, load_corpus
from tinygpt.data import split_tokens
from tinygpt.text_files import read_text
from tinygpt.token_files import read_tokens
from tinygpt.tokenizers import (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, ByteLevelBPETokenizer,
                                CharTokenizer, WordTokenizer)

PIECE_CHARS = 1 << 20  # encode about a million characters at a time


def read_training_text(config):
    """config.data (a UTF-8 file) or config.corpus (a built-in text corpus) -> str."""
    if config.data is not None:
        return read_text(config.data, errors=config.errors)
    kinds = {c["name"]: c["kind"] for c in list_corpora()}
    if kinds.get(config.corpus) == "labelled":
        raise ValueError(f"corpus {config.corpus!r} is a labelled (classification) corpus; "
                         f"use it with `tinygpt finetune --corpus {config.corpus}`")
    return load_corpus(config.corpus)


def build_tokenizer(config, text):
    """A new tokenizer of config.tokenizer's kind, trained on `text`."""
    if config.tokenizer == "char":
        return CharTokenizer.train(text, unk=config.unk)
    if config.tokenizer == "word":
        return WordTokenizer.train(text, max_vocab=config.vocab_size)
    pattern = GPT2_SPLIT_PATTERN if config.bpe_pattern == "gpt2" else GPT4_SPLIT_PATTERN
    return ByteLevelBPETokenizer.train(text, config.vocab_size, pattern=pattern)


def _piece_end(text, end):
    """Where to cut near `end`: after a newline and before a non-space character. No tokenizer
    here joins text across such a point (words split at whitespace; BPE's pre-split regex
    ends every chunk at a newline run), so encoding piece by piece equals encoding it whole."""
    if end >= len(text):
        return len(text)
    cut = text.find("\n", end)
    while cut != -1 and cut + 1 < len(text) and text[cut + 1].isspace():
        cut = text.find("\n", cut + 1)
    return len(text) if cut == -1 else cut + 1


def encode_in_pieces(tokenizer, text, piece_chars=PIECE_CHARS):
    """text -> ids (N,) int64, encoded a piece at a time: a Python list of ids costs ~36 bytes
    each, so a whole corpus as one list would take far more memory than the array."""
    pieces, start = [], 0
    while start < len(text):
        end = _piece_end(text, start + piece_chars)
        # special="text": a literal "<unk>" in the data is text, not a control token
        pieces.append(np.asarray(tokenizer.encode(text[start:end], special="text"), dtype=np.int64))
        start = end
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def check_split_sizes(n_tokens, val_fraction, block_size, what):
    """Both splits need one (x, y) window of block_size + 1 tokens; else a ValueError with a hint."""
    n_train = int(n_tokens * (1.0 - val_fraction))
    for split, n in (("training", n_train), ("validation", n_tokens - n_train)):
        if n < block_size + 1:
            raise ValueError(f"{what} has {n_tokens} tokens, so the {split} split has {n}, fewer than "
                             f"block_size + 1 = {block_size + 1}; use more text or a smaller block_size")


def load_splits(path, val_fraction):
    """token file -> (train, val): read-only memmap views, nothing read yet."""
    return split_tokens(read_tokens(path), val_fraction)
