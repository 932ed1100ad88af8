"""Keras text preprocessing (TextVectorization, StringLookup) and dataset helpers
(timeseries_dataset_from_array, text_dataset_from_directory, PyDataset), against hand-computed
vocabularies, NumPy window formulas and the examples in Keras' own docs."""

import collections
import re

import numpy as np
import pytest

import tinygpt.keras as keras
from tinygpt.keras import utils
from tinygpt.keras.layers import (Dense, Embedding, GlobalAveragePooling1D, StringLookup,
                                  TextVectorization)

TEXTS = ["The cat sat.", "the dog sat", "A cat!", "dog, dog... cat?"]


def test_text_vectorization_vocabulary_orders_by_count_then_token_descending():
    tv = TextVectorization()
    tv.adapt(TEXTS)
    # counts after lower + strip punctuation: cat 3, dog 3, the 2, sat 2, a 1; ties: token descending
    assert tv.get_vocabulary() == ["", "[UNK]", "dog", "cat", "the", "sat", "a"]


def test_text_vectorization_vocabulary_matches_a_counter_oracle():
    rng = np.random.default_rng(0)
    words = np.array(["w%d" % i for i in range(30)])
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 12), p=np.linspace(1, 3, 30) / 60)) for _ in range(200)]
    tv = TextVectorization(max_tokens=12)
    tv.adapt(texts)
    counts = collections.Counter(w for t in texts for w in t.split())
    tokens, freq = np.array(list(counts)), np.array(list(counts.values()))
    oracle = tokens[np.lexsort((tokens, freq))[::-1]][:10].tolist()  # Keras' own sort (index_lookup.py)
    assert tv.get_vocabulary() == ["", "[UNK]"] + oracle


def test_text_vectorization_ids_are_padded_truncated_and_unknowns_are_one():
    tv = TextVectorization(output_sequence_length=3)
    tv.adapt(TEXTS)
    ids = tv(["the cat ran away fast", "DOG"])
    np.testing.assert_array_equal(ids, [[4, 3, 1], [2, 0, 0]])
    assert ids.dtype == np.int64
    # without output_sequence_length: padded to the batch's longest
    np.testing.assert_array_equal(TextVectorization(vocabulary=tv.get_vocabulary())(["a", "sat the cat"]),
                                  [[6, 0, 0], [5, 4, 3]])


def test_text_vectorization_character_split_takes_one_chinese_character_per_token():
    tv = TextVectorization(split="character", standardize=None)
    tv.adapt(["我爱北京", "我爱你", "你好"])
    # counts: 我 2, 爱 2, 你 2, 北 1, 京 1, 好 1; ties by code point descending
    expected = sorted("我爱你", reverse=True) + sorted("北京好", reverse=True)
    assert tv.get_vocabulary() == ["", "[UNK]"] + expected
    vocab = tv.get_vocabulary()
    np.testing.assert_array_equal(tv(["你爱猫"]), [[vocab.index("你"), vocab.index("爱"), 1]])


def test_text_vectorization_standardize_and_split_variants():
    assert TextVectorization(standardize="lower").tokens("Hi, There") == ["hi,", "there"]
    assert TextVectorization(standardize="strip_punctuation").tokens("Hi, There!") == ["Hi", "There"]
    assert TextVectorization(standardize=None, split=None).tokens("a b") == ["a b"]
    tv = TextVectorization(standardize=lambda s: s.upper(), split=lambda s: re.split(r"-", s))
    assert tv.tokens("a-b-c") == ["A", "B", "C"]
    with pytest.raises(ValueError, match="standardize"):
        TextVectorization(standardize="upper")


def test_text_vectorization_multi_hot_and_count_modes():
    for mode in ("multi_hot", "count"):
        tv = TextVectorization(output_mode=mode)
        tv.adapt(TEXTS)
        vocab = tv.get_vocabulary()
        assert vocab == ["[UNK]", "dog", "cat", "the", "sat", "a"]  # no padding token outside int mode
        out = tv(["dog dog zebra", "cat"])
        expected = np.zeros((2, 6), np.float32)
        expected[0, [1, 0]] = [2 if mode == "count" else 1, 1]
        expected[1, 2] = 1
        np.testing.assert_array_equal(out, expected)


def test_text_vectorization_adapts_on_a_generator_of_batches():
    tv = TextVectorization()
    tv.adapt(np.array(b) for b in (TEXTS[:2], TEXTS[2:]))
    assert tv.get_vocabulary() == ["", "[UNK]", "dog", "cat", "the", "sat", "a"]


