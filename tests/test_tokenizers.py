"""The shared Tokenizer interface, CharTokenizer and WordTokenizer: round trips, streaming
decode, special tokens, JSON save/load and the errors a user sees. BPE is in test_tokenizers_bpe.py."""

import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tinygpt.tokenizers import (
    ByteLevelBPETokenizer, CharTokenizer, Tokenizer, WordTokenizer, load_tokenizer,
)

SETTINGS = settings(max_examples=75, deadline=None)
EOT = "<|endoftext|>"

CORPUS = (
    "the quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs!\n"
    "我爱吃苹果。你呢？我 爱 北京 天安门\n"
    "emoji 🙂 and café and naïve\n"
    "if x < y | z >= w: pass\n"
)


def all_tokenizers():
    """One of each kind, all with the same special token, for the interface-wide tests."""
    return [
        CharTokenizer.train(CORPUS, special_tokens=[EOT]),
        WordTokenizer.train(CORPUS, special_tokens=[EOT]),
        WordTokenizer.train(CORPUS, cjk_chars=True, special_tokens=[EOT]),
        ByteLevelBPETokenizer.train(CORPUS, 256 + 40, special_tokens=[EOT]),
    ]


TOKENIZERS = all_tokenizers()
IDS_OF = {id(t): f"{type(t).__name__}{'-cjk' if getattr(t, 'cjk_chars', False) else ''}" for t in TOKENIZERS}
each_tokenizer = pytest.mark.parametrize("tok", TOKENIZERS, ids=lambda t: IDS_OF[id(t)])


# ----- the shared interface -----

@each_tokenizer
def test_tokenizer_special_token_takes_the_id_after_the_ordinary_vocab(tok):
    assert tok.special_tokens[EOT] == tok.vocab_size - 1
    ids = tok.encode(f"the{EOT}fox")
    assert ids.count(tok.vocab_size - 1) == 1
    assert tok.encode(f"the{EOT}fox", special="text").count(tok.vocab_size - 1) == 0
    with pytest.raises(ValueError, match=r"special token '<\|endoftext\|>' at position 3"):
        tok.encode(f"the{EOT}fox", special="raise")


@each_tokenizer
@SETTINGS
@given(data=st.data())
def test_tokenizer_streaming_decode_equals_decode(tok, data):
    ids = data.draw(st.lists(st.integers(0, tok.vocab_size - 1), max_size=40))
    stream = tok.decoder()
    pieces = [stream.feed(i) for i in ids]
    assert "".join(pieces) + stream.flush() == tok.decode(ids)


@each_tokenizer
def test_tokenizer_save_load_gives_identical_encodings(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == tok.type_name and data["special_tokens"] == tok.special_tokens
    for loaded in (load_tokenizer(path), type(tok).load(path)):
        assert type(loaded) is type(tok) and loaded.vocab_size == tok.vocab_size
        for text in (CORPUS, f"fox{EOT}我爱 the", "the dog"):
            assert loaded.encode(text) == tok.encode(text)
        assert loaded.decode(tok.encode(CORPUS)) == tok.decode(tok.encode(CORPUS))


@each_tokenizer
def test_tokenizer_decode_rejects_bad_ids(tok):
    n = tok.vocab_size
    with pytest.raises(ValueError, match=rf"ids\[1\] {n} is out of range for vocab_size {n}"):
        tok.decode([0, tok.vocab_size])
    with pytest.raises(ValueError, match=r"ids\[0\] -1 is out of range"):
        tok.decode([-1])
    with pytest.raises(TypeError, match=r"ids\[0\] must be an int, got float"):
        tok.decode([1.0])
    with pytest.raises(ValueError, match="out of range"):
        tok.decoder().feed(tok.vocab_size)
    assert tok.decode(np.array([0, 1])) == tok.decode([0, 1])  # numpy ids work


@each_tokenizer
def test_tokenizer_encode_rejects_bad_arguments(tok):
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        tok.encode(b"the fox")
    with pytest.raises(ValueError, match=r"special must be one of .* got 'yes'"):
        tok.encode("the", special="yes")


def test_load_tokenizer_names_the_path_for_corrupt_or_foreign_files(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"type": "char", ', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{bad_json.name}: not valid JSON"):
        load_tokenizer(bad_json)
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"type": "sentencepiece", "version": 1}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"unknown.json: unknown tokenizer type 'sentencepiece'"):
        load_tokenizer(unknown)
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"list.json: expected a JSON object"):
        load_tokenizer(not_object)
    char_file = tmp_path / "char.json"
    CharTokenizer.train("abc").save(char_file)
    with pytest.raises(ValueError, match=r"char.json: holds a 'char' tokenizer, expected 'word'"):
        WordTokenizer.load(char_file)
    with pytest.raises(TypeError, match="use load_tokenizer"):
        Tokenizer.load(char_file)
    data = json.loads(char_file.read_text(encoding="utf-8"))
    del data["chars"]
    char_file.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=r"char.json: invalid 'char' tokenizer file: missing field 'chars'"):
        load_tokenizer(char_file)


