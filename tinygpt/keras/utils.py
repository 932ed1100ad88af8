"""Keras' `utils` namespace: to_categorical and pad_sequences (tinygpt.data's, re-exported, as
Keras 3 has keras.utils.pad_sequences), set_random_seed, and the dataset helpers of
datasets_utils.py (timeseries_dataset_from_array, text_dataset_from_directory, PyDataset).

set_random_seed(s) makes every later model and layer that has no seed of its own draw its
initial weights, dropout masks and shuffles from a stream seeded with s, as in Keras.
Not here: any array code of its own.
"""

import random

import numpy as np

from tinygpt.data import pad_sequences, to_categorical

_global_rng = None  # set by set_random_seed; None means fresh OS entropy for every new seed


def set_random_seed(seed):
    """Seed Python's `random`, NumPy's global state and tinygpt.keras' default seed stream."""
    global _global_rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"set_random_seed: seed must be an int >= 0, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    _global_rng = np.random.default_rng(int(seed))


def next_seed():
    """The seed for the next model or layer created without one: drawn from set_random_seed's
    stream, or None (OS entropy: a different model every run, as in Keras) if it was never called."""
    return None if _global_rng is None else int(_global_rng.integers(2**63))


from tinygpt.keras.datasets_utils import (PyDataset, text_dataset_from_directory,  # noqa: E402
                                          timeseries_dataset_from_array)

__all__ = ["to_categorical", "pad_sequences", "set_random_seed", "PyDataset",
           "text_dataset_from_directory", "timeseries_dataset_from_array"]
