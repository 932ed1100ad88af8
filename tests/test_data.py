"""tinygpt.data: Keras padding/one-hot semantics, splits, LM batches, token files, labelled files, read_text."""

import json

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tinygpt.data import (pad_sequences, random_windows, sequential_batches, split_tokens,
                          to_categorical, train_val_split)
from tinygpt.text_files import load_labelled, read_text
from tinygpt.token_files import read_tokens, write_tokens

# --- pad_sequences ----------------------------------------------------------------------------


def test_pad_sequences_matches_keras_examples():
    seqs = [[1, 2, 3], [4, 5], [6]]
    # Outputs of keras.utils.pad_sequences for the same calls.
    np.testing.assert_array_equal(pad_sequences(seqs), [[1, 2, 3], [0, 4, 5], [0, 0, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, padding="post"), [[1, 2, 3], [4, 5, 0], [6, 0, 0]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2), [[2, 3], [4, 5], [0, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2, truncating="post"), [[1, 2], [4, 5], [0, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=4, padding="post", value=-1),
                                  [[1, 2, 3, -1], [4, 5, -1, -1], [6, -1, -1, -1]])
    assert pad_sequences(seqs).dtype == np.int32


def test_pad_sequences_edge_cases():
    assert pad_sequences([[], []]).shape == (2, 0)
    assert pad_sequences([]).shape == (0, 0)
    np.testing.assert_array_equal(pad_sequences([[1, 2], []], maxlen=3), [[0, 1, 2], [0, 0, 0]])
    assert pad_sequences([[1, 2, 3]], maxlen=0).shape == (1, 0)
    out = pad_sequences([[[1, 1], [2, 2]], [[3, 3]]], dtype="float32")  # sequences of vectors
    np.testing.assert_array_equal(out, [[[1, 1], [2, 2]], [[0, 0], [3, 3]]])
    np.testing.assert_allclose(pad_sequences([[0.5]], maxlen=2, dtype="float32", value=0.25), [[0.25, 0.5]])


@pytest.mark.parametrize("kwargs, message", [
    (dict(padding="left"), "padding must be 'pre' or 'post'"),
    (dict(truncating="middle"), "truncating must be 'pre' or 'post'"),
    (dict(maxlen=-1), "maxlen must be None or an int >= 0"),
    (dict(maxlen=2.5), "maxlen must be None or an int >= 0"),
])
def test_pad_sequences_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pad_sequences([[1, 2]], **kwargs)


def test_pad_sequences_rejects_non_sequences():
    with pytest.raises(TypeError, match=r"sequences\[1\]"):
        pad_sequences([[1], 5])
    with pytest.raises(TypeError, match=r"sequences\[0\]"):
        pad_sequences(["some text"])  # forgot to tokenize


@settings(deadline=None, max_examples=60)
@given(seqs=st.lists(st.lists(st.integers(1, 99), max_size=7), min_size=1, max_size=5),
       maxlen=st.none() | st.integers(0, 8),
       padding=st.sampled_from(["pre", "post"]), truncating=st.sampled_from(["pre", "post"]))
@example(seqs=[[1]], maxlen=1, padding="pre", truncating="pre")
def test_pad_sequences_keeps_the_right_part(seqs, maxlen, padding, truncating):
    out = pad_sequences(seqs, maxlen=maxlen, padding=padding, truncating=truncating)
    width = max(map(len, seqs)) if maxlen is None else maxlen
    assert out.shape == (len(seqs), width)
    for row, seq in zip(out, seqs):
        kept = seq[len(seq) - width:] if truncating == "pre" else seq[:width]
        if len(seq) <= width:
            kept = seq
        pad = [0] * (width - len(kept))
        assert row.tolist() == (pad + kept if padding == "pre" else kept + pad)


# --- to_categorical -----------------------------------------------------------------------------


def test_to_categorical_matches_keras():
    np.testing.assert_array_equal(to_categorical([0, 2, 1]), [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert to_categorical([0, 1], num_classes=4).shape == (2, 4)
    assert to_categorical([[0], [1]]).shape == (2, 2)  # trailing 1 dropped, as in Keras
    assert to_categorical([[0, 1], [1, 0]]).shape == (2, 2, 2)
    assert to_categorical([1]).dtype == np.float32
    assert to_categorical([], num_classes=3).shape == (0, 3)
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 0.0])), [[0, 1], [1, 0]])


def test_to_categorical_names_the_label_out_of_range():
    with pytest.raises(ValueError, match=r"label 5 at flat index 2 is out of range for num_classes=3"):
        to_categorical([0, 1, 5], num_classes=3)
    with pytest.raises(ValueError, match="label -1"):
        to_categorical([-1, 0])
    with pytest.raises(ValueError, match="non-integer value 0.5"):
        to_categorical([0.5])
    with pytest.raises(ValueError, match="pass num_classes"):
        to_categorical([])
    with pytest.raises(TypeError, match="dtype <U"):
        to_categorical(["cat"])


# --- splits -------------------------------------------------------------------------------------


def test_train_val_split_is_deterministic_and_aligned():
    x, y = np.arange(100) * 10, list(range(100))
    first = train_val_split(x, y, val_fraction=0.2, seed=7)
    second = train_val_split(x, y, val_fraction=0.2, seed=7)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    x_train, x_val, y_train, y_val = first
    assert len(x_train) == 80 and len(x_val) == 20 and isinstance(y_train, list)
    np.testing.assert_array_equal(x_train, np.array(y_train) * 10)  # rows stay paired
    assert sorted(np.concatenate([x_train, x_val]).tolist()) == x.tolist()
    assert not np.array_equal(train_val_split(x, seed=8, val_fraction=0.2)[1], x_val)


def test_train_val_split_without_shuffle_takes_the_tail_like_keras():
    train, val = train_val_split(np.arange(10), val_fraction=0.25, shuffle=False)
    assert train.tolist() == list(range(7)) and val.tolist() == [7, 8, 9]  # ceil(2.5) = 3


def test_train_val_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="same length"):
        train_val_split(np.arange(3), np.arange(4))
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1.5"):
        train_val_split(np.arange(3), val_fraction=1.5)


