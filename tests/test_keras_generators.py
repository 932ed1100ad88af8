"""fit / evaluate / predict on a generator or iterable of (x, y) batches; keras.utils helpers."""

import numpy as np
import pytest

import tinygpt.keras as keras
from tinygpt import data
from tinygpt.keras.layers import Dense


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, x @ np.array([[1.0], [-1.0], [2.0]], dtype=np.float32)


def _model():
    model = keras.Sequential([keras.Input(shape=(3,)), Dense(1, seed=0)], seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def test_fit_on_an_endless_generator_takes_steps_per_epoch_batches_and_matches_arrays():
    x, y = _data()
    drawn = []

    def batches():
        while True:  # the Keras idiom: a generator that loops forever
            for start in range(0, len(x), 16):
                drawn.append(start)
                yield x[start:start + 16], y[start:start + 16]

    gen_model, array_model = _model(), _model()
    history = gen_model.fit(batches(), steps_per_epoch=4, epochs=3, verbose=0)
    array_model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    assert len(drawn) == 12 and len(history.history["loss"]) == 3
    assert history.history["loss"][-1] < history.history["loss"][0]
    # the same batches in the same order: the same weights as fit on the arrays without shuffling
    for a, b in zip(gen_model.get_weights(), array_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    pairs = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]  # a list: re-iterable
    assert gen_model.evaluate(iter(pairs), steps=4) == pytest.approx(gen_model.evaluate(x, y), rel=1e-5)
    np.testing.assert_allclose(gen_model.predict(iter(pairs), steps=4), gen_model.predict(x), rtol=1e-6)


def test_fit_on_a_list_of_batches_restarts_each_epoch_and_validates_on_a_generator():
    x, y = _data()
    pairs = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    model = _model()
    history = model.fit(_Batches(pairs), epochs=2, verbose=0,
                        validation_data=(b for b in pairs), validation_steps=2)
    assert len(history.history["val_loss"]) == 2


class _Batches:
    """A keras.utils.Sequence-like iterable: len() and a fresh iterator each time."""

    def __init__(self, pairs):
        self.pairs = pairs

    def __len__(self):
        return len(self.pairs)

    def __iter__(self):
        return iter(self.pairs)


def test_an_exhausted_generator_and_misplaced_arguments_raise_errors_that_say_so():
    x, y = _data()
    model = _model()
    once = ((x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16))
    with pytest.raises(ValueError, match="ran out of batches after 4"):
        model.fit(once, steps_per_epoch=5, verbose=0)
    with pytest.raises(ValueError, match="sample_weight has shape"):
        model.fit(iter([(x, y, np.ones(len(x) + 1))]), verbose=0)
    with pytest.raises(ValueError, match="y, sample_weight and validation_split must be left out"):
        model.fit(iter([(x, y)]), y, verbose=0)


def test_utils_pad_sequences_and_to_categorical_are_keras_utils():
    assert keras.utils.pad_sequences is data.pad_sequences
    assert keras.utils.pad_sequences([[1, 2, 3], [4]], maxlen=2).tolist() == [[2, 3], [0, 4]]
    np.testing.assert_array_equal(keras.utils.to_categorical([0, 2], num_classes=3), [[1, 0, 0], [0, 0, 1]])
