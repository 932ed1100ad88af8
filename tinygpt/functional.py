"""The public differentiable functions, `import tinygpt.functional as F`: one line per op into
`apply(<op>_forward, <op>_backward, ...)`, plus the checks that give bad input a clear error.

Composite functions (mse_loss, masked_fill, ...) are built from primitives here and need no
backward of their own. Tensor methods and operators call these same functions. Names PyTorch
also has take its argument order, names and defaults (docs/models.md lists the differences).
Not here: the math (tinygpt/ops) or the graph (tinygpt/tensor.py).
"""

import builtins
from collections import namedtuple

import numpy as np

from tinygpt import random as _random
from tinygpt.ops import attention as _attention
from tinygpt.ops import conv as _conv
from tinygpt.ops import dropout as _dropout
from tinygpt.ops import elementwise as _ew
from tinygpt.ops import layernorm as _ln
from tinygpt.ops import linear as _linear
from tinygpt.ops import gru as _gru
from tinygpt.ops import lstm as _lstm
from tinygpt.ops import matmul as _mm
from tinygpt.ops import pool as _pool
from tinygpt.ops import reduce as _red
from tinygpt.ops import shape as _shape
from tinygpt.ops import softmax as _sm
from tinygpt.tensor import Tensor, apply


def tensor(data, *, dtype=None, requires_grad=False):
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
# PyTorch's names: input, other (and alpha for add/sub: input + alpha * other)
def add(input, other, *, alpha=1):  # noqa: A002
    other = _operand(other) if alpha == 1 else mul(_operand(other), alpha)
    return apply(_ew.add_forward, _ew.add_backward, _operand(input), other)


def sub(input, other, *, alpha=1):  # noqa: A002
    other = _operand(other) if alpha == 1 else mul(_operand(other), alpha)
    return apply(_ew.sub_forward, _ew.sub_backward, _operand(input), other)


def mul(input, other): return apply(_ew.mul_forward, _ew.mul_backward, _operand(input), _operand(other))  # noqa: A002
def div(input, other): return apply(_ew.div_forward, _ew.div_backward, _operand(input), _operand(other))  # noqa: A002
def neg(input): return apply(_ew.neg_forward, _ew.neg_backward, input)  # noqa: A002
def pow(input, exponent): return apply(_ew.pow_forward, _ew.pow_backward, _operand(input), _operand(exponent))  # noqa: A001,A002


# ----- pointwise nonlinearities -------------------------------------------------------------
def exp(input): return apply(_ew.exp_forward, _ew.exp_backward, input)  # noqa: A002
def log(input): return apply(_ew.log_forward, _ew.log_backward, input)  # noqa: A002
def sqrt(input): return apply(_ew.sqrt_forward, _ew.sqrt_backward, input)  # noqa: A002
def tanh(input): return apply(_ew.tanh_forward, _ew.tanh_backward, input)  # noqa: A002
def sigmoid(input): return apply(_ew.sigmoid_forward, _ew.sigmoid_backward, input)  # noqa: A002
def relu(input): return apply(_ew.relu_forward, _ew.relu_backward, input)  # noqa: A002


def gelu(input, approximate="none"):  # noqa: A002
    """x Φ(x) elementwise. approximate='none' (PyTorch's default) is the exact erf form;
    'tanh' is GPT-2's approximation 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))."""
    if approximate == "none":
        return apply(_ew.gelu_erf_forward, _ew.gelu_erf_backward, input)
    if approximate == "tanh":
        return apply(_ew.gelu_forward, _ew.gelu_backward, input)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def clamp(input, min=None, max=None):  # noqa: A002  (PyTorch's names)
    """input limited to [min, max]; either bound may be None (no limit on that side)."""
    return apply(_ew.clip_forward, _ew.clip_backward, input, low=min, high=max)


clip = clamp  # torch.clip is torch.clamp; NumPy's name too


