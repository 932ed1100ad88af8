"""Keras' text preprocessing layers, on NumPy: TextVectorization (strings -> token ids, multi-hot or
counts) and StringLookup (tokens <-> ids). They hold a vocabulary, not weights: fit never changes
them and no gradient flows through them; `adapt(data)` learns the vocabulary before training.

The vocabulary is ordered as Keras orders it: the mask token "" (index 0, TextVectorization's int
mode), the OOV token "[UNK]", then tokens by count descending, ties broken by the token itself in
descending order (Keras sorts with np.lexsort((tokens, counts))[::-1]).
Not here: num_oov_indices > 1 (Keras hashes with farmhash), tf-idf, ngrams, saving the vocabulary
with the weights (pass vocabulary=layer.get_vocabulary() when rebuilding).
"""

import re
from collections import Counter

import numpy as np

from tinygpt.keras.layers import Layer
from tinygpt.keras.symbolic import is_symbolic

# Keras' DEFAULT_STRIP_REGEX: ASCII punctuation
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']')
_STANDARDIZE = {
    None: lambda s: s,
    "lower": str.lower,
    "strip_punctuation": lambda s: _PUNCTUATION.sub("", s),
    "lower_and_strip_punctuation": lambda s: _PUNCTUATION.sub("", s.lower()),
}
_SPLIT = {
    None: lambda s: [s],
    "whitespace": str.split,  # runs of whitespace, no empty tokens (as tf.strings.split)
    "character": list,        # one Unicode character per token (spaces included, as tf's unicode_split)
}


def _strings(x, what):
    """A list / array of strings, (B,) or (B, 1) -> a flat list of B Python strings."""
    a = np.asarray(x, dtype=object)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{what}: expected a batch of strings of shape (B,) or (B, 1), got shape {a.shape}")
    return [s.decode("utf-8") if isinstance(s, bytes) else s if isinstance(s, str) else _not_str(s, what) for s in a]


def _not_str(s, what):
    raise TypeError(f"{what}: expected strings, got {type(s).__name__} {s!r}")


def _batches(data, what):
    """adapt's data: a list/array of strings, or an iterable (generator) of such batches."""
    if isinstance(data, (str, bytes)):
        raise TypeError(f"{what}: data must be a list/array of strings or a generator of batches, got one string")
    if isinstance(data, (list, tuple, np.ndarray)):
        yield _strings(data, what)
        return
    for batch in data:
        yield _strings(batch[0] if isinstance(batch, tuple) else batch, what)


def _by_frequency(counts, max_learned):
    """Counter -> tokens by count descending, ties by token descending (Keras' order)."""
    tokens = sorted(counts, key=lambda t: (counts[t], t), reverse=True)
    return tokens if max_learned is None else tokens[:max_learned]


class _Lookup:
    """vocabulary list <-> ids; unknown tokens map to oov_index (None: an error)."""

    def __init__(self, vocabulary, oov_index):
        self.vocabulary = list(vocabulary)
        self.index = {t: i for i, t in enumerate(self.vocabulary)}
        self.oov_index = oov_index

    def ids(self, token, what):
        i = self.index.get(token, self.oov_index)
        if i is None:
            raise KeyError(f"{what}: token {token!r} is not in the vocabulary and num_oov_indices=0")
        return i


class _PreprocessingLayer(Layer):
    """No weights, no gradient; accepts strings before the float/int checks of other layers."""

    takes_strings = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.trainable = False
        self.lookup = None

    def __call__(self, x, training=False, **kwargs):
        if not is_symbolic(x):
            x = np.asarray(x, dtype=object)  # a list of strings is one input, not many
        return super().__call__(x, training=training, **kwargs)

    def _require_vocabulary(self):
        if self.lookup is None:
            raise ValueError(f"{type(self).__name__} {self.name!r} has no vocabulary: call "
                             f"layer.adapt(texts) or pass vocabulary=[...] first")

    def get_vocabulary(self):
        self._require_vocabulary()
        return list(self.lookup.vocabulary)

    def vocabulary_size(self):
        return len(self.get_vocabulary())


