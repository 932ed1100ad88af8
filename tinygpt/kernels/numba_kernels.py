"""The Numba kernels, by the names of their NumPy references: what tinygpt/backend/ looks up.

Each lives in the numba_<family>.py file that mirrors tinygpt/ops/<family>.py; this module only
gathers them and offers `warmup()`, which compiles every one for float32 and times it. Compiled code
is cached on disk (cache=True), so only the first process after an edit pays for compiling.
Not here: matmul (NumPy's BLAS is faster than a Numba loop), or any float64 kernel.
"""

import time

import numpy as np

from .numba_adamw import adamw_update
from .numba_attention import attention_backward, attention_forward
from .numba_elementwise import gelu_backward, gelu_erf_backward, gelu_erf_forward, gelu_forward
from .numba_gru import gru_backward, gru_forward
from .numba_embedding import embedding_backward
from .numba_layernorm import layernorm_backward, layernorm_forward
from .numba_lstm import lstm_backward, lstm_forward
from .numba_softmax import (cross_entropy_backward, cross_entropy_forward, log_softmax_backward,
                            log_softmax_forward, softmax_backward, softmax_forward)


def _float32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def warmup():
    """Compile (or load from the cache) every kernel for float32 inputs -> {kernel name: seconds}.

    The first call in a process pays for compiling, or for loading the cached machine code; a kernel
    timed here at more than a second or so was compiled, not loaded.
    """
    rng = np.random.default_rng(0)
    x, dx = _float32(rng, 3, 5), _float32(rng, 3, 5)
    q = _float32(rng, 1, 2, 3, 4)
    lstm_args = (_float32(rng, 2, 3, 4), _float32(rng, 2, 5), _float32(rng, 2, 5),
                 _float32(rng, 4, 20), _float32(rng, 5, 20), _float32(rng, 20))
    gru_args = (_float32(rng, 2, 3, 4), _float32(rng, 2, 5), _float32(rng, 4, 15), _float32(rng, 5, 15),
                _float32(rng, 15), _float32(rng, 15))
    caches = {}

    def forward(name, fn, *args):
        out, caches[name] = fn(*args)
        return out

    calls = {
        "attention_forward": lambda: forward("attention", attention_forward, q, q, q),
        "attention_backward": lambda: attention_backward(q, caches["attention"]),
        "softmax_forward": lambda: forward("softmax", softmax_forward, x),
        "softmax_backward": lambda: softmax_backward(dx, caches["softmax"]),
        "log_softmax_forward": lambda: forward("log_softmax", log_softmax_forward, x),
        "log_softmax_backward": lambda: log_softmax_backward(dx, caches["log_softmax"]),
        "cross_entropy_forward": lambda: forward("ce", cross_entropy_forward, x, np.array([0, 4, -100])),
        "cross_entropy_backward": lambda: cross_entropy_backward(np.float32(1.0), caches["ce"]),
        "layernorm_forward": lambda: forward("ln", layernorm_forward, x, dx[0], dx[1]),
        "layernorm_backward": lambda: layernorm_backward(dx, caches["ln"]),
        "gelu_forward": lambda: forward("gelu", gelu_forward, x),
        "gelu_backward": lambda: gelu_backward(dx, caches["gelu"]),
        "gelu_erf_forward": lambda: forward("gelu_erf", gelu_erf_forward, x),
        "gelu_erf_backward": lambda: gelu_erf_backward(dx, caches["gelu_erf"]),
        "lstm_forward": lambda: forward("lstm", lstm_forward, *lstm_args),
        "lstm_backward": lambda: lstm_backward((_float32(rng, 2, 3, 5), None, None), caches["lstm"]),
        "gru_forward": lambda: forward("gru", gru_forward, *gru_args),
        "gru_backward": lambda: gru_backward((_float32(rng, 2, 3, 5), None), caches["gru"]),
        "embedding_backward": lambda: embedding_backward(_float32(rng, 2, 3, 5), ((7, 5), np.array([[0, 6, 0], [1, 2, 6]]))),
        "adamw_update": lambda: adamw_update(x.copy(), dx, np.zeros_like(x), np.zeros_like(x),
                                             1e-3, 0.9, 0.999, 1e-8, 0.1, 1),
    }
    seconds = {}
    for name, call in calls.items():  # in order: each backward needs its forward's cache
        start = time.perf_counter()
        call()
        seconds[name] = time.perf_counter() - start
    return seconds
