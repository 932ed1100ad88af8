"""The public differentiable functions, `import tinygpt.functional as F`: one line per op into
`apply(<op>_forward, <op>_backward, ...)`, plus the checks that give bad input a clear error.

Composite functions (mean-squared error, masked_fill, ...) are built from primitives here and
need no backward of their own. Tensor methods and operators call these same functions.
Not here: the math (tinygpt/ops) or the graph (tinygpt/tensor.py).
"""

import numpy as np

from tinygpt.ops import attention as _attention
from tinygpt.ops import conv as _conv
from tinygpt.ops import dropout as _dropout
from tinygpt.ops import elementwise as _ew
from tinygpt.ops import layernorm as _ln
from tinygpt.ops import linear as _linear
from tinygpt.ops import lstm as _lstm
from tinygpt.ops import matmul as _mm
from tinygpt.ops import pool as _pool
from tinygpt.ops import reduce as _red
from tinygpt.ops import shape as _shape
from tinygpt.ops import softmax as _sm
from tinygpt.tensor import Tensor, apply


def tensor(data, requires_grad=False, dtype=None):
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _operand(x):
    """Tensors pass through; Python and NumPy scalars stay constants; lists and arrays become
    constant Tensors (float32 unless they are float64 arrays)."""
    if isinstance(x, (Tensor, int, float)):
        return x
    if isinstance(x, np.ndarray) and x.ndim == 0 or isinstance(x, np.generic):
        return x.item()
    return Tensor(x)


# ----- arithmetic -------------------------------------------------------------------------
def add(a, b): return apply(_ew.add_forward, _ew.add_backward, _operand(a), _operand(b))
def sub(a, b): return apply(_ew.sub_forward, _ew.sub_backward, _operand(a), _operand(b))
def mul(a, b): return apply(_ew.mul_forward, _ew.mul_backward, _operand(a), _operand(b))
def div(a, b): return apply(_ew.div_forward, _ew.div_backward, _operand(a), _operand(b))
def neg(x): return apply(_ew.neg_forward, _ew.neg_backward, x)
def pow(a, b): return apply(_ew.pow_forward, _ew.pow_backward, _operand(a), _operand(b))  # noqa: A001


# ----- pointwise nonlinearities -------------------------------------------------------------
def exp(x): return apply(_ew.exp_forward, _ew.exp_backward, x)
def log(x): return apply(_ew.log_forward, _ew.log_backward, x)
def sqrt(x): return apply(_ew.sqrt_forward, _ew.sqrt_backward, x)
def tanh(x): return apply(_ew.tanh_forward, _ew.tanh_backward, x)
def sigmoid(x): return apply(_ew.sigmoid_forward, _ew.sigmoid_backward, x)
def relu(x): return apply(_ew.relu_forward, _ew.relu_backward, x)
def gelu(x): return apply(_ew.gelu_forward, _ew.gelu_backward, x)


def clip(x, min=None, max=None):  # noqa: A002  (NumPy's names)
    return apply(_ew.clip_forward, _ew.clip_backward, x, low=min, high=max)


def where(condition, a, b):
    """Elementwise `a if condition else b`; the condition is a constant boolean mask."""
    condition = np.asarray(condition.data if isinstance(condition, Tensor) else condition)
    if condition.dtype != np.bool_:
        raise TypeError(f"where: condition must be boolean, got dtype {condition.dtype}")
    return apply(_ew.where_forward, _ew.where_backward, condition, _operand(a), _operand(b))


def masked_fill(x, mask, value):
    """x with `value` wherever `mask` is True (e.g. -inf above the diagonal before a softmax)."""
    return where(mask, value, x)


# ----- reductions ---------------------------------------------------------------------------
# NumPy's names (axis, keepdims) and PyTorch's (dim, keepdim) both work; give one of each pair.
def _pick(op, numpy_name, numpy_value, torch_name, torch_value, default):
    if numpy_value is not None and torch_value is not None:
        raise TypeError(f"{op}: give {numpy_name}= or {torch_name}=, not both")
    return default if numpy_value is None and torch_value is None else (
        numpy_value if torch_value is None else torch_value)


