"""Batches from a Python generator or iterable, as Keras' fit(generator, steps_per_epoch=...) takes
them: each item is (x, y) (x may be a list or dict for a functional Model), or x alone for predict.

A generator is read on across epochs; steps_per_epoch batches make one epoch. Without it, an epoch
is one full pass: an iterable that can be iterated again (a list of batches, a keras-style Sequence
with __iter__) restarts every epoch; a generator, once exhausted, raises an error that says so.
A batch may carry a third item, its sample weights. Not here: tf.data, multiprocessing workers.
"""

import numpy as np

from tinygpt.tensor import Tensor

_END = object()  # what next() returns when the source is exhausted


def is_batch_stream(x):
    """True for a generator or iterable of batches; False for arrays and lists/dicts of arrays."""
    return not isinstance(x, (np.ndarray, list, tuple, dict, Tensor, str, bytes)) and hasattr(x, "__iter__")


def check_steps(steps, what):
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
        raise ValueError(f"{what} must be an int >= 1 (or None for one full pass), got {steps!r}")
    return steps


class BatchStream:
    """`steps` batches per epoch (None: until the source ends), from one iterator kept across epochs."""

    def __init__(self, source, steps, what="x"):
        self.source, self.steps, self.what = source, check_steps(steps, f"{what}'s steps"), what
        self.iterator = iter(source)
        self.reiterable = self.iterator is not source  # a list can restart; a generator cannot

    @property
    def steps_hint(self):
        """Batches per epoch if known (for the progress bar), else None."""
        return self.steps if self.steps is not None else (len(self.source) if hasattr(self.source, "__len__") else None)

    def epoch(self):
        """Yield the batches of one epoch; raise if the source has none left to give."""
        count = 0
        while self.steps is None or count < self.steps:
            batch = next(self.iterator, _END)
            if batch is _END and self.reiterable:
                self.iterator = iter(self.source)  # the next pass starts again at the first batch
                if self.steps is None and count:
                    return
                batch = next(self.iterator, _END)
            if batch is _END:
                if self.steps is None and count:
                    return
                raise ValueError(f"the generator given as {self.what} ran out of batches after "
                                 f"{count} this epoch; give steps_per_epoch (and steps / "
                                 f"validation_steps) no larger than what it yields, or make it loop "
                                 f"forever (while True: ... yield x, y) as Keras generators do")
            count += 1
            yield batch


def split_batch(batch, what, need_y=True):
    """(x, y) or (x, y, sample_weight) -> (x, y, sample_weight or None); for predict, x alone,
    (x,), (x, y) or (x, y, sample_weight) -> (x, None, None)."""
    if isinstance(batch, tuple) and len(batch) in (2, 3):
        return (batch if len(batch) == 3 else batch + (None,)) if need_y else (batch[0], None, None)
    if isinstance(batch, tuple) and len(batch) == 1:
        batch = batch[0]
    if need_y:
        raise ValueError(f"{what} must yield (x, y) or (x, y, sample_weight) tuples, got a {type(batch).__name__}")
    return batch, None, None
