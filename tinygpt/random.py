"""The default random stream: what F.dropout draws from when it is given no generator, as torch's
functions draw from torch's global generator. It starts from a fixed seed, so a run is repeatable;
`manual_seed(seed)` restarts it. Not here: layers and models, which take an `rng` of their own.
"""

import numpy as np

_DEFAULT_SEED = 0
_default = np.random.default_rng(_DEFAULT_SEED)


def manual_seed(seed):
    """Restart the default stream from `seed` (an int) and return its np.random.Generator."""
    global _default
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int, got {seed!r}")
    _default = np.random.default_rng(int(seed))
    return _default


def default_generator():
    """The np.random.Generator F.dropout uses when called without generator=."""
    return _default
