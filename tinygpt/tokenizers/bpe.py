"""ByteLevelBPETokenizer: GPT-2/GPT-4 style byte-pair encoding over UTF-8 bytes.

Ids 0..255 are the bytes, so any text encodes and decodes exactly; each learned merge adds
one id for a pair of ids; special tokens ("<|endoftext|>") come last. Training is in
bpe_train.py, the regex pre-split in pretokenize.py. Text must be valid Unicode: a lone
surrogate (no UTF-8 form) is a ValueError. This does NOT read tiktoken/HF vocabulary files.
"""

import re
from collections import Counter

from .base import Tokenizer, check_encodable, check_special_tokens, special_tokens_in_id_order
from .bpe_merge import MergeTable, bpe_merge_chunks, merge_chunk
from .bpe_train import train_merges
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
        self._merge_table = MergeTable(range(256), self.merges, range(256, 256 + len(self.merges)))
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
        """bytes -> list[int]: apply merges in the order they were learned, as training did (the
        present pair whose merge was learned first: later merges may build on it, never the
        other way round)."""
        return merge_chunk(chunk, self._merge_table)

    def _whole_chunk(self, chunk):
        return None  # every chunk is merged

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
    """Ordinary text -> ids, split by tokenizer._split_re. The distinct chunks not in
    tokenizer._cache are merged in one bpe_merge_chunks call on tokenizer._merge_table, and
    remembered (up to CACHE_SIZE chunks); tokenizer._whole_chunk(chunk) may give a chunk's ids
    without merging (GPT-2's ignore_merges), else None."""
    cache = tokenizer._cache
    chunks = tokenizer._split_re.findall(text)
    new = [c for c in dict.fromkeys(chunks) if c not in cache]  # distinct, in order of appearance
    fresh = {}
    if new:
        whole = [tokenizer._whole_chunk(c) for c in new]
        to_merge = [c for c, w in zip(new, whole) if w is None]
        try:
            data = [c.encode("utf-8") for c in to_merge]
        except UnicodeEncodeError:
            check_encodable(text, "text", start)  # raises a ValueError naming the position
            raise
        fresh = dict(zip(to_merge, bpe_merge_chunks(data, tokenizer._merge_table)))
        fresh.update((c, w) for c, w in zip(new, whole) if w is not None)
        for chunk in new[:max(0, CACHE_SIZE - len(cache))]:
            cache[chunk] = fresh[chunk]
    ids = []
    for chunk in chunks:
        chunk_ids = cache.get(chunk)
        ids.extend(fresh[chunk] if chunk_ids is None else chunk_ids)
    return ids
