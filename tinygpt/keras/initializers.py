"""Keras' default initial weights, as NumPy arrays drawn from an explicit Generator.

glorot_uniform for kernels, orthogonal for an LSTM's recurrent kernel, uniform(-0.05, 0.05) for
embeddings, zeros for biases: the same distributions as Keras (not the same numbers: its random
streams are TensorFlow's/JAX's). Not here: PyTorch-style defaults (tinygpt.nn) or GPT-2's scheme.
"""

import math

import numpy as np


def glorot_uniform(shape, rng):
    """(fan_in, fan_out) -> U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = shape
    limit = math.sqrt(6.0 / (fan_in + fan_out))  # keeps activation variance ~constant both ways
    return rng.uniform(-limit, limit, shape)


def orthogonal(shape, rng):
    """(rows, cols) -> a matrix whose rows (or columns, whichever are fewer) are orthonormal.

    As Keras: QR of a Gaussian matrix, with Q's columns sign-fixed by diag(R) so the result
    is uniformly distributed over orthogonal matrices rather than biased by the QR convention."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)  # q: (max, min) with orthonormal columns
    q *= np.sign(np.diag(r))
    return q.T if rows < cols else q


def random_uniform(shape, rng, minval=-0.05, maxval=0.05):
    return rng.uniform(minval, maxval, shape)


def zeros(shape, rng=None):
    return np.zeros(shape)
