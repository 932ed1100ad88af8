"""Batches on plain NumPy arrays: Keras-style padding and one-hot labels, seeded splits, and
nanoGPT-style language-model batches (random windows, or every window once).
Not here: token files (token_files.py), text and labelled CSV/JSONL files (text_files.py),
tokenizers, corpora, Tensors or autograd: a batch is just a pair of int64 arrays.
"""

import math
from typing import Iterator, NamedTuple

import numpy as np


# ---------------------------------------------------------------------------------------------
# Keras-style sequence utilities
# ---------------------------------------------------------------------------------------------


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0):
    """list of N sequences -> (N, maxlen) array, padded/truncated exactly like Keras.

    'pre' is the default for both because a recurrent model reads left to right: the real
    tokens then sit next to the final state and the padding is what it reads first.
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"padding must be 'pre' or 'post', got {padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(f"truncating must be 'pre' or 'post', got {truncating!r}")
    if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0):
        raise ValueError(f"maxlen must be None or an int >= 0, got {maxlen!r}")
    if not hasattr(sequences, "__len__"):
        raise TypeError(f"sequences must be a list of sequences, got {type(sequences).__name__}")
    lengths, sample_shape = [], None
    for i, seq in enumerate(sequences):
        if isinstance(seq, (str, bytes)) or not hasattr(seq, "__len__"):
            raise TypeError(f"sequences[{i}] must be a list or array of values, got {seq!r:.60}")
        lengths.append(len(seq))
        if len(seq) and sample_shape is None:
            sample_shape = np.asarray(seq).shape[1:]  # Keras allows sequences of vectors too
    sample_shape = () if sample_shape is None else sample_shape
    if maxlen is None:
        maxlen = max(lengths, default=0)
    if isinstance(value, str) and np.dtype(dtype).kind not in "USO":
        raise TypeError(f"value {value!r} is a string but dtype is {dtype!r}; use dtype=object or str")

    out = np.full((len(sequences), maxlen) + sample_shape, value, dtype=dtype)
    for i, seq in enumerate(sequences):
        if not len(seq) or maxlen == 0:
            continue
        kept = seq[-maxlen:] if truncating == "pre" else seq[:maxlen]
        kept = np.asarray(kept, dtype=dtype)
        if kept.shape[1:] != sample_shape:
            raise ValueError(f"sequences[{i}] has elements of shape {kept.shape[1:]}, "
                             f"expected {sample_shape} like the first non-empty sequence")
        if padding == "pre":
            out[i, maxlen - len(kept):] = kept
        else:
            out[i, :len(kept)] = kept
    return out


def to_categorical(y, num_classes=None, dtype="float32"):
    """integer labels (...,) -> one-hot (..., num_classes), like Keras.

    As in Keras a trailing axis of size 1 is dropped first, so labels of shape (N, 1) give (N, K).
    """
    labels = np.asarray(y)
    if labels.size and labels.dtype.kind not in "biuf":
        raise TypeError(f"y must hold integer labels, got dtype {labels.dtype}")
    if labels.dtype.kind == "f" and not np.all(labels == np.round(labels)):
        first_bad = labels[labels != np.round(labels)].flat[0]
        raise ValueError(f"y must hold integer labels, got non-integer value {first_bad}")
    labels = labels.astype(np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1)
    if num_classes is None:
        if flat.size == 0:
            raise ValueError("y is empty, so num_classes cannot be inferred; pass num_classes")
        num_classes = int(flat.max()) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    bad = (flat < 0) | (flat >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"label {flat[i]} at flat index {i} is out of range for num_classes={num_classes} "
                         f"(expected 0..{num_classes - 1})")
    one_hot = np.zeros((flat.size, num_classes), dtype=dtype)
    one_hot[np.arange(flat.size), flat] = 1
    return one_hot.reshape(shape + (num_classes,))


# ---------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------


def train_val_split(*arrays, val_fraction=0.1, seed=0, shuffle=True):
    """arrays of equal length N -> (a_train, a_val, b_train, b_val, ...), sklearn order.

    The same seed always gives the same split. With shuffle=False the validation part is the
    last ceil(N * val_fraction) items, like Keras' validation_split. Lists stay lists.
    """
    if not arrays:
        raise ValueError("train_val_split needs at least one array")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    n = len(arrays[0])
    for k, a in enumerate(arrays):
        if len(a) != n:
            raise ValueError(f"all arrays must have the same length: arrays[0] has {n}, arrays[{k}] has {len(a)}")
    n_val = math.ceil(n * val_fraction)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    train_idx, val_idx = order[: n - n_val], order[n - n_val:]
    out = []
    for a in arrays:
        for idx in (train_idx, val_idx):
            out.append(a[idx] if isinstance(a, np.ndarray) else [a[i] for i in idx])
    return tuple(out)


def split_tokens(tokens, val_fraction=0.1):
    """tokens (N,) -> (train, val): the first int(N * (1 - val_fraction)) tokens train.

    A contiguous cut (nanoGPT) rather than a shuffle, because windows that straddle a
    shuffled boundary would leak validation text into training. Views, so memmaps stay lazy.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if np.ndim(tokens) != 1:
        raise ValueError(f"tokens must be 1-D, got shape {np.shape(tokens)}")
    n_train = int(len(tokens) * (1.0 - val_fraction))
    return tokens[:n_train], tokens[n_train:]


