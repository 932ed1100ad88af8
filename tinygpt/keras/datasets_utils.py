"""Keras' dataset helpers on NumPy: timeseries_dataset_from_array, text_dataset_from_directory and
the PyDataset base class. Each gives an iterable of (x, y) NumPy batches that fit / evaluate /
predict take as they take a generator (batches.py): it can be iterated again for every epoch, and
len() is its number of batches, so no steps_per_epoch is needed.

Windows and file order follow Keras: window i starts at start_index + i * sequence_stride and takes
every sampling_rate-th step; files are listed per class (class folders in alphanumeric order),
shuffled with `seed`, then split (validation is the last validation_split of them).
Not here: tf.data, image/audio loaders, multiprocessing workers (PyDataset's workers are ignored).
"""

import math
import os

import numpy as np


def _int_arg(fn, name, value, low, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{fn}: {name} must be an int >= {low}{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


class ArrayBatches:
    """x (N, ...) [, y (N, ...)] -> batches of batch_size, reshuffled every pass when shuffle."""

    def __init__(self, x, y, batch_size, shuffle=False, seed=None):
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.x[idx] if self.y is None else (self.x[idx], self.y[idx])


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1, sampling_rate=1,
                                  batch_size=128, shuffle=False, seed=None, start_index=None, end_index=None):
    """data (T, ...) -> batches of windows (B, sequence_length, ...); window i's target is
    targets[start_index + its start] (targets=None: batches of windows alone, for predict)."""
    fn = "timeseries_dataset_from_array"
    data = np.asarray(data)
    sequence_length = _int_arg(fn, "sequence_length", sequence_length, 1)
    sequence_stride = _int_arg(fn, "sequence_stride", sequence_stride, 1)
    sampling_rate = _int_arg(fn, "sampling_rate", sampling_rate, 1)
    batch_size = _int_arg(fn, "batch_size", batch_size, 1)
    start_index = _int_arg(fn, "start_index", start_index, 0, allow_none=True) or 0
    end_index = _int_arg(fn, "end_index", end_index, 1, allow_none=True)
    end_index = len(data) if end_index is None else end_index
    if start_index >= end_index or end_index > len(data):
        raise ValueError(f"{fn}: need 0 <= start_index < end_index <= len(data)={len(data)}, got "
                         f"start_index={start_index}, end_index={end_index}")
    # as Keras: the last window must end before end_index
    num_seqs = end_index - start_index - sequence_length * sampling_rate + 1
    if targets is not None:
        targets = np.asarray(targets)
        num_seqs = min(num_seqs, len(targets))
    if num_seqs < 1:
        raise ValueError(f"{fn}: no window of sequence_length={sequence_length} x sampling_rate="
                         f"{sampling_rate} fits in data[{start_index}:{end_index}]")
    starts = start_index + np.arange(0, num_seqs, sequence_stride)  # (N,)
    windows = data[starts[:, None] + sampling_rate * np.arange(sequence_length)[None, :]]  # (N, L, ...)
    y = None if targets is None else targets[starts]
    return ArrayBatches(windows, y, batch_size, shuffle, seed)


def _label_array(labels, label_mode, num_classes, fn):
    labels = np.asarray(labels, np.int64)
    if label_mode == "int":
        return labels
    if label_mode == "categorical":
        return np.eye(num_classes, dtype=np.float32)[labels]
    if label_mode == "binary":
        if num_classes != 2:
            raise ValueError(f"{fn}: label_mode='binary' needs exactly 2 classes, found {num_classes}")
        return labels.astype(np.float32)[:, None]
    raise ValueError(f"{fn}: label_mode must be 'int', 'categorical', 'binary' or None, got {label_mode!r}")


class TextBatches(ArrayBatches):
    """ArrayBatches of texts (B,) (object strings) and labels, with Keras' `class_names`."""

    def __init__(self, x, y, batch_size, shuffle, seed, class_names, file_paths):
        super().__init__(x, y, batch_size, shuffle, seed)
        self.class_names, self.file_paths = class_names, file_paths


def text_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None,
                                batch_size=32, shuffle=True, seed=None, validation_split=None, subset=None):
    """directory/<class>/*.txt -> batches (texts (B,), labels (B,)); labels="inferred" numbers the
    class folders in alphanumeric order. subset='both' returns (training, validation)."""
    fn = "text_dataset_from_directory"
    if not os.path.isdir(directory):
        raise ValueError(f"{fn}: directory {directory!r} does not exist or is not a folder")
    batch_size = _int_arg(fn, "batch_size", batch_size, 1)
    if validation_split is not None and not 0 < validation_split < 1:
        raise ValueError(f"{fn}: validation_split must be a float in (0, 1), got {validation_split!r}")
    if (validation_split is None) != (subset is None) or subset not in (None, "training", "validation", "both"):
        raise ValueError(f"{fn}: give validation_split together with subset='training', 'validation' or "
                         f"'both' (or neither); got validation_split={validation_split!r}, subset={subset!r}")
    if validation_split is not None and shuffle and seed is None:
        raise ValueError(f"{fn}: validation_split with shuffle=True needs a seed, so that the "
                         f"training and validation subsets do not overlap")
    if labels == "inferred":
        found = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
        if class_names is not None and sorted(class_names) != found:
            raise ValueError(f"{fn}: class_names {class_names!r} do not match the subfolders {found}")
        class_names = list(class_names) if class_names is not None else found
        paths, y = [], []
        for k, name in enumerate(class_names):
            folder = os.path.join(directory, name)
            for root, _, files in sorted(os.walk(folder)):
                for f in sorted(files):
                    if f.lower().endswith(".txt"):
                        paths.append(os.path.join(root, f))
                        y.append(k)
    else:
        paths = sorted(os.path.join(root, f) for root, _, files in os.walk(directory)
                       for f in files if f.lower().endswith(".txt"))
        if labels is None:
            y, label_mode, class_names = None, None, None
        else:
            y = list(labels)
            if len(y) != len(paths):
                raise ValueError(f"{fn}: labels has {len(y)} entries, but {directory!r} holds "
                                 f"{len(paths)} .txt files (sorted by path)")
            class_names = None
    if not paths:
        raise ValueError(f"{fn}: no .txt files found under {directory!r}")
    order = np.arange(len(paths))
    if shuffle:
        np.random.default_rng(seed).shuffle(order)
    paths = [paths[i] for i in order]
    texts = []
    for p in paths:
        with open(p, encoding="utf-8") as f:
            texts.append(f.read())
    x = np.array(texts, dtype=object)
    if y is not None and label_mode is not None:
        num_classes = len(class_names) if class_names is not None else int(max(y)) + 1
        y = _label_array(np.asarray(y)[order], label_mode, num_classes, fn)
    elif y is not None:
        y = None  # label_mode=None: texts only
    n_val = 0 if validation_split is None else int(validation_split * len(paths))
    if validation_split is not None and not 0 < n_val < len(paths):
        raise ValueError(f"{fn}: validation_split={validation_split} of {len(paths)} files leaves "
                         f"{n_val} for validation and {len(paths) - n_val} for training; both need >= 1")

    def part(s, later_seed):
        return TextBatches(x[s], None if y is None else y[s], batch_size, shuffle, later_seed,
                           class_names, paths[s])
    if subset is None:
        return part(slice(None), seed)
    train, val = part(slice(None, len(paths) - n_val), seed), part(slice(len(paths) - n_val, None), seed)
    return {"training": train, "validation": val, "both": (train, val)}[subset]


class PyDataset:
    """Keras' PyDataset (formerly Sequence): subclass it with __len__ (batches per epoch) and
    __getitem__(i) -> (x, y) batch i; on_epoch_end() runs after every full pass."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers, self.use_multiprocessing, self.max_queue_size = workers, use_multiprocessing, max_queue_size

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__}: a PyDataset must define __len__ (batches per epoch)")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__}: a PyDataset must define __getitem__(index) -> (x, y)")

    def on_epoch_end(self):
        """Called after each full pass, e.g. to reshuffle."""

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]
        self.on_epoch_end()


__all__ = ["timeseries_dataset_from_array", "text_dataset_from_directory", "PyDataset"]
