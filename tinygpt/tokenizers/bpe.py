"""ByteLevelBPETokenizer: GPT-2/GPT-4 style byte-pair encoding over UTF-8 bytes.

Ids 0..255 are the bytes, so any text encodes and decodes exactly; each learned merge adds
one id for a pair of ids; special tokens ("<|endoftext|>") come last. Training is in
bpe_train.py, the regex pre-split in pretokenize.py. Text must be valid Unicode: a lone
surrogate (no UTF-8 form) is a ValueError. This does NOT read tiktoken/HF vocabulary files.
"""

import re
from collections import Counter
from itertools import repeat

from .base import Tokenizer, check_encodable, check_special_tokens, special_tokens_in_id_order
from .bpe_train import merge_pair, train_merges
from .pretokenize import GPT4_SPLIT_PATTERN, compile_split_pattern

CACHE_SIZE = 1 << 18  # distinct chunks remembered by encode; real text repeats its words a lot


class ByteLevelBPETokenizer(Tokenizer):
    """merges[k] = (left id, right id) creates id 256 + k, whose bytes are left's + right's."""

    type_name = "byte_bpe"

    def __init__(self, merges=(), special_tokens=(), pattern=GPT4_SPLIT_PATTERN):
        id_to_bytes = [bytes([b]) for b in range(256)]
        self.merges = []
        for k, pair in enumerate(merges):
            # Each merge may only use ids that exist before it: the 256 bytes and earlier merges.
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                    or not all(type(i) is int and 0 <= i < 256 + k for i in pair)):
                raise ValueError(f"merges[{k}] must be a pair of ids below {256 + k}, got {pair!r}")
            self.merges.append(tuple(pair))
            id_to_bytes.append(id_to_bytes[pair[0]] + id_to_bytes[pair[1]])
        self._merge_ids = {pair: 256 + k for k, pair in enumerate(self.merges)}
        if len(self._merge_ids) != len(self.merges):
            raise ValueError("merges has a repeated pair; training never merges a pair twice")
        self._split_re = compile_split_pattern(pattern)
        self.pattern = pattern
        super().__init__(id_to_bytes, special_tokens)
        self._cache = {}  # chunk str -> its ids

    @classmethod
    def train(cls, text, vocab_size, special_tokens=(), pattern=GPT4_SPLIT_PATTERN):
        """Learn vocab_size - 256 - len(special_tokens) merges from `text` (fewer if it runs out
        of pairs). Special tokens in the text are cut out first and never take part in merges."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        specials = check_special_tokens(special_tokens)
        min_size = 256 + len(specials)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < min_size:
            raise ValueError(f"vocab_size must be an int >= {min_size} (256 byte tokens + "
                             f"{len(specials)} special tokens), got {vocab_size!r}")
        check_encodable(text, "text")
        split_re = compile_split_pattern(pattern)

        # The big win: merge counts are the same whether we walk 2 million chunks or the
        # 50 thousand distinct ones, each weighted by how often it occurs.
        counts = Counter()
        by_length = sorted(specials, key=len, reverse=True)
        parts = re.split("|".join(map(re.escape, by_length)), text) if specials else [text]
        for part in parts:
            counts.update(split_re.findall(part))
        chunk_counts = {chunk.encode("utf-8"): n for chunk, n in counts.items()}
        merges = train_merges(chunk_counts, vocab_size - min_size)
        return cls(merges, special_tokens=specials, pattern=pattern)

    def _encode_ordinary(self, text, start):
        return encode_chunks(self, text, start)

    def _encode_chunk(self, chunk):
        """bytes -> list[int]: apply merges in the order they were learned, as training did."""
        ids = list(chunk)
        merge_ids = self._merge_ids
        no_merge = len(self._id_to_bytes)  # larger than every merge's id
        while len(ids) >= 2:
            # The present pair whose merge was learned first (smallest new id): later merges
            # may build on it, never the other way round, so this reproduces training.
            # map(dict.get, pairs, defaults) runs in C; it is the hot loop of encode.
            # NOTE: O(len(chunk)^2); chunks are words, but a megabyte of spaces is one chunk.
            new_id = min(map(merge_ids.get, zip(ids, ids[1:]), repeat(no_merge)))
            if new_id == no_merge:
                break
            ids = merge_pair(ids, self.merges[new_id - 256], new_id)
        return ids

    def _to_json(self):
        n_ordinary = 256 + len(self.merges)
        return {
            "pattern": self.pattern,
            "merges": [list(pair) for pair in self.merges],
            # Redundant with merges (checked on load), but lets a reader see every token's bytes.
            "vocab": [b.hex() for b in self._id_to_bytes[:n_ordinary]],
        }

    @classmethod
    def _from_json(cls, data):
        merges = data["merges"]
        if not isinstance(merges, list):
            raise TypeError(f"merges must be a list of [left id, right id], got {type(merges).__name__}")
        specials = special_tokens_in_id_order(data, 256 + len(merges))
        tokenizer = cls(merges, special_tokens=specials, pattern=data["pattern"])
        expected = [b.hex() for b in tokenizer._id_to_bytes[:256 + len(merges)]]
        vocab = data["vocab"]
        if vocab != expected:
            bad = next((i for i, (x, y) in enumerate(zip(vocab, expected)) if x != y), None)
            where = f"first difference at id {bad}" if bad is not None else \
                f"{len(vocab) if isinstance(vocab, list) else 'no'} entries, expected {len(expected)}"
            raise ValueError(f"vocab does not match the bytes the merges build ({where})")
        return tokenizer


def encode_chunks(tokenizer, text, start):
    """Ordinary text -> ids, split by tokenizer._split_re, each distinct chunk encoded once by
    tokenizer._encode_chunk and remembered in tokenizer._cache (up to CACHE_SIZE chunks)."""
    ids, cache = [], tokenizer._cache
    try:
        for chunk in tokenizer._split_re.findall(text):
            chunk_ids = cache.get(chunk)
            if chunk_ids is None:
                chunk_ids = tokenizer._encode_chunk(chunk.encode("utf-8"))
                if len(cache) < CACHE_SIZE:
                    cache[chunk] = chunk_ids
            ids.extend(chunk_ids)
    except UnicodeEncodeError:
        check_encodable(text, "text", start)  # raises a ValueError naming the position
        raise
    return ids
