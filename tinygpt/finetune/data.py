"""Labelled examples for fine-tuning: loading them, splitting them so that no text is on both
sides, and turning them into padded id arrays.

Copies matter: sentiment-zh has 35,123 reviews but only 17,410 distinct texts, so every split
here keeps all copies of a text together. Not here: the training loop (run.py) or reading
CSV/JSONL files (data.py).
"""

import math

import numpy as np

from tinygpt.corpora import load_labelled_corpus
from tinygpt.data import pad_sequences
from tinygpt.text_files import load_labelled
from tinygpt.tokenizers import CharTokenizer


def load_examples(config):
    """-> texts, labels (N,), label_names from config.data or config.corpus."""
    if config.data is not None:
        return load_labelled(config.data)
    return load_labelled_corpus(config.corpus)


def load_test_examples(config, label_names):
    """config.test_data -> texts, labels (N,) numbered like label_names (those of the training data)."""
    texts, labels, file_names = load_labelled(config.test_data)
    unknown = sorted(set(file_names) - set(label_names))
    if unknown:
        raise ValueError(f"{config.test_data} has labels {unknown} that the training data does not have "
                         f"({label_names})")
    return texts, np.array([label_names.index(file_names[k]) for k in labels], dtype=np.int64)


def split_examples(config, texts, labels, label_names=None):
    """The training examples and the held-out ones, cut to train_size / test_size -> (texts, labels) x 2.

    Without test_data: a split of the examples seeded by config.seed, in which every copy of a text
    is on the same side (split_by_text). With it: the held-out examples are test_data's, the same
    for every seed, and the seed draws which training examples are used."""
    if config.test_data is not None:
        te_texts, te_labels = load_test_examples(config, label_names)
        order = np.random.default_rng(config.seed).permutation(len(texts))
        tr_texts, tr_labels = [texts[i] for i in order], np.asarray(labels)[order]
    else:
        tr_texts, te_texts, tr_labels, te_labels = split_by_text(texts, labels, config.val_fraction, config.seed)
    n_tr, n_te = config.train_size or len(tr_texts), config.test_size or len(te_texts)
    if len(tr_texts) < n_tr or len(te_texts) < n_te:
        raise ValueError(f"asked for {n_tr} training and {n_te} held-out examples, but there are "
                         f"{len(tr_texts)} and {len(te_texts)}")
    return (tr_texts[:n_tr], tr_labels[:n_tr]), (te_texts[:n_te], te_labels[:n_te])


def split_by_text(texts, labels, val_fraction, seed):
    """texts (N), labels (N,) -> train_texts, held_out_texts, train_labels, held_out_labels.

    A seeded split of the distinct texts, each example following its text: a review that occurs
    twice is never both trained on and tested on (a plain random split of sentiment-zh, where most
    reviews occur twice, put 6-7% of the held-out reviews into training and flattered accuracy)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    rng = np.random.default_rng(seed)
    distinct = list(dict.fromkeys(texts))  # first-seen order, so the seed alone decides the split
    n_held_out = math.ceil(len(distinct) * val_fraction)
    held_out = {distinct[i] for i in rng.permutation(len(distinct))[len(distinct) - n_held_out:]}
    order = rng.permutation(len(texts))  # examples shuffled, so train_size takes a random subset
    train = [i for i in order if texts[i] not in held_out]
    test = [i for i in order if texts[i] in held_out]
    labels = np.asarray(labels)
    return [texts[i] for i in train], [texts[i] for i in test], labels[train], labels[test]


def disjoint_parts(texts, labels, sizes, seed=0):
    """texts (N), labels (N,) -> [(texts, labels) of each size in sizes] + [(texts, labels) of the rest].

    Each distinct text lands in exactly one part, so a part kept for testing shares no text with the
    others (sentiment-zh has 35,123 reviews but only 17,410 distinct texts: a plain random split puts
    copies of a test review in the training set). Copies are merged first; a text that carries two
    different labels is dropped. The rest, its labels set aside, can be unlabelled pretraining text."""
    first_label, conflicting = {}, set()
    for text, label in zip(texts, labels):
        if first_label.setdefault(text, label) != label:
            conflicting.add(text)
    distinct = [text for text in first_label if text not in conflicting]  # first-seen order
    if sum(sizes) > len(distinct):
        raise ValueError(f"parts of sizes {list(sizes)} need {sum(sizes)} distinct texts, but there are "
                         f"{len(distinct)} (after merging copies and dropping {len(conflicting)} with two labels)")
    order = np.random.default_rng(seed).permutation(len(distinct))
    bounds = np.cumsum([0, *sizes, len(distinct) - sum(sizes)])
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        chosen = [distinct[i] for i in order[start:stop]]
        parts.append((chosen, np.array([first_label[t] for t in chosen], dtype=np.int64)))
    return parts


def encode_texts(tokenizer, texts):
    """texts -> (list of id lists, characters dropped). A char tokenizer without <unk> has no id for
    a character it never saw in pretraining; such characters are removed (and counted)."""
    dropped = 0
    if isinstance(tokenizer, CharTokenizer) and tokenizer.unk is None:
        known = set(tokenizer.chars)
        kept = ["".join(c for c in text if c in known) for text in texts]
        dropped = sum(len(t) - len(k) for t, k in zip(texts, kept))
        texts = kept
    return [tokenizer.encode(text, special="text") for text in texts], dropped


def to_batch_arrays(ids, labels, max_len):
    """-> idx (N', max_len) right-padded, lengths (N',), labels (N',), with the empty texts removed:
    a classifier needs at least one real token to read."""
    keep = [i for i, seq in enumerate(ids) if seq]
    ids, labels = [ids[i] for i in keep], np.asarray(labels)[keep]
    idx = pad_sequences(ids, maxlen=max_len, dtype="int64", padding="post", truncating="post", value=0)
    lengths = np.minimum([len(seq) for seq in ids], max_len).astype(np.int64)
    return idx, lengths, labels
