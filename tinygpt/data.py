"""Data plumbing on plain NumPy arrays: Keras-style padding and one-hot labels, seeded splits,
nanoGPT-style language-model batches, token files as read-only memmaps, labelled CSV/JSONL
and strict UTF-8 text reading.
Not here: tokenizers (tinygpt/tokenizers), built-in corpora (corpora.py), Tensors or
autograd -- it imports only checkpoint.write_atomically from tinygpt, so a batch is just a pair
of int64 arrays.
"""

import codecs
import csv
import io
import json
import math
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from tinygpt.checkpoint import write_atomically

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


# ---------------------------------------------------------------------------------------------
# Token files: raw little-endian ids plus a JSON sidecar that records the dtype
# ---------------------------------------------------------------------------------------------


def _sidecar_path(path):
    return Path(str(path) + ".json")


def write_tokens(path, ids, vocab_size):
    """ids (N,) -> a raw token file at `path` plus `path.json` naming its dtype; returns path.

    uint16 when every id fits (vocab_size <= 65536, as GPT-2's 50257 does), else uint32: half
    the disk and page cache for most vocabularies. Both files are replaced atomically.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or not 1 <= vocab_size <= 2**32:
        raise ValueError(f"vocab_size must be an int in [1, 2**32], got {vocab_size!r}")
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
    if ids.size and ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)][0]
        raise ValueError(f"token id {bad} is out of range for vocab_size={vocab_size} (expected 0..{vocab_size - 1})")
    dtype = np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")
    write_atomically(path, ids.astype(dtype).tobytes())
    # The sidecar goes last: its num_tokens lets read_tokens spot a token file from another write.
    sidecar = {"format": "tinygpt-tokens", "version": 1, "dtype": dtype.name,
               "vocab_size": int(vocab_size), "num_tokens": int(ids.size)}
    write_atomically(_sidecar_path(path), (json.dumps(sidecar, indent=2) + "\n").encode())
    return Path(path)


def read_tokens(path, dtype=None):
    """token file -> read-only (N,) np.memmap with the dtype recorded by write_tokens.

    Pages are read from disk only when indexed, so a corpus larger than memory can train.
    Pass dtype (e.g. "uint16") to read a headerless nanoGPT .bin that has no sidecar.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"token file not found: {path}")
    sidecar = _sidecar_path(path)
    num_tokens = None
    if sidecar.is_file():
        try:
            info = json.loads(sidecar.read_text(encoding="utf-8"))
            dtype, num_tokens = np.dtype(info["dtype"]).newbyteorder("<"), int(info["num_tokens"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"token sidecar {sidecar} is unreadable ({e}); rewrite it with write_tokens") from e
    elif dtype is None:
        raise ValueError(f"no sidecar {sidecar.name} next to {path}; write the file with write_tokens, "
                         "or pass dtype='uint16' for a raw nanoGPT .bin")
    else:
        dtype = np.dtype(dtype)
    size = path.stat().st_size
    if num_tokens is not None and size != num_tokens * dtype.itemsize:
        raise ValueError(f"token file {path} has {size} bytes, expected {num_tokens} tokens of {dtype.name} "
                         f"= {num_tokens * dtype.itemsize} bytes: truncated, or not the file this sidecar describes")
    if size % dtype.itemsize:
        raise ValueError(f"token file {path} has {size} bytes, not a whole number of {dtype.name} tokens")
    if size == 0:  # NOTE: mmap cannot map an empty file
        empty = np.zeros(0, dtype=dtype)
        empty.flags.writeable = False
        return empty
    return np.memmap(path, dtype=dtype, mode="r", shape=(size // dtype.itemsize,))


# ---------------------------------------------------------------------------------------------
# Text files
# ---------------------------------------------------------------------------------------------


def read_text(path, errors="strict"):
    """UTF-8 file -> str with universal newlines ("\\r\\n" and "\\r" become "\\n").

    Refuses a missing, empty or binary (NUL bytes) file, and names the byte offset of bad
    UTF-8: training silently on mojibake is worse than failing. errors="replace" relaxes that.
    """
    try:
        codecs.lookup_error(errors)
    except (LookupError, TypeError):
        raise ValueError(f"errors must be a codec error handler such as 'strict' or 'replace', "
                         f"got {errors!r}") from None
    path = Path(path)
    if not path.exists():
        raise ValueError(f"text file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a regular file: {path}")
    data = path.read_bytes()
    if not data:
        raise ValueError(f"text file is empty: {path}")
    nul = data.find(b"\x00")
    if nul != -1:
        raise ValueError(f"{path} looks binary (NUL byte at offset {nul}), expected a UTF-8 text file")
    try:
        text = data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not valid UTF-8: byte {data[e.start]:#04x} at offset {e.start} ({e.reason}); "
                         "pass errors='replace' to read it anyway") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _label_names(raw_labels):
    """Sorted label names: numerically when every label is an integer, so '10' sorts after '2'."""
    names = sorted(set(raw_labels))
    if all(n.lstrip("-").isdigit() for n in names):
        names.sort(key=int)
    return names


def _rows_from_csv(text, path):
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    columns = [c.strip() for c in header] if header else []
    if "text" not in columns or "label" not in columns:
        raise ValueError(f"{path}: CSV header must name the columns 'text' and 'label', got {columns}; "
                         "add a first line 'text,label'")
    i_text, i_label = columns.index("text"), columns.index("label")
    while True:
        try:
            row = next(reader, None)
        except csv.Error as e:
            raise ValueError(f"{path}: line {reader.line_num} is not valid CSV ({e})") from None
        if row is None:
            return
        if not row:  # blank line
            continue
        if len(row) != len(columns):
            raise ValueError(f"{path}: line {reader.line_num} has {len(row)} fields, expected {len(columns)} "
                             f"({','.join(columns)}); quote text that contains commas")
        yield reader.line_num, row[i_text], row[i_label]


def _rows_from_jsonl(text, path):
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {line_number} is not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict) or "text" not in record or "label" not in record:
            raise ValueError(f'{path}: line {line_number} must be an object with "text" and "label", '
                             f"got {line.strip()[:80]}")
        text_value, label = record["text"], record["label"]
        if not isinstance(text_value, str):
            raise ValueError(f'{path}: line {line_number}: "text" must be a string, got {type(text_value).__name__}')
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise ValueError(f'{path}: line {line_number}: "label" must be a string or an integer, got {label!r}')
        yield line_number, text_value, str(label)


def load_labelled(path):
    """CSV (header with text,label) or JSONL ({"text", "label"}) -> texts, labels (N,) int64, label_names.

    labels[i] indexes label_names, which are sorted (numerically if all are integers), so the
    same file always gives the same ids. Format by extension (.csv / .jsonl, .json, .ndjson),
    else by content: a first character '{' means JSONL.
    """
    path = Path(path)
    text = read_text(path)
    text = text.removeprefix("\ufeff")  # Excel writes a byte-order mark before the header
    if not text.strip():
        raise ValueError(f"labelled file has no rows: {path}")
    suffix = path.suffix.lower()
    is_jsonl = suffix in (".jsonl", ".json", ".ndjson") or (suffix != ".csv" and text.lstrip().startswith("{"))
    rows = _rows_from_jsonl(text, path) if is_jsonl else _rows_from_csv(text, path)
    texts, raw_labels = [], []
    for line_number, text_value, label in rows:
        if not label.strip():
            raise ValueError(f"{path}: line {line_number} has an empty label")
        texts.append(text_value)
        raw_labels.append(label.strip())
    if not texts:
        raise ValueError(f"labelled file has a header but no rows: {path}")
    label_names = _label_names(raw_labels)
    index = {name: i for i, name in enumerate(label_names)}
    labels = np.array([index[name] for name in raw_labels], dtype=np.int64)
    return texts, labels, label_names
