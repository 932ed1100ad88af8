"""Tokenizers: text <-> list of ids, saved as one JSON file each.

CharTokenizer (one id per character), WordTokenizer (per word, or per CJK character) and
ByteLevelBPETokenizer (GPT-2/GPT-4 style BPE over bytes) share the Tokenizer interface in
base.py; GPT2Tokenizer reads and writes GPT-2 / Hugging Face files (huggingface.py).
load_tokenizer(path) reads any of them back, and Hugging Face's own tokenizer.json too. Nothing here touches tensors or models.
"""

import os

from .base import StreamingDecoder, Tokenizer, check_tokenizer_fields, read_json
from .bpe import ByteLevelBPETokenizer
from .char import CharTokenizer
from .huggingface import GPT2Tokenizer, is_hf_tokenizer_json
from .pretokenize import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, split_text
from .word import WordTokenizer

# The "type" field of a saved file -> the class that reads it.
TOKENIZER_TYPES = {cls.type_name: cls for cls in (CharTokenizer, WordTokenizer, ByteLevelBPETokenizer, GPT2Tokenizer)}


def load_tokenizer(path):
    """Read a file written by any tokenizer's save(); its "type" field picks the class. A Hugging
    Face tokenizer.json (same file name, other schema: a "model" object, no "type") is detected
    and read as a GPT2Tokenizer, so a run folder never mistakes one for the other."""
    data = read_json(path)
    if is_hf_tokenizer_json(data):
        return GPT2Tokenizer._from_hf_data(data, path)
    data = check_tokenizer_fields(data, path)
    if data["type"] not in TOKENIZER_TYPES:
        raise ValueError(f"{os.fspath(path)}: unknown tokenizer type {data['type']!r}, "
                         f"expected one of {sorted(TOKENIZER_TYPES)}")
    return TOKENIZER_TYPES[data["type"]]._from_file_data(data, path)


__all__ = [
    "Tokenizer", "StreamingDecoder", "CharTokenizer", "WordTokenizer", "ByteLevelBPETokenizer",
    "GPT2Tokenizer", "load_tokenizer", "split_text", "GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "TOKENIZER_TYPES",
]
