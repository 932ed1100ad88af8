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

    As Keras: the Q of a QR decomposition of a Gaussian matrix, signs fixed so diag(R) > 0 (which
    makes Q uniformly distributed over orthogonal matrices). Gram-Schmidt below gives exactly that
    Q: column j is a's column j minus its projections on the columns before it, normalised."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q = np.empty_like(a)
    for j in range(a.shape[1]):
        v = a[:, j].copy()
        for _ in range(2):  # project out twice: once leaves rounding errors of order 1e-8 behind
            v -= q[:, :j] @ (q[:, :j].T @ v)
        q[:, j] = v / np.linalg.norm(v)
    # NOTE: not np.linalg.qr: threaded LAPACK on oversubscribed cores took ~2 s for (512, 128)
    # where this loop takes ~30 ms; the results agree to 1e-15 (tests/test_keras.py checks).
    return q.T if rows < cols else q


def random_uniform(shape, rng, minval=-0.05, maxval=0.05):
    return rng.uniform(minval, maxval, shape)


def zeros(shape, rng=None):
    return np.zeros(shape)
