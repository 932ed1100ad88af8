"""bpe_merge_chunks: the C merge loop (csrc/bpe.c) against the Python reference on random merge
tables and text, including chunks no merge touches and long chunks; and the encoders that use it
against the per-chunk reference, on every backend."""

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from tinygpt import backend
from tinygpt.tokenizers import GPT2_SPLIT_PATTERN, ByteLevelBPETokenizer, GPT2Tokenizer
from tinygpt.tokenizers.bpe_merge import MergeTable, bpe_merge_chunks, merge_chunk

TEXT = ("The quick brown fox jumps over the lazy dog; the dog sleeps. 中文分词测试，你好世界。"
        "emoji 🙂🚀 code: def f(x):\n\treturn x ** 2  # 12345\n" * 3)


def c_version():
    module = backend._module("c")
    if isinstance(module, str):
        pytest.skip(f"C kernels not available: {module}")
    return module.bpe_merge_chunks


def random_table(rng, n_merges, byte_order):
    """n_merges random merges over ids made so far; byte ids 0..255 in `byte_order`."""
    merges, seen, n_ids = [], set(), 256
    while len(merges) < n_merges:
        pair = (int(rng.integers(0, n_ids)), int(rng.integers(0, n_ids)))
        if rng.random() < 0.5:  # bias towards common bytes so that merges fire on the text
            pair = tuple(int(byte_order[b]) for b in rng.choice(list(b"the o"), 2))
        if pair in seen:
            continue
        seen.add(pair)
        merges.append(pair)
        n_ids += 1
    return MergeTable(byte_order, merges, range(256, 256 + n_merges))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_merges=st.sampled_from([0, 1, 7, 200]),
       text=st.text(max_size=60), shuffled=st.booleans())
@example(seed=0, n_merges=200, text=" " * 300 + "the" * 50, shuffled=False)
def test_bpe_merge_chunks_c_matches_python_reference(seed, n_merges, text, shuffled):
    fast = c_version()
    rng = np.random.default_rng(seed)
    order = rng.permutation(256) if shuffled else np.arange(256)
    table = random_table(rng, n_merges, order)
    chunks = [c.encode("utf-8", "surrogatepass") for c in (text.split(" ") + ["the other", "", "oo"])]
    want = [merge_chunk(c, table) for c in chunks]
    got = fast(chunks, table)
    bad = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), None)
    assert got == want, f"C bpe_merge_chunks differs at chunk {bad} {chunks[bad]!r}: {got[bad]} vs {want[bad]}"
    assert fast(chunks, table) == want  # a second call reuses the hash table


def test_bpe_merge_chunks_of_nothing_is_nothing():
    table = MergeTable(range(256), [(116, 104)], [256])
    assert c_version()([], table) == [] == bpe_merge_chunks.reference([], table)


@pytest.mark.parametrize("mode", ["numpy", "c"])
def test_encoders_equal_per_chunk_reference_on_every_backend(mode):
    if mode == "c":
        c_version()
    tok = ByteLevelBPETokenizer.train(TEXT, 400, pattern=GPT2_SPLIT_PATTERN)
    gpt2 = GPT2Tokenizer.from_byte_bpe(tok)
    for t in (tok, gpt2):
        want = [i for chunk in t._split_re.findall(TEXT) for i in t._encode_chunk(chunk.encode("utf-8"))]
        t._cache.clear()
        with backend.use(mode):
            assert t.encode(TEXT) == want
            assert t.encode(TEXT) == want  # now from the chunk cache
        assert t.decode(want) == TEXT


def test_merge_table_rejects_a_short_byte_table():
    with pytest.raises(ValueError, match="256 byte ids"):
        MergeTable(range(255), [], [])