# ---------------------------------------------------------------------------------------------
# Language-model batches
# ---------------------------------------------------------------------------------------------


def _check_lm_args(tokens, batch_size, block_size):
    if np.ndim(tokens) != 1:
        raise ValueError(f"tokens must be a 1-D array, got shape {np.shape(tokens)}")
    for name, v in (("batch_size", batch_size), ("block_size", block_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if len(tokens) < block_size + 1:
        raise ValueError(f"need at least block_size + 1 = {block_size + 1} tokens for one (x, y) window, "
                         f"got {len(tokens)}; lower block_size")


def random_windows(tokens, batch_size, block_size, rng):
    """tokens (N,) -> x, y: (B, T) int64, y[b, t] = x[b, t + 1] (nanoGPT's get_batch).

    Each row starts at a uniform offset in [0, N - T); only those B*(T+1) tokens are read,
    so a memmap corpus larger than memory works.
    """
    _check_lm_args(tokens, batch_size, block_size)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a np.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    starts = rng.integers(0, len(tokens) - block_size, size=batch_size)  # (B,)
    window = starts[:, None] + np.arange(block_size + 1)  # (B, T+1) indices
    chunk = np.asarray(tokens[window], dtype=np.int64)  # (B, T+1)
    return chunk[:, :-1], chunk[:, 1:]


class Batch(NamedTuple):
    """x, y: (B, T) int64; pass next_start as `start` to resume right after this batch."""

    x: np.ndarray
    y: np.ndarray
    next_start: int


def sequential_batches(tokens, batch_size, block_size, start=0) -> Iterator[Batch]:
    """tokens (N,) -> Batch(x, y, next_start) over non-overlapping windows, one epoch.

    Row r of a batch starting at p reads x = tokens[p + r*T : p + (r+1)*T] (and y one later),
    so every window from `start` on is seen exactly once. The last batch may have fewer rows;
    a tail shorter than T + 1 tokens is skipped. Store next_start in a checkpoint to resume.
    """
    _check_lm_args(tokens, batch_size, block_size)
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start <= len(tokens):
        raise ValueError(f"start must be an int in [0, {len(tokens)}], got {start!r}")
    position = int(start)
    while True:
        # NOTE: y reaches one token past x, so a window needs T + 1 tokens, not T.
        rows = min(batch_size, (len(tokens) - 1 - position) // block_size)
        if rows < 1:
            return
        span = np.asarray(tokens[position: position + rows * block_size + 1], dtype=np.int64)
        x = span[:-1].reshape(rows, block_size)  # (B, T)
        y = span[1:].reshape(rows, block_size)  # (B, T)
        position += rows * block_size
        yield Batch(x, y, position)