class TextVectorization(_PreprocessingLayer):
    """strings (B,) or (B, 1) -> ids (B, T) int64 (output_mode="int"), or (B, V) float32 multi-hot or
    counts. T is output_sequence_length (pad with 0 / cut at the end), else the batch's longest."""

    default_name = "text_vectorization"

    def __init__(self, max_tokens=None, standardize="lower_and_strip_punctuation", split="whitespace",
                 output_mode="int", output_sequence_length=None, vocabulary=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(standardize) and standardize not in _STANDARDIZE:
            raise ValueError(f"TextVectorization: standardize must be one of {list(_STANDARDIZE)} or a "
                             f"callable str -> str, got {standardize!r}")
        if not callable(split) and split not in _SPLIT:
            raise ValueError(f"TextVectorization: split must be one of {list(_SPLIT)} or a callable "
                             f"str -> list of str, got {split!r}")
        if output_mode not in ("int", "multi_hot", "count"):
            raise ValueError(f"TextVectorization: output_mode must be 'int', 'multi_hot' or 'count', got {output_mode!r}")
        for arg, value, low in (("max_tokens", max_tokens, 3), ("output_sequence_length", output_sequence_length, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low):
                raise ValueError(f"TextVectorization: {arg} must be an int >= {low} or None, got {value!r}")
        if output_sequence_length is not None and output_mode != "int":
            raise ValueError(f"TextVectorization: output_sequence_length is only for output_mode='int', "
                             f"got output_mode={output_mode!r}")
        self.max_tokens, self.output_mode = max_tokens, output_mode
        self.standardize, self.split = standardize, split
        self.output_sequence_length = output_sequence_length
        # Keras keeps the mask token "" at index 0 only in int mode; "[UNK]" comes next
        self.specials = ["", "[UNK]"] if output_mode == "int" else ["[UNK]"]
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    def tokens(self, text):
        """One string -> its tokens, after standardize and split."""
        s = self.standardize(text) if callable(self.standardize) else _STANDARDIZE[self.standardize](text)
        return self.split(s) if callable(self.split) else _SPLIT[self.split](s)

    def set_vocabulary(self, vocabulary):
        """vocabulary: the learned tokens (a leading "" and "[UNK]" are taken as the specials)."""
        vocab = [t for t in vocabulary if t not in ("", "[UNK]")]
        self.lookup = _Lookup(self.specials + vocab, self.specials.index("[UNK]"))

    def adapt(self, data):
        counts = Counter()
        for batch in _batches(data, "TextVectorization.adapt"):
            for text in batch:
                counts.update(self.tokens(text))
        for special in ("", "[UNK]"):
            counts.pop(special, None)
        learned = None if self.max_tokens is None else self.max_tokens - len(self.specials)
        self.set_vocabulary(_by_frequency(counts, learned))

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return (input_shape[0], self.output_sequence_length)
        return (input_shape[0], len(self.lookup.vocabulary) if self.lookup else self.max_tokens)

    def forward(self, x):
        self._require_vocabulary()
        rows = [[self.lookup.ids(t, self.name) for t in self.tokens(s)] for s in _strings(x, self.name)]
        if self.output_mode != "int":
            out = np.zeros((len(rows), len(self.lookup.vocabulary)), np.float32)  # (B, V)
            for b, ids in enumerate(rows):
                np.add.at(out[b], ids, 1.0)
            return np.minimum(out, 1.0) if self.output_mode == "multi_hot" else out
        T = self.output_sequence_length or max([len(r) for r in rows] + [1])
        out = np.zeros((len(rows), T), np.int64)  # (B, T), 0 = padding
        for b, ids in enumerate(rows):
            out[b, :min(T, len(ids))] = ids[:T]
        return out

    def get_config(self):
        return {"max_tokens": self.max_tokens, "output_mode": self.output_mode,
                "output_sequence_length": self.output_sequence_length}


class StringLookup(_PreprocessingLayer):
    """tokens (any shape) -> int64 ids of the same shape; invert=True maps ids back to tokens.
    Vocabulary: [mask_token if given] + ["[UNK]"] * num_oov_indices + learned tokens."""

    default_name = "string_lookup"

    def __init__(self, max_tokens=None, num_oov_indices=1, mask_token=None, oov_token="[UNK]",
                 vocabulary=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if num_oov_indices not in (0, 1):
            raise NotImplementedError(f"StringLookup: num_oov_indices={num_oov_indices!r}; tinygpt.keras "
                                      f"supports 0 or 1 (Keras hashes several OOV buckets with farmhash)")
        self.max_tokens, self.invert = max_tokens, bool(invert)
        self.specials = ([] if mask_token is None else [mask_token]) + [oov_token] * num_oov_indices
        self.oov_index = len(self.specials) - 1 if num_oov_indices else None
        self.oov_token = oov_token
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    def set_vocabulary(self, vocabulary):
        vocab = [t for t in vocabulary if t not in self.specials]
        self.lookup = _Lookup(self.specials + vocab, self.oov_index)

    def adapt(self, data):
        counts = Counter()
        for batch in _batches(data, "StringLookup.adapt"):
            counts.update(batch)
        for special in self.specials:
            counts.pop(special, None)
        learned = None if self.max_tokens is None else self.max_tokens - len(self.specials)
        self.set_vocabulary(_by_frequency(counts, learned))

    def __call__(self, x, training=False, **kwargs):
        if not is_symbolic(x) and self.invert:
            return super(_PreprocessingLayer, self).__call__(np.asarray(x), training=training, **kwargs)
        return super().__call__(x, training=training, **kwargs)

    def forward(self, x):
        self._require_vocabulary()
        a = np.asarray(x)
        if self.invert:
            if a.dtype.kind not in "iu" or (a.size and (a.min() < 0 or a.max() >= len(self.lookup.vocabulary))):
                raise ValueError(f"StringLookup {self.name!r} (invert=True): expected int ids in "
                                 f"0..{len(self.lookup.vocabulary) - 1}, got {a.dtype} values")
            return np.asarray(self.lookup.vocabulary, dtype=object)[a]
        flat = [t.decode("utf-8") if isinstance(t, bytes) else t for t in a.reshape(-1)]
        return np.array([self.lookup.ids(t, self.name) for t in flat], np.int64).reshape(a.shape)


__all__ = ["TextVectorization", "StringLookup"]