def _reduce_args(op, axis, keepdims, dim, keepdim):
    return (_pick(op, "axis", axis, "dim", dim, None),
            _pick(op, "keepdims", keepdims, "keepdim", keepdim, False))


def sum(x, axis=None, keepdims=None, *, dim=None, keepdim=None):  # noqa: A001
    axis, keepdims = _reduce_args("sum", axis, keepdims, dim, keepdim)
    return apply(_red.sum_forward, _red.sum_backward, x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=None, *, dim=None, keepdim=None):
    axis, keepdims = _reduce_args("mean", axis, keepdims, dim, keepdim)
    return apply(_red.mean_forward, _red.mean_backward, x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=None, *, dim=None, keepdim=None):  # noqa: A001
    """The largest values (NumPy's max): unlike torch.max(x, dim), no indices are returned."""
    axis, keepdims = _reduce_args("max", axis, keepdims, dim, keepdim)
    return apply(_red.max_forward, _red.max_backward, x, axis=axis, keepdims=keepdims)


def var(x, axis=None, keepdims=None, ddof=0, *, dim=None, keepdim=None):
    """NumPy's var: divides by (count - ddof), so ddof=0 is the biased variance; torch.var's
    default divides by count - 1 (pass ddof=1 for that)."""
    axis, keepdims = _reduce_args("var", axis, keepdims, dim, keepdim)
    return apply(_red.var_forward, _red.var_backward, x, axis=axis, keepdims=keepdims, ddof=ddof)


# ----- matrix product and shapes -------------------------------------------------------------
def matmul(a, b): return apply(_mm.matmul_forward, _mm.matmul_backward, _operand(a), _operand(b))


def linear(x, weight, bias=None):
    """x: (..., in), weight: (in, out), bias: (out,) or None -> (..., out) = x @ weight + bias, one op."""
    return apply(_linear.linear_forward, _linear.linear_backward, x, weight, bias)


def reshape(x, shape):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return apply(_shape.reshape_forward, _shape.reshape_backward, x, shape=shape)


def transpose(x, axes=None):
    return apply(_shape.transpose_forward, _shape.transpose_backward, x, axes=axes)


def permute(x, axes): return transpose(x, axes)


def getitem(x, index):
    """x[index] for ints, slices, None, Ellipsis, integer arrays and boolean masks."""
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    elif isinstance(index, list):
        index = np.asarray(index)
    return apply(_shape.getitem_forward, _shape.getitem_backward, x, index=index)


def embedding(input, weight):  # noqa: A002  (PyTorch's argument names and order)
    """input: integer (...), weight: (V, C) -> (..., C); each index picks one row of weight."""
    idx = np.asarray(input.data if isinstance(input, Tensor) else input)
    return apply(_shape.embedding_forward, _shape.embedding_backward, weight, idx)


def concatenate(tensors, axis=0):  # torch.concatenate's names too
    return apply(_shape.concatenate_forward, _shape.concatenate_backward,
                 *[_operand(t) for t in tensors], axis=axis)


def stack(tensors, dim=None, *, axis=None):
    axis = _pick("stack", "axis", axis, "dim", dim, 0)
    return apply(_shape.stack_forward, _shape.stack_backward, *[_operand(t) for t in tensors], axis=axis)


def split(x, sections, axis=-1):
    """A tuple of pieces of x along `axis`: `sections` equal parts, or cut at the given indices."""
    if not isinstance(sections, (int, np.integer)):
        sections = list(sections)
    return apply(_shape.split_forward, _shape.split_backward, x, sections=sections, axis=axis)


