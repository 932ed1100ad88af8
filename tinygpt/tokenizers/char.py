"""CharTokenizer: one id per character, the vocabulary being the sorted characters of a text.

The simplest tokenizer that round-trips: good for tiny models (Shakespeare, poems). It does
NOT handle characters absent from its training text unless given an `unk` token.
"""

from .base import (Tokenizer, check_encodable, special_tokens_in_id_order,
                   special_tokens_with_unk)


class CharTokenizer(Tokenizer):
    """Ids 0..len(chars)-1 are `chars` in sorted order, then `unk` (if any), then special tokens."""

    type_name = "char"

    def __init__(self, chars, special_tokens=(), unk=None):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"each entry of chars must be a single character, got {c!r}")
            check_encodable(c, "chars")
        # Sorted so that the same text always gives the same ids, whatever order it came in.
        if chars != sorted(set(chars)):
            raise ValueError("chars must be sorted and without duplicates; "
                             "use CharTokenizer.train(text) to build them from a text")
        special_tokens = special_tokens_with_unk(special_tokens, unk)
        super().__init__([c.encode("utf-8") for c in chars], special_tokens)
        self.chars = chars
        self.unk = unk
        self._char_to_id = {c: i for i, c in enumerate(chars)}
        self._unk_id = None if unk is None else self._special_to_id[unk]

    @classmethod
    def train(cls, text, special_tokens=(), unk=None):
        """The vocabulary is every distinct character of `text`, sorted by code point."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        check_encodable(text, "text")
        return cls(sorted(set(text)), special_tokens=special_tokens, unk=unk)

    from_text = train  # the name some readers look for first

    def _encode_ordinary(self, text, start):
        table = self._char_to_id
        if self._unk_id is not None:
            unk_id = self._unk_id
            return [table.get(c, unk_id) for c in text]
        try:
            return [table[c] for c in text]
        except KeyError:
            position = next(i for i, c in enumerate(text) if c not in table)
            raise ValueError(
                f"character {text[position]!r} (U+{ord(text[position]):04X}) at position "
                f"{start + position} is not in the vocabulary of {len(table)} characters; "
                f"train on text that contains it, or pass unk='<unk>'") from None

    def _to_json(self):
        return {"chars": self.chars, "unk": self.unk}

    @classmethod
    def _from_json(cls, data):
        chars = data["chars"]
        if not isinstance(chars, list):
            raise TypeError(f"chars must be a list, got {type(chars).__name__}")
        return cls(chars, special_tokens_in_id_order(data, len(chars)), unk=data["unk"])
