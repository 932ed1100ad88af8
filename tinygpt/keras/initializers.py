"""Keras' default initial weights, as NumPy arrays drawn from an explicit Generator.

glorot_uniform for kernels, orthogonal for an LSTM's recurrent kernel, uniform(-0.05, 0.05) for
embeddings, zeros for biases: the same distributions as Keras (not the same numbers: its random
streams are TensorFlow's/JAX's). Below them, Keras' initializer objects (`GlorotUniform()`,
`RandomNormal(stddev=0.02)`, ...) and `get(name_or_object)`, which layers' `*_initializer=` read.
Not here: PyTorch-style defaults (tinygpt.nn), GPT-2's scheme, VarianceScaling's 'untruncated_normal'.
"""

import math

import numpy as np

from tinygpt.keras.utils import next_seed


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


# ----- Keras' initializer objects: `Dense(8, kernel_initializer="he_normal")` ------------------
def compute_fans(shape):
    """Keras' fans: (in, out) for a matrix; for a kernel of rank > 2 the leading axes are the
    receptive field, so a Conv1D kernel (K, C_in, C_out) has fan_in = K * C_in, fan_out = K * C_out."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """init(shape, rng=...) -> a float64 array of that shape (the layer casts it to float32).
    A `seed=` given to the initializer wins over the layer's stream, as in Keras."""

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None, rng=None):
        if self.seed is not None:
            rng = np.random.default_rng(self.seed)
        elif rng is None:
            rng = np.random.default_rng(next_seed())
        out = np.asarray(self.sample(tuple(int(d) for d in shape), rng), dtype=np.float64)
        return out if dtype is None else out.astype(dtype)

    def sample(self, shape, rng):
        raise NotImplementedError

    def get_config(self):
        return {k: v for k, v in vars(self).items()}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    def __init__(self):
        super().__init__()

    def sample(self, shape, rng):
        return np.zeros(shape)

    def get_config(self):
        return {}


class Ones(Zeros):
    def sample(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        super().__init__()
        self.value = float(value)

    def sample(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        if not minval < maxval:
            raise ValueError(f"RandomUniform: minval must be < maxval, got minval={minval!r}, maxval={maxval!r}")
        self.minval, self.maxval = float(minval), float(maxval)

    def sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        if not stddev > 0:
            raise ValueError(f"{type(self).__name__}: stddev must be > 0, got {stddev!r}")
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)


def _truncated(rng, shape, stddev):
    """Normal(0, stddev) redrawn until within 2 stddev, as Keras' truncated_normal."""
    out = rng.normal(0.0, stddev, shape)
    bad = np.abs(out) > 2 * stddev
    while bad.any():
        out[bad] = rng.normal(0.0, stddev, int(bad.sum()))
        bad = np.abs(out) > 2 * stddev
    return out


class TruncatedNormal(RandomNormal):
    def sample(self, shape, rng):
        return self.mean + _truncated(rng, shape, self.stddev)


class VarianceScaling(Initializer):
    """scale / fan (fan_in, fan_out or their mean) as the variance; uniform or truncated normal
    (whose stddev is corrected by 0.8796..., the stddev of a unit normal truncated at 2, as Keras)."""

    MODES, DISTRIBUTIONS = ("fan_in", "fan_out", "fan_avg"), ("uniform", "truncated_normal", "normal")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if mode not in self.MODES or distribution not in self.DISTRIBUTIONS or not scale > 0:
            raise ValueError(f"VarianceScaling: expected scale > 0, mode in {self.MODES}, distribution in "
                             f"{self.DISTRIBUTIONS}; got scale={scale!r}, mode={mode!r}, distribution={distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def sample(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "normal":
            return rng.normal(0.0, math.sqrt(variance), shape)
        return _truncated(rng, shape, math.sqrt(variance) / 0.87962566103423978)


def _scaling(name, scale, mode, distribution):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": f"VarianceScaling({scale}, {mode!r}, {distribution!r})."})


class GlorotUniform(VarianceScaling):
    """U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)): VarianceScaling(1, 'fan_avg', 'uniform')
    with the limit written as glorot_uniform writes it, so both draw the same numbers."""

    def __init__(self, seed=None):
        super().__init__(1.0, "fan_avg", "uniform", seed)

    def sample(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)

    def get_config(self):
        return {"seed": self.seed}


GlorotNormal = _scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(Initializer):
    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def sample(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal initializer needs a shape of rank >= 2, got {shape}")
        rows = math.prod(shape[:-1])  # Keras flattens the leading axes
        return self.gain * orthogonal((rows, shape[-1]), rng).reshape(shape)


ALIASES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_uniform": RandomUniform,
    "uniform": RandomUniform, "random_normal": RandomNormal, "normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal, "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal, "orthogonal": Orthogonal, "variance_scaling": VarianceScaling,
}
for _cls in set(ALIASES.values()):
    ALIASES[_cls.__name__] = _cls


def get(identifier):
    """A name ('he_normal', 'HeNormal'), an Initializer, a class, or a callable(shape, dtype=None)
    -> an initializer object to call as init(shape, rng=rng)."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, dict):  # {'class_name': 'HeNormal', 'config': {...}} from a saved config
        return from_config(identifier)
    if isinstance(identifier, str):
        if identifier not in ALIASES:
            raise ValueError(f"unknown initializer {identifier!r}; tinygpt.keras has "
                             f"{sorted(k for k in ALIASES if k.islower())} (and their class names)")
        return ALIASES[identifier]()
    if callable(identifier):  # a user's function(shape, dtype=None), as Keras allows
        return _Callable(identifier)
    raise TypeError(f"an initializer must be a name such as 'glorot_uniform', a "
                    f"keras.initializers object or a function(shape, dtype=None), got {identifier!r}")


class _Callable(Initializer):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def __call__(self, shape, dtype=None, rng=None):
        return np.asarray(self.fn(tuple(shape), dtype=dtype), dtype=np.float64)

    def get_config(self):
        raise ValueError(f"the initializer function {self.fn!r} cannot be saved in a config; "
                         f"pass a keras.initializers object or name instead")


def name_of(init):
    """The config entry for an initializer object: {'class_name': ..., 'config': {...}}."""
    return {"class_name": type(init).__name__, "config": init.get_config()}


def from_config(entry):
    """{'class_name': ..., 'config': {...}} -> the initializer object."""
    if entry.get("class_name") not in ALIASES:
        raise ValueError(f"unknown initializer in a config: {entry!r}; known: {sorted(ALIASES)}")
    return ALIASES[entry["class_name"]](**entry.get("config", {}))