def test_string_lookup_maps_tokens_and_inverts():
    lookup = StringLookup()
    lookup.adapt(["b", "a", "b", "c", "b", "a"])
    assert lookup.get_vocabulary() == ["[UNK]", "b", "a", "c"]
    np.testing.assert_array_equal(lookup([["a", "z"], ["c", "b"]]), [[2, 0], [3, 1]])
    masked = StringLookup(mask_token="", vocabulary=["x", "y"])
    assert masked.get_vocabulary() == ["", "[UNK]", "x", "y"]
    inverse = StringLookup(vocabulary=["x", "y"], invert=True)
    np.testing.assert_array_equal(inverse(np.array([2, 1, 0])), ["y", "x", "[UNK]"])
    with pytest.raises(KeyError, match="zz"):
        StringLookup(vocabulary=["x"], num_oov_indices=0)(["zz"])


def test_text_vectorization_has_no_weights_and_leads_a_sequential():
    tv = TextVectorization(output_sequence_length=4)
    tv.adapt(TEXTS)
    model = keras.Sequential([tv, Embedding(tv.vocabulary_size(), 4, seed=0), GlobalAveragePooling1D(),
                              Dense(1, seed=0)], seed=0)
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.array(TEXTS), np.array([1.0, 0.0, 1.0, 0.0]), epochs=1, verbose=0)
    assert tv.get_weights() == [] and model.predict(["the cat"]).shape == (1, 1)
    on_input = keras.Sequential([keras.Input(shape=(1,), dtype="string"), tv, Embedding(tv.vocabulary_size(), 4),
                                 GlobalAveragePooling1D(), Dense(1)])
    on_input.compile(optimizer="adam", loss="mse")
    on_input.fit(np.array(TEXTS)[:, None], np.array([1.0, 0.0, 1.0, 0.0]), epochs=1, verbose=0)
    assert on_input.predict(["the cat", "a dog"]).shape == (2, 1)  # texts (B,) for an input of (None, 1)


