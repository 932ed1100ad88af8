"""bench/keras_conv.py times the same model on both sides: with the same weights, the tinygpt.keras
Conv1D classifier and the PyTorch one give the same probabilities."""

import numpy as np
import pytest

from bench import keras_conv

SMALL = dict(keras_conv.SPEC, vocab=50, emb=8, filters=6, kernel=3, strides=2, hidden=5, T=20, batch=4)


def test_bench_conv_classifier_is_the_same_model_in_torch():
    torch = pytest.importorskip("torch")
    model = keras_conv.keras_model(SMALL, seed=0)
    x, _ = keras_conv.batches(SMALL, count=1)[0]
    theirs = keras_conv.torch_model(SMALL, model.get_weights()).eval()  # eval: dropout off, as in predict
    p = torch.sigmoid(theirs(torch.from_numpy(x))).detach().numpy()
    np.testing.assert_allclose(model.predict(x)[:, 0], p, rtol=1e-4, atol=1e-6)
    keras_conv.torch_conv(SMALL, model.get_weights())()  # one training step runs
    assert keras_conv.flops_per_sequence(SMALL) > 0
