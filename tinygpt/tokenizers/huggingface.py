"""GPT2Tokenizer: byte-level BPE read from, and written to, GPT-2 / Hugging Face files.

GPT-2 ships vocab.json ({token string: id}) + merges.txt (one "left right" pair per line, best
rank first); Hugging Face `tokenizers` ships one tokenizer.json holding both. Tokens are bytes
written through GPT-2's byte -> unicode table (a space is "Ġ"), and ids follow the file's own
order, not tinygpt's "ids 0..255 are the bytes", so this class keeps the file's ids and a
byte -> id table. Encoding equals Hugging Face's: the exact GPT-2 pre-split via the `regex`
module (the stdlib `re` fallback differs on '²', '½', 'Ⅻ' and \\x1c-\\x1f, see pretokenize.py),
then the lowest-rank merge first. It does NOT read normalizers, dropout, unk tokens,
continuing-subword prefixes or WordPiece/Unigram models: those files are rejected by name.
"""

import json
import os
import re
from pathlib import Path

from .base import Tokenizer, read_json
from .bpe import encode_chunks
from .bpe_merge import MergeTable, merge_chunk
from .pretokenize import GPT2_REGEX_PATTERN, compile_gpt2_pattern



def bytes_to_unicode():
    """GPT-2's {byte: printable character}: printable Latin-1 bytes stand for themselves, the
    other 68 (space, control bytes, ...) get U+0100 onwards, so a token is a readable string."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def token_to_bytes(token):
    """GPT-2 token string ("Ġthe") -> bytes (b" the"); None if a character is outside the table."""
    try:
        return bytes(CHAR_TO_BYTE[c] for c in token)
    except KeyError:
        return None


def bytes_to_token(b):
    """bytes -> GPT-2 token string."""
    return "".join(BYTE_TO_CHAR[x] for x in b)


class GPT2Tokenizer(Tokenizer):
    """vocab {token bytes: id} + merges [(left bytes, right bytes)] by rank + special {str: id}.

    The ids are the file's: they need not put bytes first or specials last, but together they
    must be exactly 0..n-1. encode() follows tiktoken: special-token text raises unless allowed.
    """

    type_name = "gpt2_bpe"

    def __init__(self, vocab, merges, special_tokens=None, ignore_merges=False, use_regex=None):
        """use_regex: None = the exact GPT-2 split via `regex` if installed, else the `re` fallback."""
        special_tokens = dict(special_tokens or {})
        # Not Tokenizer.__init__: that one numbers specials after the ordinary tokens, and
        # Hugging Face's trainer puts them first. The same three tables are built here.
        n = len(vocab) + len(special_tokens)
        id_to_bytes = [None] * n
        for table in (vocab, special_tokens):
            for token, id in table.items():
                if type(id) is not int or not 0 <= id < n or id_to_bytes[id] is not None:
                    raise ValueError(f"token {token!r} has id {id!r}; the {n} ids of vocab and "
                                     f"special tokens must be exactly 0..{n - 1}, each once")
                id_to_bytes[id] = token if isinstance(token, bytes) else token.encode("utf-8")
        missing = [b for b in range(256) if bytes([b]) not in vocab]
        if missing:
            raise ValueError(f"vocab lacks {len(missing)} of the 256 byte tokens (first: byte "
                             f"{missing[0]}, {BYTE_TO_CHAR[missing[0]]!r}); a byte-level BPE needs all")
        self._id_to_bytes = id_to_bytes
        self._vocab = dict(vocab)
        self._byte_ids = [vocab[bytes([b])] for b in range(256)]
        self._special_to_id = special_tokens
        by_length = sorted(special_tokens, key=len, reverse=True)
        self._special_re = re.compile("|".join(map(re.escape, by_length))) if by_length else None

        best = {}  # (left id, right id) -> (rank, id the merge creates)
        for rank, (left, right) in enumerate(merges):
            for part in (left, right, left + right):
                if part not in vocab:
                    raise ValueError(f"merges[{rank}] = ({bytes_to_token(left)!r}, {bytes_to_token(right)!r}): "
                                     f"{bytes_to_token(part)!r} is not in the vocab")
            # A repeated merge line keeps its LAST rank, as Hugging Face's BPE (a map built
            # from the list) does; a test checks this against it.
            best[vocab[left], vocab[right]] = (rank, vocab[left + right])
        in_order = sorted(best.items(), key=lambda item: item[1][0])
        self.merges = [pair for pair, _ in in_order]            # merges[k] = (left id, right id)
        self._merged_id = [new_id for _, (_, new_id) in in_order]  # the id merges[k] creates
        self._ranks = {pair: k for k, pair in enumerate(self.merges)}  # k: position, not file line
        self.ignore_merges = bool(ignore_merges)
        self._split_re = compile_gpt2_pattern(use_regex)
        self._merge_table = MergeTable(self._byte_ids, self.merges, self._merged_id)
        self._cache = {}

    # ----- text -> ids -----

    def encode(self, text, special=None, allowed_special=frozenset(), disallowed_special="all"):
        """str -> list[int], as tiktoken: a special token in `allowed_special` ("all" or a set)
        becomes its one id; one in `disallowed_special` ("all" = the rest) raises; others are
        text. Passing `special` ("allow"/"text"/"raise") uses tinygpt's Tokenizer.encode rule."""
        if special is not None:
            return super().encode(text, special)
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        specials = set(self._special_to_id)
        allowed = specials if allowed_special == "all" else set(allowed_special)
        unknown = allowed - specials
        if unknown:
            raise ValueError(f"allowed_special has {sorted(unknown)}, which are not special tokens "
                             f"of this tokenizer; they are {sorted(specials)}")
        disallowed = specials - allowed if disallowed_special == "all" else set(disallowed_special)
        ids, start = [], 0
        for found in self._special_re.finditer(text) if self._special_re else ():
            token = found.group()
            if token in disallowed:
                raise ValueError(
                    f"text contains the special token {token!r} at position {found.start()}; pass "
                    f"allowed_special={{{token!r}}} (or \"all\") to encode it as its one id, or "
                    f"disallowed_special=() to encode it as ordinary text")
            if token in allowed:
                ids.extend(self._encode_ordinary(text[start:found.start()], start))
                ids.append(self._special_to_id[token])
                start = found.end()
        ids.extend(self._encode_ordinary(text[start:], start))
        return ids

    def _encode_ordinary(self, text, start):
        return encode_chunks(self, text, start)

    def _encode_chunk(self, chunk):
        """bytes -> ids: merge the present pair of lowest rank, leftmost first, as HF's BPE does."""
        whole = self._whole_chunk(chunk.decode("utf-8"))
        return merge_chunk(chunk, self._merge_table) if whole is None else whole

    def _whole_chunk(self, chunk):
        """Hugging Face's ignore_merges: a chunk that is a token of the vocab is that one token."""
        if self.ignore_merges:
            token = self._vocab.get(chunk.encode("utf-8"))
            return None if token is None else [token]
        return None

    # ----- GPT-2 / Hugging Face files in -----

    @classmethod
    def from_pretrained(cls, folder, use_regex=None):
        """A folder as transformers writes it: tokenizer.json if present, else vocab.json + merges.txt."""
        folder = Path(folder)
        if (folder / "tokenizer.json").exists():
            return cls.from_hf_json(folder / "tokenizer.json", use_regex)
        if (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
            return cls.from_gpt2_files(folder / "vocab.json", folder / "merges.txt", use_regex=use_regex)
        raise FileNotFoundError(f"{os.fspath(folder)}: expected tokenizer.json or vocab.json + merges.txt")

    @classmethod
    def from_gpt2_files(cls, vocab_file, merges_file, special_tokens=None, use_regex=None):
        """GPT-2's vocab.json + merges.txt. special_tokens=None: every vocab entry that is neither
        a byte nor made by a merge is special (GPT-2's "<|endoftext|>"); or pass the list."""
        vocab = read_json(vocab_file)
        if not isinstance(vocab, dict):
            raise ValueError(f"{os.fspath(vocab_file)}: expected a JSON object {{token: id}}, got {type(vocab).__name__}")
        with open(merges_file, encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[0].startswith("#version"):
            lines = lines[1:]
        merges = []
        for number, line in enumerate(lines, start=2):
            if not line.strip():
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{os.fspath(merges_file)}:{number}: expected 'left right', got {line!r}")
            merges.append(parts)
        if special_tokens is None:
            made = {a + b for a, b in merges}
            special_tokens = [t for t in vocab if t not in made and len(t) != 1 or token_to_bytes(t) is None]
        return cls._from_token_strings(vocab, merges, special_tokens, False, vocab_file, use_regex)

    @classmethod
    def from_hf_json(cls, path, use_regex=None):
        """Hugging Face's tokenizer.json of a ByteLevel BPE model (GPT-2, RoBERTa, ...)."""
        data = read_json(path)
        if isinstance(data, dict) and "type" in data:
            raise ValueError(f"{os.fspath(path)}: this is tinygpt's own tokenizer file (type "
                             f"{data['type']!r}), not Hugging Face's; read it with load_tokenizer(path)")
        return cls._from_hf_data(data, path, use_regex)

    @classmethod
    def _from_hf_data(cls, data, path, use_regex=None):
        name = os.fspath(path)
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise ValueError(f"{name}: expected Hugging Face's tokenizer.json, a JSON object with a \"model\" object")
        model = data["model"]
        if model.get("type") != "BPE":
            raise ValueError(f"{name}: model type {model.get('type')!r} is not supported, expected 'BPE'")
        for key in ("dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "byte_fallback"):
            if model.get(key):
                raise ValueError(f"{name}: model.{key} = {model[key]!r} is not supported (expected null)")
        if data.get("normalizer") is not None:
            raise ValueError(f"{name}: normalizer {data['normalizer'].get('type')!r} is not supported, expected null")
        pre = data.get("pre_tokenizer") or {}
        if (pre.get("type") != "ByteLevel" or not pre.get("use_regex", True)
                or pre.get("add_prefix_space")):
            raise ValueError(f"{name}: pre_tokenizer {pre!r} is not supported; expected ByteLevel "
                             f"with use_regex=true and add_prefix_space=false (GPT-2's)")
        post = data.get("post_processor")
        if post is not None and post.get("type") != "ByteLevel":
            raise ValueError(f"{name}: post_processor {post.get('type')!r} adds tokens to every encoding; "
                             f"not supported (expected null or ByteLevel)")
        merges = [m.split(" ") if isinstance(m, str) else m for m in model.get("merges", [])]
        added = {t["content"]: t["id"] for t in data.get("added_tokens", [])}
        return cls._from_token_strings(model["vocab"], merges, added, model.get("ignore_merges"), path, use_regex)

    @classmethod
    def _from_token_strings(cls, vocab, merges, special_tokens, ignore_merges, path, use_regex=None):
        """{token string: id}, [[left str, right str]], specials (list or {str: id}) -> tokenizer."""
        if not isinstance(special_tokens, dict):
            missing = [t for t in special_tokens if t not in vocab]
            if missing:
                raise ValueError(f"{os.fspath(path)}: special tokens {missing} are not in the vocab")
            special_tokens = {t: vocab[t] for t in special_tokens}
        byte_vocab = {}
        for token, id in vocab.items():
            if token in special_tokens:
                continue
            b = token_to_bytes(token)
            if b is None:
                raise ValueError(f"{os.fspath(path)}: token {token!r} (id {id}) has a character outside "
                                 f"GPT-2's byte table; is this a byte-level BPE vocab?")
            byte_vocab[b] = id
        byte_merges = []
        for a, b in merges:
            left, right = token_to_bytes(a), token_to_bytes(b)
            if left is None or right is None:
                raise ValueError(f"{os.fspath(path)}: merge {a!r} {b!r} is not made of GPT-2 byte characters")
            byte_merges.append((left, right))
        return cls(byte_vocab, byte_merges, special_tokens, ignore_merges, use_regex)

    @classmethod
    def from_byte_bpe(cls, tokenizer):
        """A tinygpt ByteLevelBPETokenizer trained with pattern=GPT2_SPLIT_PATTERN, same ids, so it
        can be saved for Hugging Face. Its `re` split and this class's `regex` split differ only
        where pretokenize.py says ('²', '½', 'Ⅻ', \\x1c-\\x1f)."""
        from .pretokenize import GPT2_SPLIT_PATTERN
        if getattr(tokenizer, "pattern", None) != GPT2_SPLIT_PATTERN:
            raise ValueError("tokenizer must be a ByteLevelBPETokenizer with pattern=GPT2_SPLIT_PATTERN: "
                             "Hugging Face's ByteLevel pre-tokenizer knows only GPT-2's split, got "
                             f"pattern {getattr(tokenizer, 'pattern', None)!r}")
        table = tokenizer._id_to_bytes
        n_ordinary = 256 + len(tokenizer.merges)
        vocab = {table[i]: i for i in range(n_ordinary)}
        if len(vocab) != n_ordinary:
            raise ValueError("two merges of this tokenizer build the same bytes; a GPT-2 vocab maps "
                             "each token string to one id, so it cannot be written as one")
        merges = [(table[a], table[b]) for a, b in tokenizer.merges]
        return cls(vocab, merges, tokenizer.special_tokens)

    # ----- GPT-2 / Hugging Face files out -----

    def _token_strings(self):
        """{token string: id} in id order, specials included, as GPT-2's vocab.json has them."""
        specials = {id: s for s, id in self._special_to_id.items()}
        return {specials[i] if i in specials else bytes_to_token(b): i for i, b in enumerate(self._id_to_bytes)}

    def _merge_strings(self):
        table = self._id_to_bytes
        return [f"{bytes_to_token(table[a])} {bytes_to_token(table[b])}" for a, b in self.merges]

    def save_gpt2_files(self, folder):
        """Write vocab.json + merges.txt into `folder`, GPT-2's own layout."""
        from tinygpt.checkpoint import write_atomically
        folder = Path(folder)
        write_atomically(folder / "vocab.json", json.dumps(self._token_strings(), ensure_ascii=False).encode("utf-8"))
        text = "#version: 0.2\n" + "".join(line + "\n" for line in self._merge_strings())
        write_atomically(folder / "merges.txt", text.encode("utf-8"))

    def to_hf_json(self):
        """The Hugging Face tokenizer.json object (tokenizers.Tokenizer.from_file reads it)."""
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        return {
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": id, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True}
                             for s, id in sorted(self._special_to_id.items(), key=lambda item: item[1])],
            "normalizer": None, "pre_tokenizer": byte_level, "post_processor": None, "decoder": byte_level,
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": self.ignore_merges,
                      "vocab": self._token_strings(), "merges": self._merge_strings()},
        }

    def save_hf_json(self, path):
        """Write Hugging Face's tokenizer.json to `path`."""
        from tinygpt.checkpoint import write_atomically
        write_atomically(path, json.dumps(self.to_hf_json(), ensure_ascii=False, indent=2).encode("utf-8"))

    def save_pretrained(self, folder):
        """Write tokenizer.json, vocab.json and merges.txt into `folder`, as transformers does."""
        os.makedirs(folder, exist_ok=True)
        self.save_hf_json(Path(folder) / "tokenizer.json")
        self.save_gpt2_files(folder)

    # ----- tinygpt's own file (Tokenizer.save / load_tokenizer) -----

    def _to_json(self):
        specials = set(self._special_to_id.values())
        return {
            "pattern": GPT2_REGEX_PATTERN,
            "ignore_merges": self.ignore_merges,
            # vocab[id] = the token's bytes in hex, null for a special token (listed below).
            "vocab": [None if i in specials else b.hex() for i, b in enumerate(self._id_to_bytes)],
            "merges": [list(pair) for pair in self.merges],
        }

    @classmethod
    def _from_json(cls, data):
        if data["pattern"] != GPT2_REGEX_PATTERN:
            raise ValueError(f"pattern must be GPT-2's {GPT2_REGEX_PATTERN!r}, got {data['pattern']!r}")
        table = [None if h is None else bytes.fromhex(h) for h in data["vocab"]]
        vocab = {b: i for i, b in enumerate(table) if b is not None}
        merges = [(table[a], table[b]) for a, b in data["merges"]]
        return cls(vocab, merges, data["special_tokens"], data["ignore_merges"])


def is_hf_tokenizer_json(data):
    """True for Hugging Face's tokenizer.json schema (a "model" object and no tinygpt "type")."""
    return isinstance(data, dict) and "type" not in data and isinstance(data.get("model"), dict)