# ----- probabilities and losses --------------------------------------------------------------
def _check_axis(op, x, axis):
    """A one-axis argument within x's dimensions, or a ValueError naming the op (not NumPy's)."""
    ndim = np.ndim(x.data if isinstance(x, Tensor) else x)
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis={axis!r} is out of range for a tensor with {ndim} "
                         f"dimensions; expected an int in [{-ndim}, {ndim - 1}]")


def softmax(input, dim=None, *, axis=None):  # noqa: A002  (PyTorch's names; NumPy's axis too)
    """Probabilities along `dim` (default the last axis)."""
    axis = _pick("softmax", "axis", axis, "dim", dim, -1)
    _check_axis("softmax", input, axis)
    return apply(_sm.softmax_forward, _sm.softmax_backward, input, axis=axis)


def log_softmax(input, dim=None, *, axis=None):  # noqa: A002
    axis = _pick("log_softmax", "axis", axis, "dim", dim, -1)
    _check_axis("log_softmax", input, axis)
    return apply(_sm.log_softmax_forward, _sm.log_softmax_backward, input, axis=axis)


def cross_entropy(logits, targets, ignore_index=-100, reduction="mean"):
    """logits: (..., V); targets: integer class ids (...) or probabilities (..., V) -> loss.

    reduction 'mean' (over the targets not equal to ignore_index), 'sum', or 'none' (shape (...)).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    t = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    lead, vocab = logits.shape[:-1], logits.shape[-1]
    if t.dtype.kind in "iu":
        if t.shape != lead:
            raise ValueError(f"cross_entropy: integer targets of shape {t.shape} do not match "
                             f"logits of shape {logits.shape}; expected targets of shape {lead}")
        bad = (t != ignore_index) & ((t < 0) | (t >= vocab))
        if bad.any():
            raise ValueError(f"cross_entropy: target {t[bad].flat[0]} is out of range for "
                             f"{vocab} classes (valid: 0..{vocab - 1}, or ignore_index={ignore_index})")
        flat_t = t.reshape(-1)
    elif t.dtype.kind == "f":
        if t.shape != logits.shape:
            raise ValueError(f"cross_entropy: probability targets of shape {t.shape} must match "
                             f"logits of shape {logits.shape}")
        flat_t = t.reshape(-1, vocab).astype(logits.dtype, copy=False)
    else:
        raise TypeError(f"cross_entropy: targets must be integers or probabilities, got {t.dtype}")
    flat = reshape(logits, (-1, vocab))
    loss = apply(_sm.cross_entropy_forward, _sm.cross_entropy_backward, flat, flat_t,
                 ignore_index=ignore_index, reduction=reduction)
    return reshape(loss, lead) if reduction == "none" else loss


def binary_cross_entropy(probs, targets, eps=1e-7):
    """Mean of -(t log p + (1 - t) log(1 - p)); p is clipped to [eps, 1 - eps] to keep log finite."""
    p = clip(probs, eps, 1.0 - eps)
    t = _operand(targets)
    return neg(mean(add(mul(t, log(p)), mul(sub(1.0, t), log(sub(1.0, p))))))


def mse(pred, target):
    """Mean squared error."""
    d = sub(pred, _operand(target))
    return mean(mul(d, d))


# ----- layers as functions -------------------------------------------------------------------
def layer_norm(x, weight, bias=None, eps=1e-5):
    """Normalise the last axis to mean 0, variance 1, then scale by weight and shift by bias."""
    c = x.shape[-1]
    if weight.shape != (c,) or (bias is not None and bias.shape != (c,)):
        raise ValueError(f"layer_norm: weight {weight.shape} and bias "
                         f"{None if bias is None else bias.shape} must both be ({c},) for x {x.shape}")
    if bias is None:
        return apply(_ln.layernorm_forward, _ln.layernorm_backward, x, weight, None, eps=eps)
    return apply(_ln.layernorm_forward, _ln.layernorm_backward, x, weight, bias, eps=eps)


def dropout(x, p, rng, training=True):
    """Zero elements with probability p during training (scaling the rest); identity otherwise."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x
    return apply(_dropout.dropout_forward, _dropout.dropout_backward, x, p=p, rng=rng)


