"""The interface every tokenizer shares: encode/decode, special tokens, streaming decode, JSON I/O.

Each tokenizer is a table from id to bytes plus a rule for turning text into ids; this module
holds everything that does not depend on the rule. It does NOT know any particular tokenizer
(see char.py, word.py, bpe.py) and never pickles: files are one JSON object with a "type".
"""

import codecs
import json
import os
import re

FORMAT_VERSION = 1
SPECIAL_MODES = ("allow", "text", "raise")


class Tokenizer:
    """Ids 0..n-1 are the ordinary tokens of a subclass; special tokens take the ids after them.

    Subclasses implement `_encode_ordinary`, `_to_json` and `_from_json`; everything else
    (special tokens, decoding, saving) works from the id -> bytes table built here.
    """

    type_name = ""  # the "type" field of the saved JSON; each subclass sets its own

    def __init__(self, ordinary_tokens, special_tokens=()):
        specials = check_special_tokens(special_tokens)
        # One id -> bytes table for all tokens makes decode a single join for every tokenizer.
        self._id_to_bytes = list(ordinary_tokens) + [s.encode("utf-8") for s in specials]
        first_special = len(self._id_to_bytes) - len(specials)
        self._special_to_id = {s: first_special + k for k, s in enumerate(specials)}
        # Longest first: given both "<|end|>" and "<|end|>\n", the longer one wins.
        by_length = sorted(specials, key=len, reverse=True)
        self._special_re = re.compile("|".join(map(re.escape, by_length))) if specials else None

    # ----- what the vocabulary is -----

    @property
    def vocab_size(self):
        """Number of ids, ordinary and special; every id is in range(vocab_size)."""
        return len(self._id_to_bytes)

    @property
    def special_tokens(self):
        """A copy of the {special token string: id} table."""
        return dict(self._special_to_id)

    def token_bytes(self, id):
        """The bytes one id stands for (a BPE token may be only part of a UTF-8 character)."""
        return self._id_to_bytes[self._check_id(id, "id")]

    # ----- text -> ids -----

    def encode(self, text, special="allow"):
        """str -> list[int]. special: "allow" encodes each special-token string in the text as its
        one id; "text" encodes it like any other text; "raise" rejects it (for untrusted input)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if special not in SPECIAL_MODES:
            raise ValueError(f"special must be one of {SPECIAL_MODES}, got {special!r}")
        if self._special_re is None or special == "text":
            return self._encode_ordinary(text, 0)
        if special == "raise":
            found = self._special_re.search(text)
            if found:
                raise ValueError(
                    f"text contains special token {found.group()!r} at position {found.start()}; "
                    f"pass special='allow' to encode it as one id or special='text' to encode it as text")
            return self._encode_ordinary(text, 0)
        ids, start = [], 0
        for found in self._special_re.finditer(text):
            ids.extend(self._encode_ordinary(text[start:found.start()], start))
            ids.append(self._special_to_id[found.group()])
            start = found.end()
        ids.extend(self._encode_ordinary(text[start:], start))
        return ids

    def _encode_ordinary(self, text, start):
        """text without special tokens -> ids; `start` is where `text` begins, for error messages."""
        raise NotImplementedError

    # ----- ids -> text -----

    def decode(self, ids):
        """list[int] -> str. Bytes that are not valid UTF-8 (a BPE model can emit half a
        character) become U+FFFD, as in GPT-2; ids from encode() always decode exactly."""
        ids = self._check_ids(ids)
        return self._join_bytes(ids).decode("utf-8", errors="replace")

    def decoder(self):
        """A StreamingDecoder: feed ids one at a time, get text as soon as it is complete."""
        return StreamingDecoder(self)

    def _join_bytes(self, ids):
        """The bytes of a checked id sequence; WordTokenizer overrides it to add spaces."""
        table = self._id_to_bytes
        return b"".join([table[i] for i in ids])

    def _piece_bytes(self, prev_id, id):
        """The bytes that `id` adds after `prev_id` (None at the start); must agree with _join_bytes."""
        return self._id_to_bytes[id]

    def _check_id(self, id, name):
        if isinstance(id, bool) or not hasattr(id, "__index__"):
            raise TypeError(f"{name} must be an int, got {type(id).__name__} {id!r}")
        if not 0 <= id < len(self._id_to_bytes):
            raise ValueError(f"{name} {id} is out of range for vocab_size {len(self._id_to_bytes)}")
        return int(id)

    def _check_ids(self, ids):
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"ids must be a sequence of ints, got {type(ids).__name__}")
        ids = list(ids)
        if not set(map(type, ids)) <= {int}:
            # numpy integers are fine (converted here); floats, bools and the like get a clear error
            return [self._check_id(id, f"ids[{position}]") for position, id in enumerate(ids)]
        # min/max run in C, so a million valid ids are checked almost for free.
        if ids and (min(ids) < 0 or max(ids) >= len(self._id_to_bytes)):
            for position, id in enumerate(ids):  # slow path, only to name the bad id
                self._check_id(id, f"ids[{position}]")
        return ids

    # ----- files -----

    def save(self, path):
        """Write this tokenizer to one JSON file (UTF-8) that load_tokenizer(path) reads back."""
        data = {"type": self.type_name, "version": FORMAT_VERSION, **self._to_json()}
        data["special_tokens"] = self.special_tokens
        with open(path, "w", encoding="utf-8") as f:
            f.write(dumps_one_item_per_line(data))

    @classmethod
    def load(cls, path):
        """Read a file written by save(); the file must hold this class's type."""
        if not cls.type_name:
            raise TypeError("Tokenizer.load() needs a concrete class; use load_tokenizer(path)")
        return cls._from_file_data(read_tokenizer_json(path), path)

    @classmethod
    def _from_file_data(cls, data, path):
        """Build from the parsed file, naming `path` in any error about its contents."""
        if data["type"] != cls.type_name:
            raise ValueError(f"{os.fspath(path)}: holds a {data['type']!r} tokenizer, expected "
                             f"{cls.type_name!r}; use load_tokenizer(path) to load any type")
        try:
            return cls._from_json(data)
        except (KeyError, TypeError, ValueError) as e:
            what = f"missing field {e}" if isinstance(e, KeyError) else str(e)
            raise ValueError(f"{os.fspath(path)}: invalid {cls.type_name!r} tokenizer file: {what}") from e

    def _to_json(self):
        """The fields that rebuild this tokenizer (type, version and special_tokens are added)."""
        raise NotImplementedError

    @classmethod
    def _from_json(cls, data):
        raise NotImplementedError

    def __repr__(self):
        n_special = len(self._special_to_id)
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, special_tokens={n_special})"


