"""The kernel registry: every NumPy reference by name, and the faster version that runs in its place.

An op in tinygpt/ops declares its forward and backward with ``@kernel``. Calling the decorated
function runs the implementation chosen for that name: the C version (tinygpt/kernels/c_kernels.py),
the Numba version (tinygpt/kernels/numba_kernels.py) or the NumPy reference itself. A faster
version that cannot take an input returns ``NotImplemented`` and the reference runs instead.
``TINYGPT_BACKEND=auto|numpy|numba|c`` is read here and only here; ``use()`` overrides it.
Not here: the kernels themselves, autograd (tinygpt/tensor.py), or any timing (bench/kernels.py).
"""

import contextlib
import functools
import importlib
import os

BACKENDS = ("numpy", "numba", "c")
MODES = ("auto",) + BACKENDS

# The order `auto` tries implementations in, for every kernel: C, then Numba, then the reference.
# matmul too runs on our C sgemm rather than NumPy's BLAS: OpenBLAS's spinning thread pool beside
# our OpenMP team makes a small GPT's training step several times slower (bench/RESULTS.md).
_AUTO_ORDER = ("c", "numba", "numpy")

_KERNEL_MODULES = {"numba": "tinygpt.kernels.numba_kernels", "c": "tinygpt.kernels.c_kernels"}

_references = {}  # name -> NumPy reference function
_chosen = {}  # name -> (backend, function); cleared whenever the mode changes
_modules = {}  # backend -> imported module, or the reason it could not be imported
_observer = None  # tinygpt.profiler's hook while a profile is on: it runs the kernel and notes which ran


def _mode_from_environment():
    mode = os.environ.get("TINYGPT_BACKEND", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"TINYGPT_BACKEND={mode!r} is not one of {', '.join(MODES)}")
    return mode


_mode = _mode_from_environment()


def kernel(reference):
    """Register `reference` under its name; return a function that runs the chosen implementation."""
    name = reference.__name__
    if name in _references:
        raise ValueError(f"kernel {name!r} is registered twice")
    _references[name] = reference

    @functools.wraps(reference)
    def dispatch(*args, **kwargs):
        impl = _chosen.get(name) or _choose(name)
        if _observer is not None:
            return _observer(name, impl, reference, args, kwargs)
        fn = impl[1]
        if fn is not reference:
            result = fn(*args, **kwargs)
            if result is not NotImplemented:
                return result
        return reference(*args, **kwargs)

    dispatch.reference = reference
    return dispatch


def _module(backend):
    """The imported kernel module of `backend`, or a string saying why it is not available."""
    if backend not in _modules:
        try:
            _modules[backend] = importlib.import_module(_KERNEL_MODULES[backend])
        except Exception as error:  # a missing compiler or a broken Numba must not break tinygpt
            _modules[backend] = f"{type(error).__name__}: {error}"
    return _modules[backend]


def _choose(name):
    """Pick the implementation of kernel `name` for the current mode and remember it."""
    reference = _references[name]
    order = ("numpy",) if _mode == "numpy" else (
        (_mode,) if _mode != "auto" else _AUTO_ORDER)
    chosen = ("numpy", reference)
    for backend in order:
        if backend == "numpy":
            break
        module = _module(backend)
        if isinstance(module, str):
            if _mode != "auto":
                raise RuntimeError(f"TINYGPT_BACKEND={_mode!r} is not available: {module}. "
                                   f"Use TINYGPT_BACKEND=auto to fall back to what is installed.")
            continue
        fn = getattr(module, name, None)
        if fn is not None:
            chosen = (backend, fn)
            break
    _chosen[name] = chosen
    return chosen


def set_backend(mode):
    """Switch every kernel to `mode` ('auto', 'numpy', 'numba' or 'c') for the rest of the process."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"backend {mode!r} is not one of {', '.join(MODES)}")
    if mode in _KERNEL_MODULES and isinstance(_module(mode), str):
        raise RuntimeError(f"backend {mode!r} is not available: {_module(mode)}")
    _mode = mode
    _chosen.clear()


def get_backend():
    return _mode


@contextlib.contextmanager
def use(mode):
    """`with tinygpt.backend.use('numpy'):` runs the block on one backend, then restores the old one."""
    previous = _mode
    set_backend(mode)
    try:
        yield
    finally:
        set_backend(previous)


def implementation(name):
    """(backend, function) that kernel `name` runs in the current mode."""
    if name not in _references:
        raise KeyError(f"no kernel named {name!r}; known kernels: {', '.join(sorted(_references))}")
    return _chosen.get(name) or _choose(name)


def availability():
    """{backend: (available, reason)} for the compiled backends; numpy is always available."""
    result = {"numpy": (True, "reference")}
    for backend in _KERNEL_MODULES:
        module = _module(backend)
        result[backend] = (not isinstance(module, str), "ok" if not isinstance(module, str) else module)
    return result


def report():
    """One row per kernel: (name, chosen backend, backends that have a version of it)."""
    _import_all_ops()
    rows = []
    for name in sorted(_references):
        have = ["numpy"] + [b for b in _KERNEL_MODULES
                            if not isinstance(_module(b), str) and hasattr(_module(b), name)]
        rows.append((name, implementation(name)[0], have))
    return rows


def _import_all_ops():
    importlib.import_module("tinygpt.ops")


def main():
    """`python -m tinygpt.backend`: which implementation each kernel uses and why."""
    print(f"mode: {_mode} (set TINYGPT_BACKEND=auto|numpy|numba|c to change)")
    for backend, (ok, reason) in availability().items():
        print(f"  {backend:6s} {'available' if ok else 'NOT available'}: {reason}")
    print(f"{'kernel':28s} {'runs on':8s} implementations")
    for name, chosen, have in report():
        print(f"{name:28s} {chosen:8s} {', '.join(have)}")