def test_special_tokens_must_be_a_list_of_nonempty_strings():
    with pytest.raises(TypeError, match="wrap it"):
        CharTokenizer.train("abc", special_tokens=EOT)
    with pytest.raises(ValueError, match="non-empty str"):
        CharTokenizer.train("abc", special_tokens=[""])
    with pytest.raises(ValueError, match="duplicates"):
        CharTokenizer.train("abc", special_tokens=[EOT, EOT])


# ----- CharTokenizer -----

@SETTINGS
@given(text=st.text())
@example(text="")
@example(text="e\u0301 🙂 中文")
def test_char_roundtrips_its_training_text(text):
    tok = CharTokenizer.train(text)
    assert tok.vocab_size == len(set(text))
    assert tok.decode(tok.encode(text)) == text


@SETTINGS
@given(text=st.text(alphabet=sorted(set(CORPUS))))
def test_char_roundtrips_any_text_over_its_vocabulary(text):
    tok = CharTokenizer.train(CORPUS)
    assert tok.decode(tok.encode(text)) == text


def test_char_vocabulary_is_sorted_whatever_the_text_order():
    assert CharTokenizer.train("hello").chars == ["e", "h", "l", "o"]
    assert CharTokenizer.train("olleh").encode("hello") == CharTokenizer.train("hello").encode("hello")


def test_char_unknown_character_error_names_it_and_its_position():
    tok = CharTokenizer.train("hello")
    with pytest.raises(ValueError, match=r"character 'p' \(U\+0070\) at position 3 is not in the vocabulary"):
        tok.encode("help")
    with pytest.raises(ValueError, match=r"position 5"):  # positions count from the start, across specials
        CharTokenizer.train("hello", special_tokens=["<s>"]).encode("h<s>ez")


def test_char_unk_option_maps_unknown_characters_to_unk():
    tok = CharTokenizer.train("abc", unk="<unk>")
    assert tok.encode("abz") == [0, 1, 3]
    assert tok.decode(tok.encode("abz")) == "ab<unk>"


def test_char_rejects_unsorted_chars_and_lone_surrogates():
    with pytest.raises(ValueError, match="sorted"):
        CharTokenizer(["b", "a"])
    with pytest.raises(ValueError, match=r"lone surrogate '\\ud800' at position 1"):
        CharTokenizer.train("a\ud800")


# ----- WordTokenizer -----

def test_word_splits_segmented_chinese_on_whitespace():
    tok = WordTokenizer.train("我 爱 吃 苹果\n我 爱 北京")
    assert tok.words[:2] == ["我", "爱"]  # most frequent first
    assert tok.decode(tok.encode("我 爱 吃 苹果")) == "我 爱 吃 苹果"


def test_word_cjk_chars_splits_unsegmented_cjk_but_keeps_latin_words():
    tok = WordTokenizer.train("我爱吃apple派 我爱Python", cjk_chars=True, unk=None)
    ids = tok.encode("我爱吃apple派")
    assert [tok.words[i] for i in ids] == ["我", "爱", "吃", "apple", "派"]
    assert tok.decode(ids) == "我爱吃 apple 派"  # no space between CJK characters
    assert tok.decode(tok.encode("Python 爱 我")) == "Python 爱我"


def test_word_cjk_chars_handles_japanese_and_korean():
    tok = WordTokenizer.train("ひらがなカタカナ한국어", cjk_chars=True)
    assert tok.vocab_size == 10 + 1  # one id per character, plus <unk>


@SETTINGS
@given(data=st.data())
def test_word_reencoding_decoded_ids_gives_the_same_ids(data):
    for tok in TOKENIZERS[1:3]:
        ids = data.draw(st.lists(st.integers(0, tok.vocab_size - 1), max_size=30))
        assert tok.encode(tok.decode(ids)) == ids


@SETTINGS
@given(words=st.lists(st.sampled_from(["the", "fox", "dog.", "runs!"]), max_size=20),
       gaps=st.lists(st.sampled_from([" ", "\n", "  \t"]), min_size=20, max_size=20))
def test_word_roundtrip_keeps_words_and_normalizes_whitespace(words, gaps):
    tok = TOKENIZERS[1]
    text = "".join(w + g for w, g in zip(words, gaps))
    assert tok.decode(tok.encode(text)) == " ".join(words)


def test_word_min_freq_and_max_vocab_send_rare_words_to_unk():
    text = "a a a b b c"
    tok = WordTokenizer.train(text, min_freq=2)
    assert tok.words == ["a", "b"] and tok.special_tokens == {"<unk>": 2}
    assert tok.decode(tok.encode("a c b")) == "a <unk> b"
    tok = WordTokenizer.train(text, max_vocab=2)
    assert tok.vocab_size == 2 and tok.words == ["a"]
    assert tok.encode("a b c") == [0, 1, 1]
    with pytest.raises(ValueError, match=r"max_vocab must be an int >= 2 .* got 1"):
        WordTokenizer.train(text, max_vocab=1, special_tokens=[EOT])


def test_word_without_unk_names_the_unknown_word_and_position():
    tok = WordTokenizer.train("the fox", unk=None)
    with pytest.raises(ValueError, match=r"word 'dog' at position 8 is not in the vocabulary"):
        tok.encode("the fox dog")
