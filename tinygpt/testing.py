"""`gradcheck`: compare the gradients backward() computes with central finite differences.

Use it on your own functions: `gradcheck(lambda x, w: (x @ w).tanh(), [x, w])`. Inputs are taken
in float64 (float32 rounding would swamp the differences). The output is projected on fixed
random weights before differencing, because the gradient of a plain `.sum()` hides wrong backward
passes (softmax's is zero whatever the backward says). Not here: the property tests themselves.
"""

import numpy as np

from tinygpt.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by gradcheck with the input, the index and both gradient values."""


# NOTE: not 0. Projection weights equal to a test's `default_rng(0)` inputs make a^T w symmetric,
# and then a transposed matmul gradient passes.
PROJECTION_SEED = 0x5EED


def gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=PROJECTION_SEED, wrt=None):
    """Check d f(*inputs) / d input for every float input (or those listed in `wrt` by position).

    f takes Tensors and returns a Tensor (or a tuple of Tensors). Integer inputs are passed through
    unchanged. Returns True, or raises GradcheckError naming the first mismatch.
    """
    arrays = [np.asarray(x.data if isinstance(x, Tensor) else x) for x in inputs]
    arrays = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    check = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else list(wrt)
    rng = np.random.default_rng(seed)
    projections = None

    def outputs(values, track):
        nonlocal projections
        tensors = [Tensor(a, requires_grad=(track and i in check)) for i, a in enumerate(values)]
        outs = f(*tensors)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        if projections is None:  # fixed random weights, one array per output
            projections = [rng.standard_normal(o.shape) for o in outs]
        return outs, tensors

    outs, tensors = outputs(arrays, track=True)
    total = None
    for out, w in zip(outs, projections):
        term = (out * w).sum()
        total = term if total is None else total + term
    total.backward()
    for i in check:
        analytic = tensors[i].grad if tensors[i].grad is not None else np.zeros_like(arrays[i])
        numeric = np.zeros_like(arrays[i])
        for index in np.ndindex(arrays[i].shape):
            original = arrays[i][index]
            arrays[i][index] = original + eps
            plus = [o.data.copy() for o in outputs(arrays, track=False)[0]]  # copies: f may return
            arrays[i][index] = original - eps  # a view of its input (reshape, slicing)
            minus = [o.data.copy() for o in outputs(arrays, track=False)[0]]
            arrays[i][index] = original
            numeric[index] = sum(np.sum(w * _difference(p, m)) for w, p, m
                                 in zip(projections, plus, minus)) / (2 * eps)
        close = np.isclose(analytic, numeric, atol=atol, rtol=rtol)
        if not close.all():
            bad = tuple(int(j) for j in np.argwhere(~close)[0])
            raise GradcheckError(
                f"gradient of input {i} (shape {arrays[i].shape}) is wrong at index {bad}: "
                f"backward gives {analytic[bad]:.6g}, finite differences give {numeric[bad]:.6g} "
                f"({int((~close).sum())} of {close.size} entries differ; max |difference| "
                f"{np.max(np.abs(analytic - numeric)):.3g})")
    return True


def _difference(plus, minus):
    """plus - minus, elementwise before projecting: an output that did not move (a -1e9 or -inf
    mask) then contributes exactly 0 instead of swamping the step in a large sum."""
    with np.errstate(invalid="ignore"):
        return np.where(plus == minus, 0.0, plus - minus)
