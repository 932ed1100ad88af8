"""ByteLevelBPETokenizer: exact round trips of any text, the incremental trainer against a naive
one written here (the oracle), special tokens, streaming over split characters, file checks."""

import functools
import json
from collections import Counter

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tinygpt.tokenizers import (
    GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, ByteLevelBPETokenizer, load_tokenizer, split_text,
)

SETTINGS = settings(max_examples=75, deadline=None)
EOT = "<|endoftext|>"

CORPUS = (
    "The tokenizer turns text into ids. It learns merges from the most frequent pairs of bytes; "
    "then it encodes new text by applying those merges in order. Numbers like 12345 and 2024 "
    "are cut into pieces of three digits. Don't forget: we're testing contractions too!\n"
    "自然语言处理是人工智能的一个重要方向。我们用字节对编码把文本变成整数序列，"
    "中文的每个汉字在 UTF-8 里占三个字节，所以一个汉字可能被分到两个词元里。\n"
    "Emoji 🙂🚀 and accents: café, naïve, e\u0301.\n"
) * 3


@functools.lru_cache(maxsize=None)
def trained():
    """A small BPE (200 merges) on the mixed English/Chinese corpus, trained once per run."""
    return ByteLevelBPETokenizer.train(CORPUS, 256 + 200 + 1, special_tokens=[EOT])


# ----- the oracle: a naive trainer that recounts every pair of every chunk for every merge -----

def naive_merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def naive_train(texts, num_merges, pattern=GPT4_SPLIT_PATTERN):
    """-> (merges, every chunk of every text as its final ids). Ties: smallest pair wins."""
    chunks = [list(c.encode("utf-8")) for text in texts for c in split_text(text, pattern)]
    merges = []
    while len(merges) < num_merges:
        counts = Counter(pair for ids in chunks for pair in zip(ids, ids[1:]))
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        chunks = [naive_merge(ids, pair, 256 + len(merges)) for ids in chunks]
        merges.append(pair)
    return merges, chunks


ORACLE_CORPORA = [
    CORPUS,
    "aaaaaaaaaa aaaa aaa",                 # overlapping pairs: a a a -> Z a
    "abababab ab ba abab",                 # back-to-back merges: a b a b -> Z Z
    "中中中文文 中文 文中" * 4,               # multi-byte characters
    "hello world\n\n  hello   world\r\n",  # whitespace chunks
]


@pytest.mark.parametrize("text", ORACLE_CORPORA, ids=range(len(ORACLE_CORPORA)))
@pytest.mark.parametrize("pattern", [GPT4_SPLIT_PATTERN, GPT2_SPLIT_PATTERN], ids=["gpt4", "gpt2"])
def test_bpe_train_merges_match_naive_trainer(text, pattern):
    tok = ByteLevelBPETokenizer.train(text, 256 + 120, pattern=pattern)
    expected, chunks = naive_train([text], 120, pattern)
    assert tok.merges == expected
    # Encoding the training text reproduces the naive trainer's final tokens.
    assert tok.encode(text) == [i for ids in chunks for i in ids]


@SETTINGS
@given(text=st.text(alphabet="ab c\n中文🙂", max_size=120), num_merges=st.integers(0, 40))
@example(text="", num_merges=5)
def test_bpe_train_matches_naive_trainer_on_random_text(text, num_merges):
    tok = ByteLevelBPETokenizer.train(text, 256 + num_merges)
    expected, chunks = naive_train([text], num_merges)
    assert tok.merges == expected
    assert tok.encode(text) == [i for ids in chunks for i in ids]


def test_bpe_train_breaks_ties_by_smallest_pair_and_stops_when_out_of_pairs():
    # chunks "ba" and " ab": (b,a), (' ',a), (a,b) each occur once, so (' ',a) = (32, 97) goes
    # first; then "ba" -> 257 and " a"+"b" -> 258, and no pair is left to merge.
    tok = ByteLevelBPETokenizer.train("ba ab", 1000)
    assert tok.merges == [(32, 97), (98, 97), (256, 98)]
    assert tok.vocab_size == 259
    assert tok.encode("ba ab") == [257, 258]


def test_bpe_train_never_merges_across_special_tokens():
    text = f"ab{EOT}cd{EOT}ab"
    tok = ByteLevelBPETokenizer.train(text, 256 + 50, special_tokens=[EOT])
    assert tok.merges == naive_train(["ab", "cd", "ab"], 49)[0]
    assert tok.encode(text) == [256, tok.vocab_size - 1, 257, tok.vocab_size - 1, 256]


# ----- round trips -----

@SETTINGS
@given(text=st.text())
@example(text="中文🙂 e\u0301 \x00 \U0010ffff")
@example(text=" " * 50 + "\r\n\r\n")
def test_bpe_roundtrips_any_unicode_text(text):
    tok = trained()
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text, special="text")) == text