class StreamingDecoder:
    """Turns ids into text one at a time without ever splitting a UTF-8 character.

    A byte-level BPE token can end in the middle of a character ("中" is 3 bytes, possibly
    spread over 2 tokens), so the incremental UTF-8 decoder holds those bytes back until
    the character is complete. Concatenating every feed() and flush() equals decode(ids).
    """

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self._prev_id = None
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, id):
        """Add one id; return the text that is now complete (often "", never half a character)."""
        id = self._tokenizer._check_id(id, "id")
        piece = self._tokenizer._piece_bytes(self._prev_id, id)
        self._prev_id = id
        return self._utf8.decode(piece)

    def flush(self):
        """End of stream: return what is held back (an unfinished character becomes U+FFFD)."""
        self._prev_id = None
        return self._utf8.decode(b"", final=True)


# ----- helpers shared by the tokenizers -----

def special_tokens_with_unk(special_tokens, unk):
    """The checked special tokens, with `unk` first when it is not among them: the unknown token
    is a special token too, so it keeps one id and is never split."""
    if unk is not None and not (isinstance(unk, str) and unk):
        raise ValueError(f"unk must be a non-empty str or None, got {unk!r}")
    special_tokens = check_special_tokens(special_tokens)
    return special_tokens if unk is None or unk in special_tokens else [unk] + special_tokens