def test_functional_text_classifier_trains_from_string_input():
    rng = np.random.default_rng(0)
    good, bad = ["great", "fine", "love", "nice"], ["awful", "bad", "hate", "poor"]
    texts, labels = [], []
    for _ in range(64):
        positive = rng.random() < 0.5
        words = rng.choice(good if positive else bad, size=3).tolist() + rng.choice(["the", "movie", "was"], 2).tolist()
        texts.append(" ".join(rng.permutation(words)))
        labels.append(float(positive))
    tv = TextVectorization(output_sequence_length=5)
    tv.adapt(texts)
    inputs = keras.Input(shape=(1,), dtype="string")
    x = Embedding(tv.vocabulary_size(), 8, seed=0)(tv(inputs))
    outputs = Dense(1, activation="sigmoid", seed=1)(GlobalAveragePooling1D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(np.array(texts, dtype=object)[:, None], np.array(labels), epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9
    assert model.predict(np.array(["great love nice", "awful hate poor"])).ravel().round().tolist() == [1.0, 0.0]
    assert model.predict(["great love nice", "awful hate poor"]).ravel().round().tolist() == [1.0, 0.0]


def test_timeseries_windows_match_the_keras_docs_example():
    data = np.arange(100)
    ds = utils.timeseries_dataset_from_array(data, None, sequence_length=10, sequence_stride=3,
                                             sampling_rate=2, batch_size=8)
    windows = np.concatenate(list(ds))
    np.testing.assert_array_equal(windows[0], np.arange(0, 20, 2))
    np.testing.assert_array_equal(windows[1], np.arange(3, 23, 2))
    np.testing.assert_array_equal(windows[-1], np.arange(78, 98, 2))  # the docs' last sequence
    starts = np.arange(0, 100 - 10 * 2 + 1, 3)
    np.testing.assert_array_equal(windows, starts[:, None] + 2 * np.arange(10))
    assert len(ds) == int(np.ceil(len(starts) / 8))


def test_timeseries_targets_are_the_next_step_as_in_the_keras_docs():
    data = np.arange(50, dtype=np.float32)[:, None] * np.array([1.0, -1.0], np.float32)
    ds = utils.timeseries_dataset_from_array(data[:-10], data[10:, 0], sequence_length=10, batch_size=16)
    x, y = next(iter(ds))
    np.testing.assert_array_equal(x[0], data[:10])
    assert y[0] == data[10, 0] and x.shape == (16, 10, 2)
    sub = utils.timeseries_dataset_from_array(data, data[:, 0], 4, start_index=5, end_index=20, batch_size=100)
    x, y = next(iter(sub))
    np.testing.assert_array_equal(x[:, 0, 0], np.arange(5, 17))  # last window ends at 19 < end_index
    np.testing.assert_array_equal(y, np.arange(5, 17))


def test_timeseries_dataset_trains_a_model_each_epoch():
    t = np.arange(400, dtype=np.float32)
    series = np.sin(t / 10)[:, None]
    ds = utils.timeseries_dataset_from_array(series[:-5], series[5:, 0], sequence_length=5, batch_size=32,
                                             shuffle=True, seed=0)
    model = keras.Sequential([keras.Input(shape=(5, 1)), keras.layers.Flatten(), Dense(1, seed=0)], seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
    history = model.fit(ds, epochs=4, verbose=0)
    assert len(history.history["loss"]) == 4 and history.history["loss"][-1] < history.history["loss"][0]


def _write_tree(root):
    files = {"neg": ["bad film", "awful", "poor plot"], "pos": ["great", "loved it"], "mid": ["ok"]}
    for label, texts in files.items():
        (root / label).mkdir()
        for i, text in enumerate(texts):
            (root / label / f"{i}.txt").write_text(text, encoding="utf-8")
    (root / "pos" / "notes.md").write_text("ignored", encoding="utf-8")
    return files


def test_text_dataset_infers_labels_from_sorted_subfolders(tmp_path):
    files = _write_tree(tmp_path)
    ds = utils.text_dataset_from_directory(str(tmp_path), batch_size=4, shuffle=False)
    assert ds.class_names == ["mid", "neg", "pos"] and len(ds) == 2
    texts, labels = map(np.concatenate, zip(*ds))
    expected = [(t, k) for k, name in enumerate(["mid", "neg", "pos"]) for t in files[name]]
    assert list(zip(texts.tolist(), labels.tolist())) == expected
    cat = utils.text_dataset_from_directory(str(tmp_path), label_mode="categorical", batch_size=10)
    x, y = next(iter(cat))
    assert y.shape == (6, 3) and all(y[i, ds.class_names.index(
        next(n for n in files if x[i] in files[n]))] == 1 for i in range(6))


def test_text_dataset_validation_split_is_disjoint_and_seeded(tmp_path):
    _write_tree(tmp_path)
    train, val = utils.text_dataset_from_directory(str(tmp_path), batch_size=2, seed=3,
                                                   validation_split=0.34, subset="both")
    again = utils.text_dataset_from_directory(str(tmp_path), batch_size=2, seed=3,
                                              validation_split=0.34, subset="validation")
    assert len(val.file_paths) == 2 and len(train.file_paths) == 4
    assert not set(train.file_paths) & set(val.file_paths)
    assert sorted(val.file_paths) == sorted(again.file_paths)
    assert sorted(np.concatenate([b[0] for b in val]).tolist()) == sorted(np.concatenate([b[0] for b in again]).tolist())
    with pytest.raises(ValueError, match="seed"):
        utils.text_dataset_from_directory(str(tmp_path), validation_split=0.2, subset="training")
    with pytest.raises(ValueError, match="leaves 0 for validation"):
        utils.text_dataset_from_directory(str(tmp_path), seed=0, validation_split=0.1, subset="training")


def test_text_dataset_feeds_a_string_input_model(tmp_path):
    _write_tree(tmp_path)
    ds = utils.text_dataset_from_directory(str(tmp_path), batch_size=3, seed=0)
    tv = TextVectorization(output_sequence_length=3)
    tv.adapt(b[0] for b in ds)
    inputs = keras.Input(shape=(1,), dtype="string")
    outputs = Dense(3, activation="softmax", seed=0)(GlobalAveragePooling1D()(Embedding(tv.vocabulary_size(), 4, seed=0)(tv(inputs))))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


class _Squares(utils.PyDataset):
    def __init__(self):
        super().__init__()
        self.epochs_ended, self.x = 0, np.linspace(-1, 1, 40, dtype=np.float32)[:, None]

    def __len__(self):
        return 4

    def __getitem__(self, i):
        x = self.x[i * 10:(i + 1) * 10]
        return x, 3 * x - 1

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_py_dataset_drives_fit_evaluate_and_predict():
    data = _Squares()
    model = keras.Sequential([keras.Input(shape=(1,)), Dense(1, seed=0)], seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = model.fit(data, epochs=30, verbose=0)
    assert data.epochs_ended == 30 and history.history["loss"][-1] < 0.1 * history.history["loss"][0]
    assert np.isclose(model.evaluate(data, verbose=0), history.history["loss"][-1], rtol=0.5)
    assert model.predict(data).shape == (40, 1)
    with pytest.raises(NotImplementedError, match="__len__"):
        len(utils.PyDataset())