@SETTINGS
@given(parts=st.lists(st.one_of(st.text(max_size=10), st.just(EOT), st.just("<|endof")), max_size=8))
def test_bpe_special_tokens_encode_atomically_and_roundtrip(parts):
    tok, text = trained(), "".join(parts)
    ids = tok.encode(text)
    assert ids.count(tok.special_tokens[EOT]) == text.count(EOT)
    assert tok.decode(ids) == text
    assert tok.special_tokens[EOT] not in tok.encode(text, special="text")


def test_bpe_special_token_raise_mode_names_token_and_position():
    with pytest.raises(ValueError, match=r"special token '<\|endoftext\|>' at position 5"):
        trained().encode(f"hello{EOT}", special="raise")


def test_bpe_lone_surrogate_is_a_clear_error():
    with pytest.raises(ValueError, match=r"lone surrogate '\\udc80' at position 17"):
        trained().encode(f"ab{EOT}cd\udc80")
    with pytest.raises(ValueError, match="lone surrogate"):
        ByteLevelBPETokenizer.train("x\ud800", 300)


def test_bpe_decode_of_invalid_utf8_gives_replacement_character():
    assert trained().decode([0xE4, 0xB8]) == "\ufffd"  # the first 2 of the 3 bytes of "中"
    assert trained().decode([0xFF, ord("a")]) == "\ufffda"


# ----- streaming decode -----

def test_bpe_streaming_holds_back_a_character_split_over_two_tokens():
    tok = ByteLevelBPETokenizer(merges=[(0xE4, 0xB8)])  # "中" = E4 B8 AD = [256, 0xAD]
    assert tok.encode("中") == [256, 0xAD]
    stream = tok.decoder()
    assert stream.feed(256) == ""
    assert stream.feed(0xAD) == "中"
    assert stream.feed(0xE4) == "" and stream.flush() == "\ufffd"


@SETTINGS
@given(text=st.text())
@example(text="中文🙂")
def test_bpe_streaming_decode_equals_full_decode_and_never_splits_a_character(text):
    tok = trained()
    stream = tok.decoder()
    pieces = [stream.feed(i) for i in tok.encode(text)]
    assert "".join(pieces) + stream.flush() == text
    # After every id, what came out so far is exactly a prefix of the text: no half characters.
    emitted = ""
    for piece in pieces:
        emitted += piece
        assert text.startswith(emitted)


# ----- the regex pre-split -----

@SETTINGS
@given(text=st.text())
def test_split_patterns_cover_every_character(text):
    for pattern in (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN):
        assert "".join(split_text(text, pattern)) == text


@SETTINGS
@given(text=st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x1c\x1d\x1e\x1f")
                       | st.sampled_from("中文字éÅßπ🙂\u0301")))
@example(text=CORPUS)
def test_split_patterns_match_the_regex_module_on_ascii_and_cjk(text):
    # Elsewhere they may differ, as pretokenize.py lists: '²' is a letter there, "\x1c" a space.
    regex = pytest.importorskip("regex")
    originals = {
        GPT2_SPLIT_PATTERN: r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        GPT4_SPLIT_PATTERN: r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}"""
                            r"""| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+""",
    }
    for ours, original in originals.items():
        assert split_text(text, ours) == regex.findall(original, text)


# ----- errors and files -----

def test_bpe_vocab_size_below_256_plus_specials_is_an_error():
    with pytest.raises(ValueError, match=r"vocab_size must be an int >= 256 .* got 255"):
        ByteLevelBPETokenizer.train("abc", 255)
    with pytest.raises(ValueError, match=r"vocab_size must be an int >= 257 .* got 256"):
        ByteLevelBPETokenizer.train("abc", 256, special_tokens=[EOT])
    assert ByteLevelBPETokenizer.train("abc", 256).encode("abc") == [97, 98, 99]


def test_bpe_save_writes_merges_as_int_pairs_and_vocab_as_hex(tmp_path):
    tok, path = trained(), tmp_path / "bpe.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["merges"] == [list(p) for p in tok.merges]
    assert bytes.fromhex(data["vocab"][256]) == tok.token_bytes(256)
    assert data["special_tokens"] == {EOT: tok.vocab_size - 1}


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d["merges"].__setitem__(3, [1, 9999]), r"merges\[3\] must be a pair of ids below 259"),
    (lambda d: d["merges"].__setitem__(0, "ab"), r"merges\[0\] must be a pair"),
    (lambda d: d["vocab"].__setitem__(300, "00"), r"vocab does not match .*first difference at id 300"),
    (lambda d: d["special_tokens"].__setitem__(EOT, 5), r"special token ids must be 456"),
    (lambda d: d.__setitem__("pattern", "(unclosed"), r"not a valid regex"),
    (lambda d: d.pop("vocab"), r"missing field 'vocab'"),
    (lambda d: d.__setitem__("version", 2), r"unsupported tokenizer file version 2"),
])
def test_bpe_load_rejects_corrupt_files_naming_the_path(tmp_path, corrupt, message):
    path = tmp_path / "bpe.json"
    trained().save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    corrupt(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"bpe.json: .*{message}"):
        load_tokenizer(path)
