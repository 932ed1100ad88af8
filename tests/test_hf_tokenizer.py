"""GPT2Tokenizer against the oracle, Hugging Face `tokenizers`: a ByteLevel BPE trained by HF in
the test, loaded from vocab.json + merges.txt and from tokenizer.json, must give HF's ids."""

import json

import pytest
from hypothesis import given, settings, strategies as st

tokenizers = pytest.importorskip("tokenizers")

from tinygpt.tokenizers import GPT2Tokenizer, load_tokenizer  # noqa: E402
from tinygpt.tokenizers.huggingface import bytes_to_unicode  # noqa: E402
from tinygpt.tokenizers.pretokenize import compile_gpt2_pattern  # noqa: E402

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 2024, and we'll see what they've done!\n",
    "Hello   world\t\ttabs and  spaces\n\nnew paragraph, numbers 12345 and 3.14159.\n",
    "机器学习是人工智能的一个分支。我们今天学习分词器，中文没有空格。\n",
    "def encode(self, text):\n    return [ord(c) for c in text]  # 😀 emoji 👍🏽\n",
    "for i in range(10):\n    print(f'{i:>3}', end='')\n",
    "Add 1½ cups, 1½ spoons, 1½ kg; x² + y² = z². Fields a \x1c\x1cb \x1c\x1cc \x1c\x1cd.\n",
] * 20
SAMPLES = [
    "The lazy dog's friends aren't here; they'll come   later.\n",
    "我们今天学习机器学习，人工智能！",
    "emoji: 😀👍🏽🇫🇷 and ZWJ 👨‍👩‍👧",
    "def f(x):\n\treturn x**2  # square\n\n\n",
    "  leading spaces and trailing   ",
    "",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(HF Tokenizer, folder holding vocab.json, merges.txt and tokenizer.json)."""
    folder = tmp_path_factory.mktemp("hf")
    hf = tokenizers.ByteLevelBPETokenizer()
    hf.train_from_iterator(CORPUS, vocab_size=600, min_frequency=2, special_tokens=["<|endoftext|>"])
    hf.save_model(str(folder))
    hf.save(str(folder / "tokenizer.json"))
    return tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json")), folder


@pytest.fixture(scope="module", params=["gpt2_files", "hf_json"])
def ours(request, trained):
    _, folder = trained
    if request.param == "gpt2_files":
        return GPT2Tokenizer.from_gpt2_files(folder / "vocab.json", folder / "merges.txt")
    return GPT2Tokenizer.from_hf_json(folder / "tokenizer.json")


def test_bytes_to_unicode_matches_gpt2_table():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"


# Texts where the stdlib `re` fallback gives other ids than HF (the trained merges cross its cuts).
RE_FALLBACK_DIFFERS = ["add 1½ cups", "a \x1c\x1cb"]


@pytest.mark.parametrize("text", SAMPLES + RE_FALLBACK_DIFFERS)
def test_gpt2_tokenizer_encode_matches_hf(trained, ours, text):
    if text in RE_FALLBACK_DIFFERS:
        pytest.importorskip("regex")
    hf, _ = trained
    ids = ours.encode(text)
    assert ids == hf.encode(text).ids
    assert ours.decode(ids) == text


@settings(max_examples=150, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_gpt2_tokenizer_random_unicode_matches_hf(trained, ours, text):
    hf, _ = trained
    ids = ours.encode(text, disallowed_special=())
    assert ids == hf.encode(text).ids
    assert ours.decode(ids) == text


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.one_of(st.text(max_size=12), st.just("<|endoftext|>"),
                                st.sampled_from(["²", "½", "Ⅻ", "\x1c", "\x1f", "\x85", "\u3000", " 's", "'ll"])),
                      max_size=8))
def test_gpt2_tokenizer_saved_file_encodes_like_hf(trained, ours, resaved, parts):
    hf, _ = trained
    text = "".join(parts).encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    ids = hf.encode(text).ids
    assert ours.encode(text, allowed_special="all") == ids
    assert resaved.encode(text).ids == ids


@pytest.fixture(scope="module")
def resaved(ours, tmp_path_factory):
    """Our tokenizer written by save_hf_json and read back by Hugging Face."""
    path = tmp_path_factory.mktemp("resaved") / "tokenizer.json"
    ours.save_hf_json(path)
    return tokenizers.Tokenizer.from_file(str(path))


def test_gpt2_tokenizer_byte_ids_follow_the_file(trained, ours):
    hf, _ = trained
    # HF numbers its 256 byte tokens in GPT-2's character order, not by byte value ("A" is not
    # 65), so every byte must be found through the id table.
    assert hf.token_to_id("A") != ord("A")
    for b, ch in bytes_to_unicode().items():
        assert ours.token_bytes(hf.token_to_id(ch)) == bytes([b])
    assert ours.encode("A") == [hf.token_to_id("A")]


def test_gpt2_tokenizer_special_tokens_disallowed_by_default(trained, ours):
    hf, _ = trained
    text = "end of story<|endoftext|>next one"
    with pytest.raises(ValueError, match=r"<\|endoftext\|>"):
        ours.encode(text)
    eot = hf.token_to_id("<|endoftext|>")
    assert ours.special_tokens == {"<|endoftext|>": eot}
    for allowed in ("all", {"<|endoftext|>"}):
        ids = ours.encode(text, allowed_special=allowed)
        assert ids == hf.encode(text).ids and eot in ids
    as_text = ours.encode(text, disallowed_special=())
    assert eot not in as_text and ours.decode(as_text) == text
    with pytest.raises(ValueError, match="not special tokens"):
        ours.encode(text, allowed_special={"<|nope|>"})


def test_gpt2_tokenizer_save_then_hf_load_gives_identical_ids(trained, ours, tmp_path):
    hf, _ = trained
    ours.save_pretrained(tmp_path)
    from_json = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    from_files = tokenizers.ByteLevelBPETokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    for text in SAMPLES + ["a<|endoftext|>b"]:
        assert from_json.encode(text).ids == hf.encode(text).ids
    for text in SAMPLES:
        assert from_files.encode(text).ids == hf.encode(text).ids
    again = GPT2Tokenizer.from_pretrained(tmp_path)
    assert again.encode(SAMPLES[0]) == ours.encode(SAMPLES[0])


def test_load_tokenizer_tells_hf_json_from_tinygpt_json(trained, tmp_path):
    hf, folder = trained
    # Hugging Face's tokenizer.json through the generic loader: detected by its schema.
    tok = load_tokenizer(folder / "tokenizer.json")
    assert isinstance(tok, GPT2Tokenizer) and tok.encode(SAMPLES[1]) == hf.encode(SAMPLES[1]).ids
    # tinygpt's own tokenizer.json of the same tokenizer has a "type" and round-trips.
    tok.save(tmp_path / "tokenizer.json")
    assert json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))["type"] == "gpt2_bpe"
    back = load_tokenizer(tmp_path / "tokenizer.json")
    assert back.encode(SAMPLES[0] + SAMPLES[2]) == tok.encode(SAMPLES[0] + SAMPLES[2])
    assert back.special_tokens == tok.special_tokens
    # A class-specific loader given the HF file says what it is.
    with pytest.raises(ValueError, match="Hugging Face tokenizer.json"):
        GPT2Tokenizer.load(folder / "tokenizer.json")


# The documented differences of the stdlib `re` fallback: numbers that are not decimal digits
# (No/Nl) count as letters, and \s also matches \x1c-\x1f. With `regex`, all match HF.
@pytest.mark.parametrize("text", ["x²", "1½ cups", "Henry Ⅻth", "a \x1c\x1cb", "x\x1f."])
def test_gpt2_pattern_re_fallback_differs_where_documented(text):
    pytest.importorskip("regex")
    hf_split = [piece for piece, _ in tokenizers.pre_tokenizers.Split(
        tokenizers.Regex(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""),
        behavior="isolated").pre_tokenize_str(text)]
    assert compile_gpt2_pattern(use_regex=True).findall(text) == hf_split
    assert compile_gpt2_pattern(use_regex=False).findall(text) != hf_split


def test_gpt2_pattern_re_fallback_agrees_on_ordinary_text():
    for text in SAMPLES:
        assert compile_gpt2_pattern(use_regex=False).findall(text) == compile_gpt2_pattern(True).findall(text)


def test_gpt2_tokenizer_from_byte_bpe_saves_for_hf(tmp_path):
    from tinygpt.tokenizers import GPT2_SPLIT_PATTERN, ByteLevelBPETokenizer
    native = ByteLevelBPETokenizer.train("".join(CORPUS), 400, special_tokens=["<|endoftext|>"],
                                         pattern=GPT2_SPLIT_PATTERN)
    GPT2Tokenizer.from_byte_bpe(native).save_hf_json(tmp_path / "tokenizer.json")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in SAMPLES + ["one<|endoftext|>two"]:
        assert hf.encode(text).ids == native.encode(text)
    with pytest.raises(ValueError, match="GPT2_SPLIT_PATTERN"):
        GPT2Tokenizer.from_byte_bpe(ByteLevelBPETokenizer.train("abcabc", 260))


def test_gpt2_tokenizer_rejects_what_it_cannot_reproduce(trained, tmp_path):
    _, folder = trained
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    data["normalizer"] = {"type": "Lowercase"}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="normalizer 'Lowercase' is not supported"):
        GPT2Tokenizer.from_hf_json(tmp_path / "tokenizer.json")
    data["normalizer"], data["model"]["type"] = None, "WordPiece"
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="model type 'WordPiece'"):
        load_tokenizer(tmp_path / "tokenizer.json")


def test_gpt2_tokenizer_ignore_merges_matches_hf(trained, tmp_path):
    _, folder = trained
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    # A whole-word token no merge builds: only ignore_merges (Llama-3 style) can emit it.
    data["model"]["vocab"]["Ġfoxjumps"] = 1 + max(data["model"]["vocab"].values())
    data["model"]["ignore_merges"] = True
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = GPT2Tokenizer.from_hf_json(tmp_path / "tokenizer.json")
    text = "the foxjumps over the lazy fox jumps"
    assert ours.encode(text) == hf.encode(text).ids
    assert data["model"]["vocab"]["Ġfoxjumps"] in ours.encode(text)


def test_gpt2_tokenizer_special_token_last_like_gpt2(tmp_path):
    # GPT-2 itself has <|endoftext|> as the last id (50256); HF's trainer puts specials first.
    hf = tokenizers.ByteLevelBPETokenizer()
    hf.train_from_iterator(CORPUS, vocab_size=350, min_frequency=2)
    hf.add_special_tokens(["<|endoftext|>"])
    hf.save(str(tmp_path / "tokenizer.json"))
    text = SAMPLES[0] + "<|endoftext|>" + SAMPLES[1]
    # GPT-2's own vocab.json lists <|endoftext|> with the ordinary tokens: no merge builds it.
    hf.save_model(str(tmp_path))
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    vocab["<|endoftext|>"] = len(vocab)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    for ours in (GPT2Tokenizer.from_hf_json(tmp_path / "tokenizer.json"),
                 GPT2Tokenizer.from_gpt2_files(tmp_path / "vocab.json", tmp_path / "merges.txt")):
        assert ours.special_tokens == {"<|endoftext|>": ours.vocab_size - 1}
        assert ours.encode(text, allowed_special="all") == hf.encode(text).ids


def test_gpt2_tokenizer_streaming_decode_equals_decode(ours):
    ids = ours.encode("中文 😀 text", disallowed_special=())
    stream = ours.decoder()
    assert "".join(stream.feed(i) for i in ids) + stream.flush() == ours.decode(ids) == "中文 😀 text"


def test_gpt2_tokenizer_from_hf_json_names_a_tinygpt_file(trained, tmp_path):
    _, folder = trained
    GPT2Tokenizer.from_hf_json(folder / "tokenizer.json").save(tmp_path / "tokenizer.json")
    with pytest.raises(ValueError, match="tinygpt's own tokenizer file"):
        GPT2Tokenizer.from_hf_json(tmp_path / "tokenizer.json")
    with pytest.raises(ValueError, match=r"special tokens \['<\|nope\|>'\] are not in the vocab"):
        GPT2Tokenizer.from_gpt2_files(folder / "vocab.json", folder / "merges.txt", special_tokens=["<|nope|>"])


def test_gpt2_tokenizer_re_fallback_ids_differ_only_where_documented(trained):
    hf, folder = trained
    fallback = GPT2Tokenizer.from_hf_json(folder / "tokenizer.json", use_regex=False)  # as without `regex`
    for text in SAMPLES:
        assert fallback.encode(text) == hf.encode(text).ids
    # HF learned merges inside "1½" and " \x1c\x1c"; the `re` split cuts those chunks apart.
    for text in RE_FALLBACK_DIFFERS:
        assert fallback.encode(text) != hf.encode(text).ids
        assert fallback.decode(fallback.encode(text)) == text


def test_gpt2_tokenizer_repeated_merge_keeps_last_rank_like_hf(trained, tmp_path):
    _, folder = trained
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    n = len(data["model"]["vocab"])
    data["model"]["vocab"].update({"qx": n, "xz": n + 1, "qxz": n + 2})
    # "q x" first, then "x z", then "q x" again: with the last rank, "x z" wins in "qxz".
    data["model"]["merges"] += [["q", "x"], ["x", "z"], ["q", "xz"], ["q", "x"]]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    ours = GPT2Tokenizer.from_hf_json(tmp_path / "tokenizer.json")
    assert hf.encode("qxz").tokens == ["qxz"]
    for text in SAMPLES + ["qxz qx xz qxzqxz"]:
        assert ours.encode(text, disallowed_special=()) == hf.encode(text).ids