def scaled_dot_product_attention(q, k, v, causal=True, scale=None):
    """q: (B, nh, Tq, hs), k, v: (B, nh, Tk, hs) -> (B, nh, Tq, hs) = softmax(Q Kᵀ/√hs) V.

    With causal=True query i sees keys up to its own position; when Tq < Tk (a KV cache) the
    queries are taken to be the last Tq positions.
    """
    if q.ndim != 4 or k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"scaled_dot_product_attention: expected q (B, nh, Tq, hs) and k, v "
                         f"(B, nh, Tk, hs) with matching B, nh, hs; got q {q.shape}, k {k.shape}, "
                         f"v {v.shape}")
    if causal and q.shape[2] > k.shape[2]:
        raise ValueError(f"scaled_dot_product_attention: causal attention needs Tq <= Tk, got "
                         f"Tq={q.shape[2]}, Tk={k.shape[2]}")
    return apply(_attention.attention_forward, _attention.attention_backward, q, k, v,
                 causal=causal, scale=scale)


def causal_self_attention(qkv, n_head):
    """qkv: (B, T, 3C), queries, keys and values of all heads side by side -> (B, T, C).

    The same as splitting qkv into q, k, v, each (B, T, C) -> (B, nh, T, hs), running
    scaled_dot_product_attention(causal=True) and merging the heads back, but as one op."""
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"causal_self_attention: expected qkv (B, T, 3 * n_embd) with n_embd "
                         f"divisible by n_head={n_head}, got shape {qkv.shape}")
    return apply(_attention.causal_self_attention_forward, _attention.causal_self_attention_backward,
                 qkv, n_head=n_head)


def conv1d(x, w, stride=1, dilation=1, pad_left=0, pad_right=0):
    """x: (B, T, C_in), w: (K, C_in, C_out) -> (B, T_out, C_out), batch and channels last as Keras."""
    return apply(_conv.conv1d_forward, _conv.conv1d_backward, x, w, stride=stride, dilation=dilation,
                 pad_left=pad_left, pad_right=pad_right)


def max_pool1d(x, pool_size, stride=None, pad_left=0, pad_right=0):
    """x: (B, T, C) -> (B, T_out, C): the max of each window of pool_size steps (padding never wins)."""
    return apply(_pool.maxpool1d_forward, _pool.maxpool1d_backward, x, pool_size=pool_size,
                 stride=stride or pool_size, pad_left=pad_left, pad_right=pad_right)


def avg_pool1d(x, pool_size, stride=None, pad_left=0, pad_right=0):
    """x: (B, T, C) -> (B, T_out, C): the mean of each window's real (unpadded) steps."""
    return apply(_pool.avgpool1d_forward, _pool.avgpool1d_backward, x, pool_size=pool_size,
                 stride=stride or pool_size, pad_left=pad_left, pad_right=pad_right)


def lstm(x, h0, c0, w_ih, w_hh, b):
    """One LSTM layer over a sequence: x (B, T, I) -> (out (B, T, D), h_T (B, D), c_T (B, D))."""
    batch, _, features = x.shape
    d = w_hh.shape[0]
    expected = {"h0": (h0.shape, (batch, d)), "c0": (c0.shape, (batch, d)),
                "w_ih": (w_ih.shape, (features, 4 * d)), "w_hh": (w_hh.shape, (d, 4 * d)),
                "b": (b.shape, (4 * d,))}
    for name, (got, want) in expected.items():
        if got != want:
            raise ValueError(f"lstm: {name} has shape {got}, expected {want} for x {x.shape} "
                             f"and hidden size {d}")
    return apply(_lstm.lstm_forward, _lstm.lstm_backward, x, h0, c0, w_ih, w_hh, b)

