"""Tokenizers: text <-> list of ids, saved as one JSON file each.

CharTokenizer (one id per character), WordTokenizer (per word, or per CJK character) and
ByteLevelBPETokenizer (GPT-2/GPT-4 style BPE over bytes) share the Tokenizer interface in
base.py. load_tokenizer(path) reads any of them back. Nothing here touches tensors or models.
"""

import os

from .base import StreamingDecoder, Tokenizer, read_tokenizer_json
from .bpe import ByteLevelBPETokenizer
from .char import CharTokenizer
from .pretokenize import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, split_text
from .word import WordTokenizer

# The "type" field of a saved file -> the class that reads it.
TOKENIZER_TYPES = {cls.type_name: cls for cls in (CharTokenizer, WordTokenizer, ByteLevelBPETokenizer)}


def load_tokenizer(path):
    """Read a file written by any tokenizer's save(); its "type" field picks the class."""
    data = read_tokenizer_json(path)
    if data["type"] not in TOKENIZER_TYPES:
        raise ValueError(f"{os.fspath(path)}: unknown tokenizer type {data['type']!r}, "
                         f"expected one of {sorted(TOKENIZER_TYPES)}")
    return TOKENIZER_TYPES[data["type"]]._from_file_data(data, path)


__all__ = [
    "Tokenizer", "StreamingDecoder", "CharTokenizer", "WordTokenizer", "ByteLevelBPETokenizer",
    "load_tokenizer", "split_text", "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "TOKENIZER_TYPES",
]
