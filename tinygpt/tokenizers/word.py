"""WordTokenizer: one id per whitespace-separated word; with cjk_chars=True, one per CJK character.

For text that is already segmented ("我 爱 吃 苹果"), unsegmented Chinese/Japanese/Korean
("我爱吃苹果", cjk_chars=True) and word-level baselines. It is lossy: decode puts one space
between words (none between two CJK characters), so newlines and runs of spaces are not kept.
It does NOT split punctuation off words ("hello," is one word) and does not segment CJK words.
"""

import re
from collections import Counter

from .base import (Tokenizer, check_encodable, check_special_tokens, special_tokens_in_id_order,
                   special_tokens_with_unk)

# Unicode blocks whose characters are written without spaces between words: Hangul Jamo,
# CJK radicals, CJK symbols and punctuation (after U+3000, which is a space), kana, Bopomofo,
# enclosed/compatibility CJK, ideographs (with extensions A-H), Hangul syllables, fullwidth forms.
CJK_RANGES = (
    (0x1100, 0x11FF), (0x2E80, 0x2FDF), (0x2FF0, 0x2FFF), (0x3001, 0x303F), (0x3040, 0x30FF),
    (0x3100, 0x31FF), (0x3200, 0x33FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xA960, 0xA97F),
    (0xAC00, 0xD7FF), (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF),
    (0x20000, 0x2FA1F), (0x30000, 0x323AF),
)
_CJK = "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES)
CJK_CHAR_RE = re.compile(f"[{_CJK}]")
_WORD_RE = re.compile(r"\S+")
_WORD_OR_CJK_CHAR_RE = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")  # "我爱Python" -> 我, 爱, Python


def split_words(text, cjk_chars=False):
    """str -> list[str]: whitespace-separated words; with cjk_chars, each CJK character alone."""
    return (_WORD_OR_CJK_CHAR_RE if cjk_chars else _WORD_RE).findall(text)


class WordTokenizer(Tokenizer):
    """Ids 0..len(words)-1 are `words` (most frequent first when trained), then `unk`, then specials."""

    type_name = "word"

    def __init__(self, words, cjk_chars=False, special_tokens=(), unk="<unk>"):
        words = list(words)
        for w in words:
            if not isinstance(w, str) or not w or _WORD_RE.fullmatch(w) is None:
                raise ValueError(f"each word must be a non-empty str without whitespace, got {w!r}")
            check_encodable(w, "word")
        if len(set(words)) != len(words):
            raise ValueError("words has duplicates; use WordTokenizer.train(text) to build them")
        if not isinstance(cjk_chars, bool):
            raise TypeError(f"cjk_chars must be True or False, got {cjk_chars!r}")
        special_tokens = special_tokens_with_unk(special_tokens, unk)
        super().__init__([w.encode("utf-8") for w in words], special_tokens)
        self.words = words
        self.cjk_chars = cjk_chars
        self.unk = unk
        self._word_to_id = {w: i for i, w in enumerate(words)}
        self._unk_id = None if unk is None else self._special_to_id[unk]
        # Decode glues two CJK characters together and puts a space between anything else.
        self._is_cjk_char = [cjk_chars and len(w) == 1 and CJK_CHAR_RE.match(w) is not None
                             for w in words] + [False] * len(special_tokens)

    @classmethod
    def train(cls, text, cjk_chars=False, max_vocab=None, min_freq=1, special_tokens=(), unk="<unk>"):
        """Keep the words seen at least `min_freq` times, most frequent first (ties alphabetical),
        at most `max_vocab` ids in all (special tokens and unk included)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        check_encodable(text, "text")
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        specials = check_special_tokens(special_tokens)
        n_specials = len(specials) + (unk is not None and unk not in specials)
        if max_vocab is not None and (not isinstance(max_vocab, int) or max_vocab < n_specials):
            raise ValueError(f"max_vocab must be an int >= {n_specials} (the number of special "
                             f"tokens, unk included), got {max_vocab!r}")
        # Special tokens are not words: cut them out before counting.
        cut = sorted(specials + ([unk] if unk is not None else []), key=len, reverse=True)
        counts = Counter()
        for part in (re.split("|".join(map(re.escape, cut)), text) if cut else [text]):
            counts.update(split_words(part, cjk_chars))
        words = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        if max_vocab is not None:
            words = words[:max_vocab - n_specials]
        return cls(words, cjk_chars=cjk_chars, special_tokens=specials, unk=unk)

    def _encode_ordinary(self, text, start):
        table = self._word_to_id
        words = split_words(text, self.cjk_chars)
        if self._unk_id is not None:
            unk_id = self._unk_id
            return [table.get(w, unk_id) for w in words]
        try:
            return [table[w] for w in words]
        except KeyError:
            pattern = _WORD_OR_CJK_CHAR_RE if self.cjk_chars else _WORD_RE
            found = next(m for m in pattern.finditer(text) if m.group() not in table)
            raise ValueError(f"word {found.group()!r} at position {start + found.start()} is not in "
                             f"the vocabulary of {len(table)} words; pass unk='<unk>'") from None

    def _piece_bytes(self, prev_id, id):
        token = self._id_to_bytes[id]
        if prev_id is None or (self._is_cjk_char[prev_id] and self._is_cjk_char[id]):
            return token
        return b" " + token

    def _join_bytes(self, ids):
        return b"".join([self._piece_bytes(prev, id) for prev, id in zip([None] + ids, ids)])

    def _to_json(self):
        return {"cjk_chars": self.cjk_chars, "unk": self.unk, "words": self.words}

    @classmethod
    def _from_json(cls, data):
        words = data["words"]
        if not isinstance(words, list):
            raise TypeError(f"words must be a list, got {type(words).__name__}")
        return cls(words, cjk_chars=data["cjk_chars"],
                   special_tokens=special_tokens_in_id_order(data, len(words)), unk=data["unk"])