def where(condition, input, other):  # noqa: A002
    """Elementwise `input if condition else other`; the condition is a constant boolean mask."""
    condition = np.asarray(condition.data if isinstance(condition, Tensor) else condition)
    if condition.dtype != np.bool_:
        raise TypeError(f"where: condition must be boolean, got dtype {condition.dtype}")
    return apply(_ew.where_forward, _ew.where_backward, condition, _operand(input), _operand(other))


def masked_fill(input, mask, value):  # noqa: A002
    """input with `value` wherever `mask` is True (e.g. -inf above the diagonal before a softmax)."""
    return where(mask, value, input)


# ----- reductions ---------------------------------------------------------------------------
# PyTorch's names (dim, keepdim) come first; NumPy's (axis, keepdims) work as keywords. Give one
# of each pair.
def _pick(op, numpy_name, numpy_value, torch_name, torch_value, default):
    """The value given under either name; `default` is what the torch name holds when unset."""
    if numpy_value is None:
        return torch_value
    if torch_value != default:
        raise TypeError(f"{op}: give {numpy_name}= or {torch_name}=, not both")
    return numpy_value


def _reduce_args(op, dim, keepdim, axis, keepdims):
    if axis is not None and dim is not None:
        raise TypeError(f"{op}: give axis= or dim=, not both")
    if keepdims is not None and keepdim:
        raise TypeError(f"{op}: give keepdims= or keepdim=, not both")
    return (dim if axis is None else axis), bool(keepdim if keepdims is None else keepdims)


