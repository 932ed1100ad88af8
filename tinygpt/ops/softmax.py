"""Softmax, log-softmax and cross-entropy, the ops that turn logits into probabilities and a loss.

Every one subtracts the row maximum first: exp() of a logit of 1e4 overflows, but exp(x - max)
never exceeds 1, and softmax does not change when a constant is added to a row. Cross-entropy is
fused with log-softmax (one pass, probabilities never materialised for the loss itself).
Not here: attention's masked softmax, which lives inside the fused attention op (attention.py).
"""

import numpy as np

from tinygpt.backend import kernel


@kernel
def softmax_forward(x, axis=-1):
    """x: (..., V) -> out: (..., V), each row along `axis` positive and summing to 1"""
    shifted = x - np.max(x, axis=axis, keepdims=True)  # the max-shift: largest exp() is 1
    e = np.exp(shifted)
    out = e / np.sum(e, axis=axis, keepdims=True)
    return out, (out, axis)


@kernel
def softmax_backward(dout, cache):
    """dout: (..., V) -> dx: (..., V)"""
    out, axis = cache
    # dx_i = sum_j dout_j * out_j (delta_ij - out_i) = out_i * (dout_i - sum_j dout_j out_j)
    return out * (dout - np.sum(dout * out, axis=axis, keepdims=True))


@kernel
def log_softmax_forward(x, axis=-1):
    """x: (..., V) -> out: (..., V) = x - logsumexp(x)"""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
    return out, (out, axis)


@kernel
def log_softmax_backward(dout, cache):
    """dout: (..., V) -> dx: (..., V)"""
    out, axis = cache
    # out_i = x_i - lse(x), d lse / d x_j = softmax_j = exp(out_j)
    return dout - np.exp(out) * np.sum(dout, axis=axis, keepdims=True)


@kernel
def cross_entropy_forward(logits, targets, ignore_index=-100, reduction="mean"):
    """logits: (N, V), targets: int (N,) or probabilities (N, V) -> loss: () for mean/sum, (N,) for none

    Integer targets equal to `ignore_index` add nothing and are not counted in the mean.
    Probability targets (one-hot or soft, rows summing to 1) give -sum(t * log_softmax(logits)).
    """
    n, v = logits.shape
    row_max = np.max(logits, axis=1, keepdims=True)
    lse = row_max + np.log(np.sum(np.exp(logits - row_max), axis=1, keepdims=True))  # (N, 1)
    if targets.ndim == 1:
        keep = targets != ignore_index  # (N,)
        safe = np.where(keep, targets, 0)
        picked = logits[np.arange(n), safe]  # (N,)
        losses = np.where(keep, lse[:, 0] - picked, 0.0).astype(logits.dtype, copy=False)
        count = int(keep.sum())
    else:
        keep = None
        losses = np.sum(targets * (lse - logits), axis=1).astype(logits.dtype, copy=False)
        count = n
    if reduction == "mean":
        # NOTE: with every target ignored this is 0/0 = nan, as in PyTorch: never hidden
        loss = np.asarray(losses.sum() / count if count else np.nan, dtype=logits.dtype)
    elif reduction == "sum":
        loss = np.asarray(losses.sum(), dtype=logits.dtype)
    else:
        loss = losses
    return loss, (logits, lse, targets, keep, reduction, count)


@kernel
def cross_entropy_backward(dout, cache):
    """dout: () or (N,) -> dlogits: (N, V), None for the targets"""
    logits, lse, targets, keep, reduction, count = cache
    probs = np.exp(logits - lse)  # (N, V), recomputed rather than kept from forward
    if targets.ndim == 1:
        # loss_n = lse_n - logits[n, t_n]: d/dlogits = softmax - one_hot(t)
        n = logits.shape[0]
        probs[np.arange(n), np.where(keep, targets, 0)] -= 1.0
        probs *= keep[:, None]
    else:
        # loss_n = sum_v t_nv (lse_n - logits_nv): d/dlogits = softmax * sum(t) - t
        probs = probs * np.sum(targets, axis=1, keepdims=True) - targets
    if reduction == "mean":
        scale = dout / count if count else dout * np.nan
    elif reduction == "sum":
        scale = dout
    else:
        scale = dout[:, None]
    return (probs * scale).astype(logits.dtype, copy=False), None
