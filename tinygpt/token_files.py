"""Token files: the ids of an encoded text as raw little-endian integers (nanoGPT's train.bin
layout), with a JSON sidecar that records the dtype and vocabulary size, read back as read-only
memmaps so a large corpus costs no memory until a batch touches it.
Not here: encoding text (tokenizers) or cutting batches from the ids (data.py).
"""

import json
from pathlib import Path

import numpy as np

from tinygpt.checkpoint import write_atomically


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