def test_split_tokens_cuts_contiguously_like_nanogpt():
    train, val = split_tokens(np.arange(1000))
    assert train.tolist() == list(range(900)) and val.tolist() == list(range(900, 1000))


# --- language-model batches ---------------------------------------------------------------------


def test_random_windows_targets_are_inputs_shifted_by_one():
    tokens = np.arange(50, dtype=np.uint16)
    x, y = random_windows(tokens, batch_size=6, block_size=8, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (6, 8) and x.dtype == y.dtype == np.int64
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    np.testing.assert_array_equal(y[:, -1], x[:, -1] + 1)  # tokens are consecutive ints here
    x2, _ = random_windows(tokens, 6, 8, np.random.default_rng(0))
    np.testing.assert_array_equal(x, x2)


def test_random_windows_rejects_short_corpus_and_legacy_rng():
    with pytest.raises(ValueError, match="need at least block_size \\+ 1 = 9 tokens"):
        random_windows(np.arange(8), 2, 8, np.random.default_rng(0))
    with pytest.raises(TypeError, match="np.random.Generator"):
        random_windows(np.arange(20), 2, 8, np.random.RandomState(0))


@settings(deadline=None, max_examples=40)
@given(n=st.integers(2, 60), batch_size=st.integers(1, 5), block_size=st.integers(1, 7))
@example(n=2, batch_size=1, block_size=1)
def test_sequential_batches_cover_every_window_exactly_once(n, batch_size, block_size):
    tokens = np.arange(n)
    batches = list(sequential_batches(tokens, batch_size, block_size)) if n > block_size else []
    seen = [row for b in batches for row in b.x.tolist()]
    n_windows = (n - 1) // block_size
    assert seen == [list(range(i * block_size, (i + 1) * block_size)) for i in range(n_windows)]
    for b in batches:
        np.testing.assert_array_equal(b.y, b.x + 1)
        assert 1 <= len(b.x) <= batch_size


def test_sequential_batches_resume_from_next_start_identically():
    tokens = np.random.default_rng(1).integers(0, 50, size=203)
    full = list(sequential_batches(tokens, 3, 5))
    resumed = list(sequential_batches(tokens, 3, 5, start=full[4].next_start))
    assert len(resumed) == len(full) - 5
    for a, b in zip(full[5:], resumed):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        assert a.next_start == b.next_start
    assert list(sequential_batches(tokens, 3, 5, start=full[-1].next_start)) == []


def test_sequential_batches_rejects_bad_start():
    with pytest.raises(ValueError, match=r"start must be an int in \[0, 20\], got 21"):
        next(sequential_batches(np.arange(20), 2, 4, start=21))


# --- token files --------------------------------------------------------------------------------


@pytest.mark.parametrize("vocab_size, dtype", [(256, np.uint16), (65536, np.uint16), (65537, np.uint32), (100_000, np.uint32)])
def test_write_tokens_picks_the_smallest_dtype_and_round_trips(tmp_path, vocab_size, dtype):
    ids = np.array([0, 1, vocab_size - 1, 7, vocab_size // 2])
    path = write_tokens(tmp_path / "train.bin", ids, vocab_size)
    tokens = read_tokens(path)
    assert isinstance(tokens, np.memmap) and tokens.dtype == dtype
    assert (tmp_path / "train.bin").stat().st_size == ids.size * np.dtype(dtype).itemsize
    np.testing.assert_array_equal(tokens, ids)
    with pytest.raises(ValueError, match="read-only"):
        tokens[0] = 3
    sidecar = json.loads((tmp_path / "train.bin.json").read_text())
    assert sidecar["vocab_size"] == vocab_size and sidecar["num_tokens"] == 5
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_read_tokens_feeds_the_batchers(tmp_path):
    write_tokens(tmp_path / "t.bin", np.arange(100) % 50, 50)
    x, y = random_windows(read_tokens(tmp_path / "t.bin"), 4, 16, np.random.default_rng(0))
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    assert read_tokens(write_tokens(tmp_path / "e.bin", [], 50)).shape == (0,)


def test_token_file_errors(tmp_path):
    with pytest.raises(ValueError, match="token id 9 is out of range for vocab_size=5"):
        write_tokens(tmp_path / "a.bin", [1, 9], 5)
    with pytest.raises(ValueError, match="token file not found"):
        read_tokens(tmp_path / "missing.bin")
    (tmp_path / "raw.bin").write_bytes(np.arange(4, dtype=np.uint16).tobytes())
    with pytest.raises(ValueError, match="pass dtype='uint16'"):
        read_tokens(tmp_path / "raw.bin")
    assert read_tokens(tmp_path / "raw.bin", dtype="uint16").tolist() == [0, 1, 2, 3]  # nanoGPT .bin
    write_tokens(tmp_path / "b.bin", np.arange(10), 10)
    with open(tmp_path / "b.bin", "r+b") as f:
        f.truncate(6)
    with pytest.raises(ValueError, match="has 6 bytes, expected 10 tokens of uint16"):
        read_tokens(tmp_path / "b.bin")


# --- read_text ----------------------------------------------------------------------------------


def test_read_text_reads_utf8_with_universal_newlines(tmp_path):
    (tmp_path / "a.txt").write_bytes("héllo\r\nwörld\r".encode())
    assert read_text(tmp_path / "a.txt") == "héllo\nwörld\n"


def test_read_text_errors_name_the_path_and_offset(tmp_path):
    with pytest.raises(ValueError, match="text file not found: .*nope.txt"):
        read_text(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="text file is empty"):
        read_text(tmp_path / "empty.txt")
    (tmp_path / "bin.dat").write_bytes(b"abc\x00def")
    with pytest.raises(ValueError, match=r"bin.dat looks binary \(NUL byte at offset 3\)"):
        read_text(tmp_path / "bin.dat")
    (tmp_path / "latin1.txt").write_bytes("café ok".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt is not valid UTF-8: byte 0xe9 at offset 3.*errors='replace'"):
        read_text(tmp_path / "latin1.txt")
    assert read_text(tmp_path / "latin1.txt", errors="replace") == "caf\ufffd ok"
    with pytest.raises(ValueError, match="not a regular file"):
        read_text(tmp_path)
    with pytest.raises(ValueError, match="codec error handler"):
        read_text(tmp_path / "latin1.txt", errors="loud")


# --- load_labelled ------------------------------------------------------------------------------


def test_load_labelled_csv_with_string_labels(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('\ufeffid,text,label\n1,"great, really",pos\n2,awful,neg\n\n3,"multi\nline",pos\n', encoding="utf-8")
    texts, labels, names = load_labelled(path)
    assert texts == ["great, really", "awful", "multi\nline"]
    assert names == ["neg", "pos"] and labels.tolist() == [1, 0, 1] and labels.dtype == np.int64


def test_load_labelled_jsonl_sorts_integer_labels_numerically(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"text": "a", "label": 10}, {"text": "b", "label": 2}, {"text": "c", "label": "2"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    texts, labels, names = load_labelled(path)
    assert texts == ["a", "b", "c"] and names == ["2", "10"] and labels.tolist() == [1, 0, 0]


def test_load_labelled_detects_jsonl_without_extension(tmp_path):
    (tmp_path / "data").write_text('{"text": "x", "label": "y"}\n', encoding="utf-8")
    texts, labels, names = load_labelled(tmp_path / "data")
    assert texts == ["x"] and labels.tolist() == [0] and names == ["y"]


@pytest.mark.parametrize("name, content, message", [
    ("e.csv", "", "text file is empty"),
    ("h.csv", "text,label\n", "header but no rows"),
    ("c.csv", "sentence,label\nhi,1\n", r"must name the columns 'text' and 'label', got \['sentence', 'label'\]"),
    ("f.csv", "text,label\nok,1\nbad\n", "line 3 has 1 fields, expected 2"),
    ("l.csv", "text,label\nok,\n", "line 2 has an empty label"),
    ("j.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 1}\n', "line 2 is not valid JSON"),
    ("k.jsonl", '{"text": "a"}\n', 'line 1 must be an object with "text" and "label"'),
    ("m.jsonl", '{"text": "a", "label": 1.5}\n', '"label" must be a string or an integer, got 1.5'),
])
def test_load_labelled_errors_name_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_labelled(tmp_path / name)


def test_load_labelled_missing_file(tmp_path):
    with pytest.raises(ValueError, match="text file not found: .*gone.csv"):
        load_labelled(tmp_path / "gone.csv")