def check_special_tokens(special_tokens):
    """Iterable[str] -> list[str], rejecting what could never be matched or saved."""
    if isinstance(special_tokens, str):
        raise TypeError(f"special_tokens must be a list of str, got the str {special_tokens!r}; "
                        f"wrap it: [{special_tokens!r}]")
    specials = list(special_tokens)
    for s in specials:
        if not isinstance(s, str) or not s:
            raise ValueError(f"each special token must be a non-empty str, got {s!r}")
        check_encodable(s, "special token")
    if len(set(specials)) != len(specials):
        raise ValueError(f"special_tokens has duplicates: {specials}")
    return specials


def check_encodable(text, what, start=0):
    """Raise a ValueError naming the position if `text` holds a lone surrogate (no UTF-8 form)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{what} has a lone surrogate {text[e.start]!r} at position {start + e.start}; "
            f"it is not a Unicode character and has no UTF-8 bytes (was the text decoded "
            f"with errors='surrogateescape'?)") from None


def special_tokens_in_id_order(data, first_id):
    """Read the saved {token: id} table, checking the ids run first_id, first_id+1, ..."""
    table = data["special_tokens"]
    if not isinstance(table, dict):
        raise TypeError(f"special_tokens must be an object, got {type(table).__name__}")
    ordered = sorted(table.items(), key=lambda item: item[1] if isinstance(item[1], int) else -1)
    ids = [id for _, id in ordered]
    if ids != list(range(first_id, first_id + len(ids))):
        raise ValueError(f"special token ids must be {first_id}, {first_id + 1}, ... got {ids}")
    return [token for token, _ in ordered]


def read_tokenizer_json(path):
    """Parse a tinygpt tokenizer file, naming the path in every error; returns the top-level dict."""
    return check_tokenizer_fields(read_json(path), path)


def read_json(path):
    """Parse a JSON file, naming the path in every error."""
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except UnicodeDecodeError as e:
        raise ValueError(f"{name}: not a UTF-8 text file ({e})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{name}: not valid JSON ({e})") from e
    return data


def check_tokenizer_fields(data, path):
    """Check the "type" and "version" of tinygpt's own format; Hugging Face's schema (the other
    tokenizer.json, with a "model" object and no "type") gets a message saying how to load it."""
    name = os.fspath(path)
    if isinstance(data, dict) and "type" not in data and isinstance(data.get("model"), dict):
        raise ValueError(f"{name}: this is a Hugging Face tokenizer.json, not a tinygpt tokenizer "
                         f"file; read it with load_tokenizer(path) or GPT2Tokenizer.from_hf_json(path)")
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ValueError(f"{name}: expected a JSON object with a string field \"type\", "
                         f"got {type(data).__name__}")
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"{name}: unsupported tokenizer file version {data.get('version')!r}, "
                         f"expected {FORMAT_VERSION}")
    return data


def dumps_one_item_per_line(data):
    """dict -> JSON text with one field, and one item of a list or dict field, per line."""
    def dump(value):
        return json.dumps(value, ensure_ascii=False)
    fields = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            items = [f"    {dump(k)}: {dump(v)}" for k, v in value.items()]
            fields.append(f"  {dump(key)}: {{\n" + ",\n".join(items) + "\n  }")
        elif isinstance(value, list) and value:
            items = [f"    {dump(v)}" for v in value]
            fields.append(f"  {dump(key)}: [\n" + ",\n".join(items) + "\n  ]")
        else:
            fields.append(f"  {dump(key)}: {dump(value)}")
    return "{\n" + ",\n".join(fields) + "\n}\n"