def sum(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001,A002
    axis, keepdims = _reduce_args("sum", dim, keepdim, axis, keepdims)
    return apply(_red.sum_forward, _red.sum_backward, input, axis=axis, keepdims=keepdims)


def mean(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A002
    axis, keepdims = _reduce_args("mean", dim, keepdim, axis, keepdims)
    return apply(_red.mean_forward, _red.mean_backward, input, axis=axis, keepdims=keepdims)


def amax(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A002
    """The largest values over `dim` (all dimensions when None); ties share the gradient."""
    axis, keepdims = _reduce_args("amax", dim, keepdim, axis, keepdims)
    return apply(_red.max_forward, _red.max_backward, input, axis=axis, keepdims=keepdims)


MaxResult = namedtuple("MaxResult", ["values", "indices"])


def max(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001,A002
    """torch.max: max(input) is the largest value; max(input, dim) is MaxResult(values, indices)
    along that one dimension, indices a constant integer array. amax gives values only."""
    axis, keepdims = _reduce_args("max", dim, keepdim, axis, keepdims)
    if axis is None:
        return amax(input, None, keepdims)
    if not isinstance(axis, (int, np.integer)):
        raise TypeError(f"max: dim must be one int (it returns indices along it), got {axis!r}; "
                        f"amax reduces several dimensions at once")
    _check_axis("max", input, axis)
    values = amax(input, axis, keepdims)
    indices = np.argmax(input.data if isinstance(input, Tensor) else np.asarray(input), axis=axis)
    return MaxResult(values, np.expand_dims(indices, axis) if keepdims else indices)


def var(input, dim=None, *, correction=1, keepdim=False, axis=None, keepdims=None, ddof=None):  # noqa: A002
    """The variance over `dim`, dividing by (count - correction): torch's default correction=1 is
    the unbiased estimate; correction=0 (NumPy's ddof=0, LayerNorm's) divides by the count."""
    axis, keepdims = _reduce_args("var", dim, keepdim, axis, keepdims)
    if ddof is not None and correction != 1:
        raise TypeError("var: give ddof= or correction=, not both")
    correction = correction if ddof is None else ddof
    return apply(_red.var_forward, _red.var_backward, input, axis=axis, keepdims=keepdims,
                 ddof=correction)


# ----- matrix product and shapes -------------------------------------------------------------
def matmul(input, other): return apply(_mm.matmul_forward, _mm.matmul_backward, _operand(input), _operand(other))  # noqa: A002


def linear(input, weight, bias=None):  # noqa: A002
    """input: (..., in), weight: (in, out), bias: (out,) or None -> (..., out) = input @ weight + bias.

    NOTE: weight is (in_features, out_features), GPT-2's Conv1D layout, the transpose of
    torch.nn.functional.linear's (out_features, in_features)."""
    w_shape = tuple(weight.shape)
    if len(w_shape) != 2 or input.ndim == 0 or input.shape[-1] != w_shape[0]:
        hint = ""
        if len(w_shape) == 2 and input.ndim and input.shape[-1] == w_shape[1]:
            hint = ("; hint: tinygpt's weight is (in_features, out_features), so a PyTorch weight "
                    "(out_features, in_features) must be transposed: weight.T")
        raise ValueError(f"linear: input {input.shape} and weight {w_shape} do not fit: expected "
                         f"input (..., in_features) and weight (in_features, out_features){hint}")
    return apply(_linear.linear_forward, _linear.linear_backward, input, weight, bias)


def reshape(input, shape):  # noqa: A002
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return apply(_shape.reshape_forward, _shape.reshape_backward, input, shape=shape)


def permute(input, dims):  # noqa: A002
    """input with its dimensions reordered: output dimension i is input dimension dims[i]
    (NumPy's np.transpose(x, axes)); dims=None reverses them."""
    return apply(_shape.transpose_forward, _shape.transpose_backward, input,
                 axes=None if dims is None else tuple(dims))


def transpose(input, dim0, dim1):  # noqa: A002
    """input with dimensions dim0 and dim1 swapped (torch.transpose); permute reorders them all."""
    ndim = input.ndim
    for name, d in (("dim0", dim0), ("dim1", dim1)):
        if not isinstance(d, (int, np.integer)) or not -ndim <= d < ndim:
            raise ValueError(f"transpose: {name}={d!r} is out of range for a tensor with {ndim} "
                             f"dimensions; expected an int in [{-ndim}, {ndim - 1}] (for NumPy's "
                             f"transpose(axes) use permute)")
    dims = list(range(ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return permute(input, dims)


def getitem(x, index):
    """x[index] for ints, slices, None, Ellipsis, integer arrays and boolean masks."""
    if isinstance(index, Tensor):
        index = index.data
    elif isinstance(index, tuple):
        index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
    elif isinstance(index, list):
        index = np.asarray(index)
    return apply(_shape.getitem_forward, _shape.getitem_backward, x, index=index)


def embedding(input, weight, padding_idx=None):  # noqa: A002  (PyTorch's argument names and order)
    """input: integer (...), weight: (V, C) -> (..., C); each index picks one row of weight.

    Positions whose index is padding_idx read that row but send it no gradient, as in PyTorch."""
    idx = np.asarray(input.data if isinstance(input, Tensor) else input)
    out = apply(_shape.embedding_forward, _shape.embedding_backward, weight, idx)
    if padding_idx is None:
        return out
    vocab = weight.shape[0]
    if not isinstance(padding_idx, (int, np.integer)) or not -vocab <= padding_idx < vocab:
        raise ValueError(f"embedding: padding_idx={padding_idx!r} must be an int in "
                         f"[{-vocab}, {vocab - 1}] for a weight with {vocab} rows")
    pad = int(padding_idx) % vocab
    is_pad = idx == pad
    if not is_pad.any():
        return out
    # the same value, as a constant where the index is padding_idx: no gradient reaches the row
    row = Tensor(weight.data[pad] if isinstance(weight, Tensor) else np.asarray(weight)[pad])
    return where(is_pad[..., None], row, out)


def cat(tensors, dim=0, *, axis=None):
    axis = _pick("cat", "axis", axis, "dim", dim, 0)
    return apply(_shape.concatenate_forward, _shape.concatenate_backward,
                 *[_operand(t) for t in tensors], axis=axis)


def concatenate(tensors, axis=0, *, dim=None):
    """torch.concatenate (and np.concatenate): cat under the name axis."""
    return cat(tensors, _pick("concatenate", "dim", dim, "axis", axis, 0))  # here axis is torch's name


def stack(tensors, dim=0, *, axis=None):
    axis = _pick("stack", "axis", axis, "dim", dim, 0)
    return apply(_shape.stack_forward, _shape.stack_backward, *[_operand(t) for t in tensors], axis=axis)


def _dim_size(op, x, axis):
    _check_axis(op, x, axis)
    return x.shape[axis]


def split(tensor, split_size_or_sections, dim=0, *, axis=None):
    """torch.split: pieces of `split_size_or_sections` elements along dim (the last one smaller
    when it does not divide), or pieces of the sizes in a list, which must add up to the size."""
    axis = _pick("split", "axis", axis, "dim", dim, 0)
    n = _dim_size("split", tensor, axis)
    sizes = split_size_or_sections
    if isinstance(sizes, (int, np.integer)) and not isinstance(sizes, bool):
        if sizes <= 0:
            raise ValueError(f"split: split_size={sizes} must be a positive int (a chunk size, "
                             f"as in torch.split; chunk() takes a number of pieces)")
        sizes = [int(sizes)] * (n // sizes) + ([n % sizes] if n % sizes or n == 0 else [])
    else:
        sizes = [int(s) for s in sizes]
        if builtins.sum(sizes) != n or builtins.min(sizes, default=0) < 0:
            raise ValueError(f"split: sizes {sizes} must be >= 0 and add up to {n}, the size of "
                             f"dim {axis} of a tensor of shape {tensor.shape}")
    cuts = np.cumsum(sizes)[:-1].tolist()  # np.split's convention: where each piece ends
    return apply(_shape.split_forward, _shape.split_backward, tensor, sections=cuts, axis=axis)


def chunk(input, chunks, dim=0, *, axis=None):  # noqa: A002
    """torch.chunk: at most `chunks` pieces along dim, each ceil(size / chunks) long but the last;
    fewer pieces come back when the size runs out first (as in torch)."""
    axis = _pick("chunk", "axis", axis, "dim", dim, 0)
    if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
        raise ValueError(f"chunk: chunks={chunks!r} must be a positive int")
    n = _dim_size("chunk", input, axis)
    return split(input, builtins.max(-(-n // chunks), 1), axis)


# ----- probabilities and losses --------------------------------------------------------------
def _check_axis(op, x, axis):
    """A one-axis argument within x's dimensions, or a ValueError naming the op (not NumPy's)."""
    ndim = np.ndim(x.data if isinstance(x, Tensor) else x)
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis={axis!r} is out of range for a tensor with {ndim} "
                         f"dimensions; expected an int in [{-ndim}, {ndim - 1}]")


def softmax(input, dim=None, *, axis=None):  # noqa: A002  (PyTorch's names; NumPy's axis too)
    """Probabilities along `dim` (default the last axis)."""
    axis = _pick("softmax", "axis", axis, "dim", dim, None)
    axis = -1 if axis is None else axis
    _check_axis("softmax", input, axis)
    return apply(_sm.softmax_forward, _sm.softmax_backward, input, axis=axis)


def log_softmax(input, dim=None, *, axis=None):  # noqa: A002
    axis = _pick("log_softmax", "axis", axis, "dim", dim, None)
    axis = -1 if axis is None else axis
    _check_axis("log_softmax", input, axis)
    return apply(_sm.log_softmax_forward, _sm.log_softmax_backward, input, axis=axis)


def _check_reduction(op, reduction):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean",  # noqa: A002
                  label_smoothing=0.0):
    """input: logits (..., V); target: integer class ids (...) or probabilities (..., V) -> loss.

    reduction 'mean' (over the targets not equal to ignore_index), 'sum', or 'none' (shape (...)).
    weight (V,) rescales each class: with integer targets 'mean' divides by the summed weights of
    the counted targets, as torch does. label_smoothing eps mixes the targets with the uniform
    distribution: (1 - eps) target + eps / V.
    """
    _check_reduction("cross_entropy", reduction)
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    lead, vocab = input.shape[:-1], input.shape[-1]
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    w = None if weight is None else np.asarray(weight.data if isinstance(weight, Tensor) else weight)
    if w is not None and w.shape != (vocab,):
        raise ValueError(f"cross_entropy: weight has shape {w.shape}, expected ({vocab},), one per class")
    if t.dtype.kind in "iu":
        if t.shape != lead:
            raise ValueError(f"cross_entropy: integer targets of shape {t.shape} do not match "
                             f"logits of shape {input.shape}; expected targets of shape {lead}")
        bad = (t != ignore_index) & ((t < 0) | (t >= vocab))
        if bad.any():
            raise ValueError(f"cross_entropy: target {t[bad].flat[0]} is out of range for "
                             f"{vocab} classes (valid: 0..{vocab - 1}, or ignore_index={ignore_index})")
        flat_t = t.reshape(-1)
        if label_smoothing or w is not None:
            return _weighted_cross_entropy(input, flat_t, w, ignore_index, reduction, label_smoothing)
    elif t.dtype.kind == "f":
        if t.shape != input.shape:
            raise ValueError(f"cross_entropy: probability targets of shape {t.shape} must match "
                             f"logits of shape {input.shape}")
        flat_t = t.reshape(-1, vocab).astype(input.dtype, copy=False)
        if label_smoothing:
            flat_t = (1.0 - label_smoothing) * flat_t + label_smoothing / vocab
        if w is not None:
            flat_t = flat_t * w.astype(input.dtype)  # -Σ_c w_c t_c log p_c, then the mean over rows
    else:
        raise TypeError(f"cross_entropy: targets must be integers or probabilities, got {t.dtype}")
    flat = reshape(input, (-1, vocab))
    loss = apply(_sm.cross_entropy_forward, _sm.cross_entropy_backward, flat, flat_t,
                 ignore_index=ignore_index, reduction=reduction)
    return reshape(loss, lead) if reduction == "none" else loss


def _weighted_cross_entropy(logits, t, w, ignore_index, reduction, eps):
    """Integer targets t (N,) with class weights w (V,) or None and label smoothing eps, composed
    from log_softmax as torch defines them: row loss = (1 - eps) w_t (-log p_t) + eps/V Σ_c w_c (-log p_c),
    and 'mean' divides by Σ w_t over the counted rows."""
    lead, vocab = logits.shape[:-1], logits.shape[-1]
    logp = log_softmax(reshape(logits, (-1, vocab)))  # (N, V)
    counted = t != ignore_index
    safe_t = np.where(counted, t, 0)
    w = np.ones(vocab, dtype=logits.dtype) if w is None else w.astype(logits.dtype)
    onehot = np.zeros((t.size, vocab), dtype=logits.dtype)
    onehot[np.arange(t.size), safe_t] = 1.0
    mix = (1.0 - eps) * onehot + (eps / vocab)  # (N, V), the smoothed targets
    mix *= w * counted[:, None]  # class weights; ignored rows count for nothing
    row = neg(sum(mul(logp, mix), dim=-1))  # (N,)
    if reduction == "none":
        return reshape(row, lead)
    if reduction == "sum":
        return sum(row)
    return div(sum(row), float(np.sum(w[safe_t] * counted)))  # nan when nothing is counted, as torch


def _reduce(op, loss, reduction):
    _check_reduction(op, reduction)
    return loss if reduction == "none" else sum(loss) if reduction == "sum" else mean(loss)


def binary_cross_entropy(input, target, weight=None, *, reduction="mean", eps=1e-7):  # noqa: A002
    """-(t log p + (1 - t) log(1 - p)) with p = input; weight rescales each element.

    NOTE: p is clipped to [eps, 1 - eps] to keep log finite; torch instead clamps log at -100."""
    p = clamp(input, eps, 1.0 - eps)
    t = _operand(target)
    loss = neg(add(mul(t, log(p)), mul(sub(1.0, t), log(sub(1.0, p)))))
    if weight is not None:
        loss = mul(loss, _operand(weight))
    return _reduce("binary_cross_entropy", loss, reduction)


def mse_loss(input, target, *, reduction="mean"):  # noqa: A002
    """(input - target)², reduced by its mean ('mean'), sum ('sum') or not at all ('none')."""
    d = sub(input, _operand(target))
    return _reduce("mse_loss", mul(d, d), reduction)


# ----- layers as functions -------------------------------------------------------------------
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Normalise the trailing dimensions `normalized_shape` to mean 0, variance 1, then scale by
    weight and shift by bias (each of shape normalized_shape, or None)."""
    if isinstance(normalized_shape, (Tensor, np.ndarray)):
        raise TypeError(f"layer_norm: normalized_shape must be an int or a tuple of ints, got a "
                        f"{type(normalized_shape).__name__} of shape {normalized_shape.shape}; "
                        f"hint: the order is layer_norm(input, normalized_shape, weight, bias), as in torch")
    ns = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if not ns or tuple(input.shape[input.ndim - len(ns):]) != ns or len(ns) > input.ndim:
        raise ValueError(f"layer_norm: normalized_shape {ns} must be the last dimensions of the "
                         f"input, got input of shape {input.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != ns:
            raise ValueError(f"layer_norm: {name} has shape {tuple(p.shape)}, expected {ns} "
                             f"(normalized_shape) for input {input.shape}")
    c = int(np.prod(ns))
    x = input if len(ns) == 1 else reshape(input, input.shape[:input.ndim - len(ns)] + (c,))
    w = np.ones(c, dtype=input.dtype) if weight is None else weight  # a constant: no gradient
    if len(ns) > 1:
        w = w if weight is None else reshape(weight, (c,))
        bias = None if bias is None else reshape(bias, (c,))
    out = apply(_ln.layernorm_forward, _ln.layernorm_backward, x, w, bias, eps=eps)
    return out if len(ns) == 1 else reshape(out, input.shape)


def dropout(input, p=0.5, training=True, inplace=False, *, generator=None):  # noqa: A002
    """Zero elements with probability p during training (scaling the rest by 1 / (1 - p));
    identity otherwise. The mask comes from `generator` (a np.random.Generator), or from the
    default stream of tinygpt.random (restarted by tinygpt.manual_seed) when it is None."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if inplace:
        raise NotImplementedError("dropout: inplace=True is not supported; tinygpt ops never "
                                  "overwrite their input (the graph may still need it)")
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise TypeError(f"dropout: generator must be a np.random.Generator or None, "
                        f"got {type(generator).__name__}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return mul(input, 0.0)  # every element dropped (1 / (1 - p) would divide by zero)
    rng = _random.default_generator() if generator is None else generator
    return apply(_dropout.dropout_forward, _dropout.dropout_backward, input, p=p, rng=rng)


def _attention_seed(dropout_p, rng, op):
    """The seed of an attention dropout mask: an int rng is the seed itself, a Generator draws one."""
    if dropout_p == 0.0:
        return 0
    if rng is None:
        raise ValueError(f"{op}: dropout_p={dropout_p} needs rng= (an int seed or a "
                         f"np.random.Generator), so that the mask is reproducible")
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2 ** 64, dtype=np.uint64))
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and 0 <= rng < 2 ** 64:
        return int(rng)
    raise TypeError(f"{op}: rng must be an int seed in [0, 2**64) or a np.random.Generator, got {rng!r}")


def _key_mask(attn_mask, key):
    """attn_mask -> key_mask (B, Tk) bool: the one kind of mask the fused attention takes."""
    B, Tk = key.shape[0], key.shape[2]
    mask = attn_mask.data if isinstance(attn_mask, Tensor) else np.asarray(attn_mask)
    if mask.dtype != np.bool_ or mask.ndim != 4 or mask.shape[1:3] != (1, 1) or mask.shape[3] != Tk \
            or mask.shape[0] not in (1, B):
        raise NotImplementedError(
            f"scaled_dot_product_attention: attn_mask must be a boolean key-padding mask of shape "
            f"(B, 1, 1, Tk) = ({B}, 1, 1, {Tk}), True where a key takes part; got "
            f"{mask.dtype} {mask.shape}. Float masks and per-query masks are not implemented")
    return np.broadcast_to(mask[:, 0, 0, :], (B, Tk))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False, *, rng=None):
    """query: (B, nh, Tq, hs), key, value: (B, nh, Tk, hs) -> (B, nh, Tq, hs)
    = dropout(softmax(Q Kᵀ * scale + mask)) V, with scale = 1/√hs by default; torch's names,
    order and defaults.

    is_causal=True: query i sees keys up to its own position; when Tq < Tk (a KV cache) the
    queries are the last Tq positions (NOTE: torch's is_causal takes them to be the first Tq;
    the two agree when Tq == Tk). attn_mask: a boolean (B, 1, 1, Tk) key-padding mask (True
    where a key takes part); a query that sees no key gets 0, where torch gives nan. dropout_p
    drops attention probabilities whenever it is > 0 (as torch's does; pass 0.0 in eval), with
    the mask drawn from rng= (an int seed, or a np.random.Generator that draws one per call).
    """
    if query.ndim != 4 or key.shape != value.shape or query.shape[:2] != key.shape[:2] \
            or query.shape[3] != key.shape[3]:
        raise ValueError(f"scaled_dot_product_attention: expected query (B, nh, Tq, hs) and key, value "
                         f"(B, nh, Tk, hs) with matching B, nh, hs; got query {query.shape}, key "
                         f"{key.shape}, value {value.shape}")
    if is_causal and query.shape[2] > key.shape[2]:
        raise ValueError(f"scaled_dot_product_attention: causal attention needs Tq <= Tk, got "
                         f"Tq={query.shape[2]}, Tk={key.shape[2]}")
    if enable_gqa:
        raise NotImplementedError("scaled_dot_product_attention: enable_gqa (grouped-query attention) "
                                  "is not implemented; give key and value as many heads as query")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p!r}")
    key_mask = None if attn_mask is None else _key_mask(attn_mask, key)
    seed = _attention_seed(dropout_p, rng, "scaled_dot_product_attention")
    return apply(_attention.attention_forward, _attention.attention_backward, query, key, value,
                 causal=is_causal, scale=scale, key_mask=key_mask, dropout_p=float(dropout_p), seed=seed)


def causal_self_attention(qkv, n_head, dropout_p=0.0, *, rng=None):
    """qkv: (B, T, 3C), queries, keys and values of all heads side by side -> (B, T, C).

    The same as splitting qkv into q, k, v, each (B, T, C) -> (B, nh, T, hs), running
    scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True, rng=rng) and
    merging the heads back, but as one op."""
    if qkv.ndim != 3 or qkv.shape[-1] % (3 * n_head):
        raise ValueError(f"causal_self_attention: expected qkv (B, T, 3 * n_embd) with n_embd "
                         f"divisible by n_head={n_head}, got shape {qkv.shape}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"causal_self_attention: dropout_p must be in [0, 1), got {dropout_p!r}")
    seed = _attention_seed(dropout_p, rng, "causal_self_attention")
    return apply(_attention.causal_self_attention_forward, _attention.causal_self_attention_backward,
                 qkv, n_head=n_head, dropout_p=float(dropout_p), seed=seed)


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



def gru(x, h0, w_ih, w_hh, b_ih, b_hh):
    """One GRU layer over a sequence (gates r, z, n): x (B, T, I) -> (out (B, T, D), h_T (B, D))."""
    batch, _, features = x.shape
    d = w_hh.shape[0]
    expected = {"h0": (h0.shape, (batch, d)), "w_ih": (w_ih.shape, (features, 3 * d)),
                "w_hh": (w_hh.shape, (d, 3 * d)), "b_ih": (b_ih.shape, (3 * d,)), "b_hh": (b_hh.shape, (3 * d,))}
    for name, (got, want) in expected.items():
        if got != want:
            raise ValueError(f"gru: {name} has shape {got}, expected {want} for x {x.shape} "
                             f"and hidden size {d}")
    return apply(_gru.gru_forward, _gru.gru_backward, x, h0, w_ih, w_hh, b_ih, b_hh)
